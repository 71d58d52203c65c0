//! One module per subcommand.

pub mod apply;
pub mod build;
pub mod get;
pub mod historical;
pub mod incremental;
pub mod init;
pub mod materialize;
pub mod serve;

/// Parses an RFC 3339 timestamp (or a date) given on the command line to ns UTC.
pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    quiver_core::value::parse_timestamp(text).map_err(anyhow::Error::msg)
}
