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
    pub rest: RestSettings,
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
    /// Proxies whose `X-Forwarded-For` names the client (addresses or networks).
    pub trusted_proxies: Option<Vec<String>>,
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
    /// Peers whose `X-Forwarded-For` is believed (see `http::client_ip`); empty: none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub auth: AuthSettings,
    pub rest: RestSettings,
}

/// How a request's transaction ends (PostgREST's `db-tx-end`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxEnd {
    #[default]
    Commit,
    CommitAllowOverride,
    Rollback,
    RollbackAllowOverride,
}

impl TxEnd {
    pub fn parse(s: &str) -> Option<TxEnd> {
        match s.trim() {
            "commit" => Some(TxEnd::Commit),
            "commit-allow-override" => Some(TxEnd::CommitAllowOverride),
            "rollback" => Some(TxEnd::Rollback),
            "rollback-allow-override" => Some(TxEnd::RollbackAllowOverride),
            _ => None,
        }
    }

    /// Whether `Prefer: tx=` may change the outcome.
    pub fn overridable(self) -> bool {
        matches!(self, TxEnd::CommitAllowOverride | TxEnd::RollbackAllowOverride)
    }

    pub fn rolls_back(self) -> bool {
        matches!(self, TxEnd::Rollback | TxEnd::RollbackAllowOverride)
    }
}

/// PostgREST's settings for the data API, under `[rest]` in the config file and
/// `BASALT_<PostgREST name>` (or `PGRST_<name>`) in the environment; docs/postgrest.md maps them.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestSettings {
    /// `db-schemas`: the exposed schemas, the first one the default.
    pub schemas: Vec<String>,
    /// `db-anon-role`: the role of requests without a JWT; empty refuses them (PGRST302).
    pub anon_role: Option<String>,
    /// `jwt-aud`: tokens carrying an `aud` claim must name this audience.
    pub jwt_aud: Option<String>,
    /// `jwt-role-claim-key`: where the role is in the claims (`.role`, `."https://x/role"`, `.a[0]`).
    pub jwt_role_claim_key: String,
    /// `jwt-secret-is-base64`: the configured secret is base64 and is decoded before use.
    pub jwt_secret_is_base64: bool,
    /// `db-pre-request`: a function called in every request's transaction, after the role is set.
    pub pre_request: Option<String>,
    /// `db-extra-search-path`: schemas searched after the request's schema.
    pub extra_search_path: Vec<String>,
    /// `db-tx-end`.
    pub tx_end: TxEnd,
    /// `server-timing-enabled`: a `Server-Timing` header on data-API responses.
    pub server_timing: bool,
    /// `db-aggregates-enabled`: `col.sum()`, `count()` and the others in `select`. Off by
    /// default, as in PostgREST and Supabase: an aggregate reads every row it is given.
    pub aggregates_enabled: bool,
    /// Where the data API is served: `/rest/v1` (Supabase) or `/` (PostgREST).
    pub mount: String,
    /// Whether the data API wants an `apikey` (Supabase's gateway); by default only under `/rest/v1`.
    pub require_apikey: Option<bool>,
    /// `app.settings.*`: set as transaction-local settings on every request.
    pub app_settings: std::collections::BTreeMap<String, String>,
    /// PostgreSQL is reached through a transaction-mode pooler (PgBouncer, Supavisor's port
    /// 6543): every request then runs in one explicit transaction, since such a pooler may hand
    /// consecutive statements outside a transaction to different server connections.
    pub transaction_pooler: bool,
    /// `db-pool-acquisition-timeout`: seconds a request waits for a free connection before
    /// it gets 504 PGRST003.
    pub pool_acquisition_timeout: u64,
}

impl Default for RestSettings {
    fn default() -> Self {
        RestSettings {
            schemas: vec!["public".into()],
            anon_role: Some("anon".into()),
            jwt_aud: None,
            jwt_role_claim_key: ".role".into(),
            jwt_secret_is_base64: false,
            pre_request: None,
            extra_search_path: vec!["public".into(), "extensions".into()],
            tx_end: TxEnd::Commit,
            server_timing: false,
            aggregates_enabled: false,
            mount: "/rest/v1".into(),
            require_apikey: None,
            app_settings: Default::default(),
            transaction_pooler: false,
            pool_acquisition_timeout: 10,
        }
    }
}

/// The first of `BASALT_<name>` and `PGRST_<name>` that is set.
fn rest_env(name: &str) -> Option<String> {
    std::env::var(format!("BASALT_{name}")).ok().or_else(|| std::env::var(format!("PGRST_{name}")).ok())
}

fn list(s: &str) -> Vec<String> {
    s.split(',').map(|p| p.trim().trim_matches('"').to_string()).filter(|p| !p.is_empty()).collect()
}

