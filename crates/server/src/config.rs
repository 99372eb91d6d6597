//! Typed configuration: defaults, then the config file's `[server]`/`[database]`/`[auth]`
//! sections, then `BASALT_*` environment variables and flags (clap merges those two).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::settings::AuthSettings;
use crate::cli::StoreArgs;

#[derive(Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    pub server: ServerSection,
    pub database: DatabaseSection,
}

#[derive(Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: Option<usize>,
    /// The URL clients reach Basalt at (behind a proxy): used in e-mail links and the JWT issuer.
    pub public_url: Option<String>,
}

#[derive(Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    pub url: Option<String>,
    pub pool_size: Option<usize>,
    /// Milliseconds a statement may run before PostgreSQL cancels it.
    pub statement_timeout_ms: Option<u64>,
    /// Rows a read returns at most (PostgREST's db-max-rows).
    pub max_rows: Option<i64>,
}

/// The resolved configuration the server runs with.
#[derive(Clone)]
pub struct Config {
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub jwt_secret: Option<String>,
    pub max_body_bytes: usize,
    pub pool_size: usize,
    pub statement_timeout_ms: u64,
    pub max_rows: Option<i64>,
    pub public_url: Option<String>,
    pub auth: AuthSettings,
}

/// Secrets never reach logs: Debug shows whether they are set, not their value.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_ref().map(|u| redact_url(u)))
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<redacted>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("pool_size", &self.pool_size)
            .field("max_rows", &self.max_rows)
            .finish()
    }
}

/// Hides the password in a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Config {
    /// Layers the config: `file` (if any) under environment and flags (`store`, `listen`).
    pub fn load(file: Option<&Path>, store: &StoreArgs, listen: Option<&str>) -> anyhow::Result<Config> {
        let (fc, mut auth_table): (FileConfig, toml::Table) = match file {
            Some(p) if !p.exists() => anyhow::bail!("config file {} does not exist", p.display()),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
                let mut table: toml::Table = toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                let auth = match table.remove("auth") {
                    Some(toml::Value::Table(t)) => t,
                    _ => toml::Table::new(),
                };
                table.retain(|k, _| ["server", "database"].contains(&AsRef::<str>::as_ref(k)));
                (table.try_into().map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?, auth)
            }
            _ => (FileConfig::default(), toml::Table::new()),
        };
        let file_secret = auth_table.remove("jwt_secret").and_then(|v| v.as_str().map(str::to_string));
        let auth: AuthSettings = auth_table.try_into().map_err(|e| anyhow::anyhow!("[auth]: {e}"))?;
        let env_secret = std::env::var("BASALT_JWT_SECRET").ok().filter(|s| !s.is_empty());
        let jwt_secret = env_secret.or(file_secret);
        if let Some(s) = &jwt_secret {
            if s.len() < 32 {
                anyhow::bail!("the JWT secret must be at least 32 characters");
            }
        }
        Ok(Config {
            listen: listen.map(str::to_string).or(fc.server.listen).unwrap_or_else(|| "127.0.0.1:54321".into()),
            data_dir: store.data_dir.clone().or(fc.server.data_dir).unwrap_or_else(|| PathBuf::from("basalt-data")),
            database_url: store.database_url.clone().or(fc.database.url),
            jwt_secret,
            max_body_bytes: env_usize("BASALT_MAX_BODY_BYTES").or(fc.server.max_body_bytes).unwrap_or(10 * 1024 * 1024),
            pool_size: env_usize("BASALT_POOL_SIZE").or(fc.database.pool_size).unwrap_or(16),
            statement_timeout_ms: env_usize("BASALT_STATEMENT_TIMEOUT_MS")
                .map(|n| n as u64)
                .or(fc.database.statement_timeout_ms)
                .unwrap_or(8000),
            max_rows: env_usize("BASALT_MAX_ROWS").map(|n| n as i64).or(fc.database.max_rows),
            public_url: std::env::var("BASALT_PUBLIC_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .or(fc.server.public_url)
                .map(|u| u.trim_end_matches('/').to_string()),
            auth: auth.with_env(),
        })
    }
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
