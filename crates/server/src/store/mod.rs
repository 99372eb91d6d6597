//! Storage: one enum over the two backends, chosen once at start-up. Each backend runs the
//! SQL the renderers produce, maps its errors to PostgREST's, and migrates its schema.

pub mod audit_log;
mod audit_schema;
mod auth_schema;
pub mod auth_sql;
pub mod mfa_sql;
mod pg_introspect;
mod pg_mux;
mod pg_pipeline;
pub mod pg_session;
mod pg_tls;
pub mod portable;
mod postgres;
mod sqlite;
mod sqlite_functions;
mod sqlite_writer;

use std::sync::Arc;

use basalt_query::sql::{Dialect, MutateSql, Postgres, ReadSql, Sqlite};
use basalt_schema::{Catalog, MigrationPlan};

use crate::config::Config;
use crate::error::ApiResult;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Who a statement runs as: the role, the JWT claims (JSON) and the user id.
#[derive(Debug, Clone)]
pub struct DbContext {
    /// The database role the transaction takes (PostgreSQL may have roles beyond the three).
    pub db_role: String,
    /// The caller's claims as JSON text, shared with the request's identity.
    pub claims: std::sync::Arc<String>,
    pub uid: Option<String>,
    /// What PostgREST exposes to SQL as `request.method`, `request.path`, `request.headers`, `request.cookies`.
    pub request: RequestInfo,
    /// The exposed schema the request addresses, when not the default one (PostgreSQL).
    pub schema: Option<String>,
    /// End the transaction with ROLLBACK (`db-tx-end`, `Prefer: tx=rollback`).
    pub rollback: bool,
    /// Where the request came from, for the audit log (writes only).
    pub origin: Origin,
}

/// Where a change came from, as the audit log records it: the client's address (the socket's
/// peer), its user agent and the request id (the client's `x-request-id`, or one Basalt made).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

/// How many rows a write may touch and still stand: exactly one for a singular response
/// (`Accept: application/vnd.pgrst.object+json`, PGRST116), at most `max_affected` for
/// `Prefer: handling=strict, max-affected=n` (PGRST124). Otherwise the write is rolled back.
#[derive(Debug, Clone, Copy, Default)]
pub struct RowBound {
    pub single: bool,
    pub max_affected: Option<i64>,
}

impl RowBound {
    /// Whether the row count has to be known before the transaction ends.
    pub fn any(&self) -> bool {
        self.single || self.max_affected.is_some()
    }

    pub fn check(&self, affected: i64) -> ApiResult<()> {
        if self.single && affected != 1 {
            return Err(basalt_query::Error::not_single(affected).into());
        }
        match self.max_affected {
            Some(max) if affected > max => {
                Err(basalt_query::Error::new(400, "PGRST124", "Query result exceeds max-affected preference constraint")
                    .details(format!("The query affects {affected} rows"))
                    .into())
            }
            _ => Ok(()),
        }
    }
}

/// What SQL set for the response through `response.headers` and `response.status`.
#[derive(Debug, Clone, Default)]
pub struct ResponseSettings {
    pub headers: Option<String>,
    pub status: Option<String>,
}

/// The request as SQL sees it (headers and cookies as JSON objects, names lower-cased).
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    pub method: String,
    pub path: String,
    pub headers: String,
    pub cookies: String,
}

impl RequestInfo {
    /// Header names come lower-cased from `http`; a header sent twice keeps its last value, as
    /// does a cookie. Written straight to JSON text: this runs for every PostgreSQL request.
    pub fn new(method: &str, path: &str, headers: &axum::http::HeaderMap) -> Self {
        let pairs = headers.keys().filter_map(|name| {
            let value = headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).next_back()?;
            Some((name.as_str(), value))
        });
        let mut cookies: Vec<(&str, &str)> = Vec::new();
        for c in headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')) {
            if let Some((k, v)) = c.trim().split_once('=') {
                let (k, v) = (k.trim(), v.trim());
                match cookies.iter_mut().find(|(name, _)| *name == k) {
                    Some(entry) => entry.1 = v,
                    None => cookies.push((k, v)),
                }
            }
        }
        RequestInfo {
            method: method.to_string(),
            path: path.to_string(),
            headers: json_object(pairs),
            cookies: json_object(cookies.into_iter()),
        }
    }
}