fn truthy(s: &str) -> bool {
    matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

impl RestSettings {
    /// Environment over the file.
    fn with_env(mut self) -> anyhow::Result<Self> {
        if let Some(v) = rest_env("DB_SCHEMAS").or_else(|| rest_env("DB_SCHEMA")) {
            self.schemas = list(&v);
        }
        if let Some(v) = rest_env("DB_ANON_ROLE") {
            self.anon_role = Some(v);
        }
        if let Some(v) = rest_env("JWT_AUD") {
            self.jwt_aud = Some(v);
        }
        if let Some(v) = rest_env("JWT_ROLE_CLAIM_KEY") {
            self.jwt_role_claim_key = v;
        }
        if let Some(v) = rest_env("JWT_SECRET_IS_BASE64") {
            self.jwt_secret_is_base64 = truthy(&v);
        }
        if let Some(v) = rest_env("DB_PRE_REQUEST") {
            self.pre_request = Some(v);
        }
        if let Some(v) = rest_env("DB_EXTRA_SEARCH_PATH") {
            self.extra_search_path = list(&v);
        }
        if let Some(v) = rest_env("DB_TX_END") {
            self.tx_end = TxEnd::parse(&v).ok_or_else(|| {
                anyhow::anyhow!("db-tx-end must be commit, commit-allow-override, rollback or rollback-allow-override, not {v:?}")
            })?;
        }
        if let Some(v) = rest_env("SERVER_TIMING_ENABLED") {
            self.server_timing = truthy(&v);
        }
        if let Some(v) = rest_env("DB_AGGREGATES_ENABLED") {
            self.aggregates_enabled = truthy(&v);
        }
        if let Ok(v) = std::env::var("BASALT_REST_MOUNT") {
            self.mount = v;
        }
        if let Ok(v) = std::env::var("BASALT_REST_REQUIRE_APIKEY") {
            self.require_apikey = Some(truthy(&v));
        }
        if let Some(v) = rest_env("DB_POOL_ACQUISITION_TIMEOUT") {
            self.pool_acquisition_timeout =
                v.trim().parse().map_err(|_| anyhow::anyhow!("db-pool-acquisition-timeout must be a number of seconds, not {v:?}"))?;
        }
        if let Ok(v) = std::env::var("BASALT_TRANSACTION_POOLER") {
            self.transaction_pooler = truthy(&v);
        }
        for (k, v) in std::env::vars() {
            let name = k.strip_prefix("BASALT_APP_SETTINGS_").or_else(|| k.strip_prefix("PGRST_APP_SETTINGS_"));
            if let Some(name) = name {
                self.app_settings.insert(name.to_ascii_lowercase(), v);
            }
        }
        self.normalise()
    }

    fn normalise(mut self) -> anyhow::Result<Self> {
        self.anon_role = self.anon_role.filter(|r| !r.trim().is_empty());
        self.pre_request = self.pre_request.filter(|r| !r.trim().is_empty());
        self.jwt_aud = self.jwt_aud.filter(|r| !r.trim().is_empty());
        if self.schemas.is_empty() {
            anyhow::bail!("[rest] schemas must name at least one schema");
        }
        for s in self.schemas.iter().chain(&self.extra_search_path) {
            if s.is_empty() || s.contains(['"', '\0']) {
                anyhow::bail!("[rest] invalid schema name {s:?}");
            }
        }
        if let Some(f) = &self.pre_request {
            crate::store::pg_session::function_sql(f).ok_or_else(|| anyhow::anyhow!("db-pre-request: {f:?} is not a function name"))?;
        }
        crate::auth::claim_path::ClaimPath::parse(&self.jwt_role_claim_key)
            .map_err(|e| anyhow::anyhow!("jwt-role-claim-key {:?}: {e}", self.jwt_role_claim_key))?;
        let mount = self.mount.trim().trim_end_matches('/');
        if !self.mount.trim().starts_with('/') {
            anyhow::bail!("[rest] mount must be a path such as /rest/v1 or /, not {:?}", self.mount);
        }
        self.mount = mount.to_string();
        Ok(self)
    }

    /// The schema requests use when they name none.
    pub fn default_schema(&self) -> &str {
        self.schemas.first().map(String::as_str).unwrap_or("public")
    }

    /// Whether the data API wants a project key in `apikey`.
    pub fn apikey_required(&self) -> bool {
        self.require_apikey.unwrap_or(!self.mount.is_empty())
    }
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
            .field("trusted_proxies", &self.trusted_proxies)
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
                table.retain(|k, _| ["server", "database", "rest"].contains(&AsRef::<str>::as_ref(k)));
                (table.try_into().map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?, auth)
            }
            _ => (FileConfig::default(), toml::Table::new()),
        };
        let file_secret = auth_table.remove("jwt_secret").and_then(|v| v.as_str().map(str::to_string));
        let auth: AuthSettings = auth_table.try_into().map_err(|e| anyhow::anyhow!("[auth]: {e}"))?;
        if let Some(name) = auth.external.keys().find(|n| !crate::auth::settings::PROVIDERS.contains(&n.as_str())) {
            anyhow::bail!("[auth.external.{name}]: unknown provider (known: {})", crate::auth::settings::PROVIDERS.join(", "));
        }
        let env_secret = std::env::var("BASALT_JWT_SECRET").ok().filter(|s| !s.is_empty());
        let jwt_secret = env_secret.or_else(|| std::env::var("PGRST_JWT_SECRET").ok().filter(|s| !s.is_empty())).or(file_secret);
        let rest = fc.rest.clone().with_env()?;
        if let Some(s) = &jwt_secret {
            if secret_bytes(s, rest.jwt_secret_is_base64)?.len() < 32 {
                anyhow::bail!("the JWT secret must be at least 32 characters (32 bytes once decoded)");
            }
        }
        let trusted_proxies = match std::env::var("BASALT_TRUSTED_PROXIES") {
            Ok(list) => list,
            Err(_) => fc.server.trusted_proxies.clone().unwrap_or_default().join(","),
        };
        let trusted_proxies = crate::http::client_ip::parse_trusted(&trusted_proxies).map_err(|e| anyhow::anyhow!(e))?;
        Ok(Config {
            listen: listen.map(str::to_string).or_else(pgrst_listen).or(fc.server.listen).unwrap_or_else(|| "127.0.0.1:54321".into()),
            data_dir: store.data_dir.clone().or(fc.server.data_dir).unwrap_or_else(|| PathBuf::from("basalt-data")),
            database_url: store
                .database_url
                .clone()
                .or_else(|| std::env::var("PGRST_DB_URI").ok().filter(|u| !u.is_empty()))
                .or(fc.database.url),
            jwt_secret,
            max_body_bytes: env_usize("BASALT_MAX_BODY_BYTES").or(fc.server.max_body_bytes).unwrap_or(10 * 1024 * 1024),
            pool_size: env_usize("BASALT_POOL_SIZE").or_else(|| env_usize("PGRST_DB_POOL")).or(fc.database.pool_size).unwrap_or(16),
            statement_timeout_ms: env_usize("BASALT_STATEMENT_TIMEOUT_MS")
                .map(|n| n as u64)
                .or(fc.database.statement_timeout_ms)
                .unwrap_or(8000),
            max_rows: env_usize("BASALT_MAX_ROWS")
                .or_else(|| rest_env("DB_MAX_ROWS").and_then(|v| v.parse().ok()))
                .map(|n| n as i64)
                .or(fc.database.max_rows),
            public_url: std::env::var("BASALT_PUBLIC_URL")
                .ok()
                .filter(|u| !u.is_empty())
                .or(fc.server.public_url)
                .map(|u| u.trim_end_matches('/').to_string()),
            trusted_proxies,
            auth: auth.with_env(),
            rest,
        })
    }
}

