//! `quiver init`: a runnable example project with generated sample data.

use std::path::{Path, PathBuf};

use crate::config::CONFIG_FILE;
use crate::error::{Error, Result};

const CONFIG_TEMPLATE: &str = include_str!("../templates/quiver.yaml");
const USERS_TEMPLATE: &str = include_str!("../templates/users.yaml");
const SQL_TEMPLATE: &str = include_str!("../templates/sql.yaml.example");
const GITIGNORE: &str = ".quiver/\n";

/// What `init` wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub users: usize,
    pub user_rows: usize,
    pub transactions: usize,
}

/// Writes an example project into `dir` (created if missing). Refuses to overwrite an existing
/// `quiver.yaml`. `seed` makes the sample data reproducible.
pub fn init_project(dir: &Path, project: Option<&str>, seed: u64) -> Result<InitReport> {
    let config_path = dir.join(CONFIG_FILE);
    if config_path.exists() {
        return Err(Error::FailedPrecondition(format!(
            "`{}` already exists; choose an empty directory",
            config_path.display()
        )));
    }
    let name = match project {
        Some(p) => p.to_string(),
        None => dir
            .canonicalize()
            .ok()
            .or_else(|| Some(dir.to_path_buf()))
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .map(|n| {
                n.chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "quickstart".to_string()),
    };
    let config = CONFIG_TEMPLATE.replace("{{project}}", &name);
    crate::config::parse_config(&config, [])
        .map_err(|e| Error::Config(format!("project name: {e}")))?;

    let features = dir.join("features");
    let data = dir.join("data");
    for d in [dir, &features, &data] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let mut files = Vec::new();
    for (path, text) in [
        (config_path, config.as_str()),
        (features.join("users.yaml"), USERS_TEMPLATE),
        // Not read by `apply` until renamed to `.yaml`: it needs the `sql` feature.
        (features.join("sql.yaml.example"), SQL_TEMPLATE),
        (dir.join(".gitignore"), GITIGNORE),
    ] {
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        files.push(path);
    }
    let now = quiver_online::now_ns();
    let summary = quiver_offline::sample::write_quickstart_data(&data, now, seed)?;
    files.push(data.join("users.parquet"));
    files.push(data.join("transactions.parquet"));
    let labels = data.join("labels.csv");
    std::fs::write(&labels, label_rows(now, 1_000)).map_err(|e| Error::io(&labels, e))?;
    files.push(labels);
    Ok(InitReport {
        dir: dir.to_path_buf(),
        files,
        users: summary.users,
        user_rows: summary.user_rows,
        transactions: summary.transactions,
    })
}

/// Entity rows for the training-set walkthrough: `user_id`, `event_timestamp` (spread over the
/// last 80 days) and a made-up `label`, deterministic so the README's output is reproducible.
fn label_rows(now_ns: i64, rows: u64) -> String {
    let mut out = String::from("user_id,event_timestamp,label\n");
    let day = 86_400_000_000_000i64;
    for i in 0..rows {
        let user = (i * 7919 + 13) % 10_000;
        let back = ((i * 104_729) % (80 * 24)) as i64 * (day / 24);
        let ts = quiver_core::value::format_timestamp(now_ns - back - day / 2);
        out.push_str(&format!("{user},{ts},{}\n", (i * 31) % 7 == 0));
    }
    out
}