/// `{"k": "v", ...}` from string pairs with unique keys.
fn json_object<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = Vec::with_capacity(512);
    out.push(b'{');
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, k);
        out.push(b':');
        let _ = serde_json::to_writer(&mut out, v);
    }
    out.push(b'}');
    String::from_utf8(out).unwrap_or_else(|_| "{}".into())
}

/// The body of a read and its row counts.
#[derive(Debug, Clone)]
pub struct ReadResult {
    pub rows: i64,
    pub body: String,
    pub total: Option<i64>,
    /// The planner's estimate of the total (`count=planned|estimated`, PostgreSQL).
    pub planned: Option<i64>,
    pub response: ResponseSettings,
}

/// What a write did.
#[derive(Debug, Clone)]
pub struct WriteResult {
    pub affected: i64,
    pub inserted: i64,
    pub body: Option<String>,
    pub response: ResponseSettings,
}

/// The outcome of a migration run.
#[derive(Debug, Clone)]
pub struct Migration {
    pub plan: MigrationPlan,
    pub statements: Vec<String>,
    pub applied: bool,
}

#[derive(Clone)]
pub enum Store {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl Store {
    /// Opens the backend the config names: PostgreSQL when a URL is set, SQLite otherwise.
    pub async fn open(config: &Config) -> anyhow::Result<Store> {
        match &config.database_url {
            Some(url) => {
                Ok(Store::Postgres(Arc::new(PgStore::connect(url, config.pool_size, config.statement_timeout_ms, &config.rest).await?)))
            }
            None => {
                let (dir, timeout) = (config.data_dir.clone(), config.statement_timeout_ms);
                let store = tokio::task::spawn_blocking(move || SqliteStore::open(&dir, timeout)).await??;
                Ok(Store::Sqlite(Arc::new(store)))
            }
        }
    }