/// PostgREST's `server-host`/`server-port` from its environment (`PGRST_SERVER_*`).
fn pgrst_listen() -> Option<String> {
    let port = std::env::var("PGRST_SERVER_PORT").ok().filter(|p| !p.is_empty())?;
    let host = std::env::var("PGRST_SERVER_HOST")
        .ok()
        .filter(|h| !h.is_empty() && !h.starts_with('!') && h != "*")
        .unwrap_or_else(|| "0.0.0.0".into());
    Some(format!("{host}:{port}"))
}

/// The key bytes of a JWT secret: as written, or base64-decoded (`jwt_secret_is_base64`).
pub fn secret_bytes(secret: &str, is_base64: bool) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    if !is_base64 {
        return Ok(secret.as_bytes().to_vec());
    }
    let s = secret.trim();
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.trim_end_matches('=')))
        .map_err(|e| anyhow::anyhow!("jwt_secret_is_base64 is set but the secret is not base64: {e}"))
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("basalt.toml");
        let store = StoreArgs { data_dir: None, database_url: None, config: None };
        std::fs::write(&file, "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
        let c = Config::load(Some(&file), &store, None).unwrap();
        assert_eq!(c.trusted_proxies, crate::http::client_ip::parse_trusted("10.0.0.0/8, ::1/128").unwrap());
        std::fs::write(&file, "[server]\ntrusted_proxies = [\"proxy.local\"]\n").unwrap();
        let e = Config::load(Some(&file), &store, None).unwrap_err().to_string();
        assert!(e.contains("trusted_proxies") && e.contains("proxy.local"), "{e}");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
