//! [`PostgresConfig`]: where the PostgreSQL offline store lives, and how its password is kept
//! out of logs and messages.

use serde::Deserialize;

/// Connection settings of the PostgreSQL offline store (`offline_store: {type: postgres, ...}`).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection URL: `postgres://user:password@127.0.0.1:5432/database` (key-value strings such
    /// as `host=... user=...` work too). TLS is not supported yet.
    pub url: String,
    /// Schema holding Quiver's tables, created if missing. Default `quiver`.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Most connections the store opens at once. Default 4.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_schema() -> String {
    "quiver".to_string()
}

fn default_pool_size() -> usize {
    4
}

impl PostgresConfig {
    /// A config with the default schema and pool size.
    pub fn new(url: impl Into<String>) -> PostgresConfig {
        PostgresConfig {
            url: url.into(),
            schema: default_schema(),
            pool_size: default_pool_size(),
        }
    }

    /// The URL with its password replaced by `***`, safe to print.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &self.redacted_url())
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Hides the password of a `postgres://user:pw@host/db` URL or a `password=...` key-value pair.
pub(crate) fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        // The user info ends at the last `@` before the path: an unescaped `@` or `/` in a
        // password must still be hidden, so search from the right within the authority.
        let authority_end = rest.find('?').unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let redacted = match authority.rfind('@') {
            Some(at) => {
                let user_info = &authority[..at];
                let user = match user_info.split_once(':') {
                    Some((user, _)) => format!("{user}:***"),
                    None => user_info.to_string(),
                };
                format!("{scheme}://{user}{}", &rest[at..])
            }
            None => url.to_string(),
        };
        return redact_key_values(&redacted);
    }
    redact_key_values(url)
}

/// Hides `password=...` values (key-value connection strings, URL query parameters).
fn redact_key_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("password=") {
        let value_start = pos + "password=".len();
        out.push_str(&rest[..value_start]);
        out.push_str("***");
        let value = &rest[value_start..];
        let value_end = if let Some(quoted) = value.strip_prefix('\'') {
            quoted.find('\'').map_or(value.len(), |i| i + 2)
        } else {
            value.find([' ', '&']).unwrap_or(value.len())
        };
        rest = &value[value_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = PostgresConfig::new("postgres://quiver:s3cr@t/x@db.internal:5432/features");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(
            shown.contains("postgres://quiver:***@db.internal:5432/features"),
            "{shown}"
        );
    }

    #[test]
    fn redacts_every_form() {
        assert_eq!(
            redact_url("postgres://u@h/d?password=abc&x=1"),
            "postgres://u@h/d?password=***&x=1"
        );
        assert_eq!(
            redact_url("host=h password='a b' user=u"),
            "host=h password=*** user=u"
        );
        assert_eq!(redact_url("postgres://h/d"), "postgres://h/d");
    }

    #[test]
    fn parses_with_defaults_and_rejects_unknown_fields() {
        let config: PostgresConfig =
            serde_json::from_str(r#"{"url": "postgres://u@h/d"}"#).expect("parses");
        assert_eq!(config.schema, "quiver");
        assert_eq!(config.pool_size, 4);
        assert!(serde_json::from_str::<PostgresConfig>(r#"{"url": "x", "pool": 3}"#).is_err());
    }
}