    pub fn dialect(&self) -> &'static dyn Dialect {
        match self {
            Store::Sqlite(_) => &Sqlite,
            Store::Postgres(_) => &Postgres,
        }
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// True when the database enforces row-level security itself (PostgreSQL); otherwise the
    /// planner compiles policies into each query.
    pub fn native_rls(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    pub async fn read(&self, sql: ReadSql, ctx: &DbContext) -> ApiResult<ReadResult> {
        match self {
            Store::Sqlite(s) => s.read(&sql),
            // On the caller's task, boxed to keep the request future small: a caller that goes
            // away mid-request closes the connection, which rolls back whatever it left open.
            Store::Postgres(p) => Box::pin(p.read(&sql, ctx)).await,
        }
    }

    /// A read run as the caller, even for service_role (function calls); read-only unless
    /// `read_only` is false.
    pub async fn read_as(&self, sql: ReadSql, ctx: &DbContext, read_only: bool) -> ApiResult<ReadResult> {
        match self {
            Store::Sqlite(s) => s.read(&sql),
            Store::Postgres(p) => Box::pin(p.read_in_tx(&sql, ctx, read_only)).await,
        }
    }

    /// Calls a database function (`/rpc`); only PostgreSQL has them.
    pub async fn call(&self, f: &basalt_query::sql::Fragment, read_only: bool, ctx: &DbContext) -> ApiResult<ReadResult> {
        match self {
            Store::Sqlite(_) => {
                Err(crate::error::ApiError::Rest(basalt_query::Error::new(404, "PGRST202", "SQLite has no database functions")))
            }
            Store::Postgres(p) => Box::pin(p.call(f, read_only, ctx)).await,
        }
    }

    /// Runs a write in one transaction; one whose row count is out of `bound` rolls back.
    pub async fn write(&self, sql: MutateSql, bound: RowBound, ctx: &DbContext) -> ApiResult<WriteResult> {
        match self {
            Store::Sqlite(s) => {
                let actor = sqlite_functions::Actor {
                    uid: ctx.uid.clone(),
                    role: ctx.db_role.clone(),
                    api_key_id: None,
                    ip: ctx.origin.ip.clone(),
                    user_agent: ctx.origin.user_agent.clone(),
                    request_id: ctx.origin.request_id.clone(),
                };
                s.write(sql, bound, ctx.rollback, actor).await
            }
            Store::Postgres(p) => Box::pin(p.write(&sql, bound, ctx)).await,
        }
    }

    /// Whether a token may name this database role: SQLite has only Supabase's three roles;
    /// on PostgreSQL any existing role that is not a superuser.
    pub async fn role_allowed(&self, role: &str) -> ApiResult<bool> {
        match self {
            Store::Sqlite(_) => Ok(matches!(role, "anon" | "authenticated" | "service_role")),
            Store::Postgres(p) => p.role_allowed(role).await,
        }
    }

    /// Runs Basalt's own portable statements in one transaction.
    pub async fn batch(&self, stmts: Vec<portable::Stmt>) -> ApiResult<Vec<Vec<portable::Row>>> {
        match self {
            Store::Sqlite(s) => s.batch(stmts).await,
            Store::Postgres(p) => p.batch(&stmts).await,
        }
    }

    /// Diffs the database against `desired` and applies the plan unless `dry_run`.
    /// Refuses destructive steps unless `allow_destructive`.
    pub async fn migrate(&self, desired: &Catalog, allow_destructive: bool, dry_run: bool) -> anyhow::Result<Migration> {
        match self {
            Store::Sqlite(s) => s.migrate(desired.clone(), allow_destructive, dry_run).await,
            Store::Postgres(p) => p.migrate(desired, allow_destructive, dry_run).await,
        }
    }

    /// The stored JWT secret, created on first use.
    pub async fn jwt_secret(&self, data_dir: &std::path::Path) -> anyhow::Result<String> {
        match self {
            Store::Sqlite(_) => Ok(crate::auth::secret::file_secret(data_dir)?),
            Store::Postgres(p) => p.jwt_secret().await,
        }
    }
}

/// Refuses a plan with destructive steps unless allowed, naming them.
pub(crate) fn check_destructive(plan: &MigrationPlan, allow: bool) -> anyhow::Result<()> {
    let destructive = plan.destructive_steps();
    if !allow && !destructive.is_empty() {
        let list: Vec<String> = destructive.iter().map(|s| format!("  - {}", s.describe())).collect();
        anyhow::bail!(
            "the schema change needs destructive steps:\n{}\nrun `basalt migrate --allow-destructive` (or serve --allow-destructive) to apply them",
            list.join("\n")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn request_info_as_json() {
        let mut h = HeaderMap::new();
        h.append("X-Tag", HeaderValue::from_static("one"));
        h.append("x-tag", HeaderValue::from_static("two \"quoted\""));
        h.append("cookie", HeaderValue::from_static("a=1; b = 2"));
        h.append("cookie", HeaderValue::from_static("a=3"));
        let r = RequestInfo::new("GET", "/todos", &h);
        let headers: serde_json::Value = serde_json::from_str(&r.headers).expect("headers json");
        assert_eq!(headers["x-tag"], "two \"quoted\"");
        assert_eq!(headers["cookie"], "a=3");
        let cookies: serde_json::Value = serde_json::from_str(&r.cookies).expect("cookies json");
        assert_eq!(cookies, serde_json::json!({"a": "3", "b": "2"}));
        assert_eq!(RequestInfo::new("GET", "/", &HeaderMap::new()).headers, "{}");
    }
}
