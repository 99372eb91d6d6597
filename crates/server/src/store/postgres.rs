//! PostgreSQL: a bounded pool, statements prepared once per connection (all parameters typed
//! text and cast in SQL), sessions in UTC so timestamps print as PostgREST's do.

use std::str::FromStr;

use basalt_query::sql::{MutateSql, ReadSql};
use basalt_query::value::Param;
use basalt_query::Error as RestError;
use basalt_schema::{ddl, Catalog, DbState, DdlDialect};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::Type;
use tokio_postgres::NoTls;

use super::pg_session::{SessionSql, RESPONSE_SETTINGS, SET_TYPES};
use super::portable::{self, PgCell, PgParam, Row, Stmt};
use super::{check_destructive, DbContext, Migration, ReadResult, ResponseSettings, WriteResult};
use crate::error::{status_for_sqlstate, ApiError, ApiResult};

pub struct PgStore {
    /// Basalt's own work (migrations, auth, imports), with `public` first on the search path.
    pool: Pool,
    /// Data-API requests, one pool per exposed schema: each connection's search path is the
    /// schema and the extra search path, so statements prepared on it resolve in that schema.
    schemas: std::collections::HashMap<String, SchemaPool>,
    default_schema: String,
    url: String,
    session: SessionSql,
    /// Roles tokens have named that exist, are no superusers and the connecting role may
    /// switch to (looked up on first use).
    roles: std::sync::RwLock<std::collections::HashSet<String>>,
    /// Plain reads run in explicit transactions too ([`crate::config::RestSettings::transaction_pooler`]).
    transaction_pooler: bool,
}

struct SchemaPool {
    pool: Pool,
    search_path: String,
}

/// A pool whose connections start in UTC, with the statement timeout and `search_path`.
/// Request pools (`read_only`) default to read-only transactions: plain reads run as implicit
/// transactions, which stay read-only as PostgREST's `BEGIN READ ONLY` does; everything that
/// writes starts its transaction `READ WRITE` explicitly.
fn build_pool(url: &str, pool_size: usize, timeouts: (u64, u64), search_path: &str, read_only: bool) -> anyhow::Result<Pool> {
    let (statement_timeout_ms, acquisition_timeout_s) = timeouts;
    let mut cfg = tokio_postgres::Config::from_str(url)?;
    cfg.options(format!(
        "-c TimeZone=UTC -c client_min_messages=warning -c statement_timeout={statement_timeout_ms} -c search_path={}{}",
        search_path.replace(", ", ",").replace(' ', "\\ "),
        if read_only { " -c default_transaction_read_only=on" } else { "" }
    ));
    cfg.application_name("basalt");
    let mgr = Manager::from_config(cfg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    // A request waits at most `db-pool-acquisition-timeout` for a connection, then gets 504
    // PGRST003.
    Ok(Pool::builder(mgr)
        .max_size(pool_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(acquisition_timeout_s)))
        .build()?)
}

type SqlRef<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

/// Serialises migrations across instances sharing the database.
const MIGRATION_LOCK: i64 = 0x6261_7361_6c74;

fn texts(params: &[Param]) -> Vec<Option<String>> {
    params.iter().map(Param::as_pg_text).collect()
}

fn refs(v: &[Option<String>]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    v.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)).collect()
}

impl PgStore {
    pub async fn connect(
        url: &str,
        pool_size: usize,
        statement_timeout_ms: u64,
        rest: &crate::config::RestSettings,
    ) -> anyhow::Result<PgStore> {
        let session = SessionSql::new(rest);
        let timeouts = (statement_timeout_ms, rest.pool_acquisition_timeout);
        // `extensions` on the search path, as Supabase has it, so `uuid_generate_v4()` and
        // pgcrypto's functions work unqualified in migrations and defaults.
        let pool = build_pool(url, pool_size, timeouts, "\"$user\", public, extensions", false)?;
        let mut schemas = std::collections::HashMap::new();
        for schema in &rest.schemas {
            let search_path = super::pg_session::search_path(schema, &rest.extra_search_path);
            let pool = build_pool(url, pool_size, timeouts, &search_path, true)?;
            schemas.insert(schema.clone(), SchemaPool { pool, search_path });
        }
        let client = pool.get().await.map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS _basalt_migrations (id bigserial PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), catalog text NOT NULL, statements text NOT NULL);
                 CREATE TABLE IF NOT EXISTS _basalt_meta (key text PRIMARY KEY, value text NOT NULL);",
            )
            .await
            .or_else(|e| if e.code().map(|c| c.code()) == Some("23505") { Ok(()) } else { Err(e) })?;
        // Back to the pool first: with a pool of one, bootstrapping would wait for it forever.
        drop(client);
        bootstrap_auth(&pool).await?;
        let default_schema = rest.default_schema().to_string();
        Ok(PgStore {
            pool,
            schemas,
            default_schema,
            url: url.to_string(),
            session,
            roles: Default::default(),
            transaction_pooler: rest.transaction_pooler,
        })
    }

    async fn client(&self) -> ApiResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A connection of Basalt's own pool (its role, not a request's).
    pub(super) async fn admin_client(&self) -> ApiResult<deadpool_postgres::Object> {
        self.client().await
    }

    /// The pool of the schema a request addresses.
    fn schema_pool(&self, ctx: &DbContext) -> ApiResult<&SchemaPool> {
        let name = ctx.schema.as_deref().unwrap_or(&self.default_schema);
        self.schemas.get(name).ok_or_else(|| ApiError::internal(format!("no pool for schema {name}")))
    }

    async fn request_client(&self, ctx: &DbContext) -> ApiResult<deadpool_postgres::Object> {
        self.schema_pool(ctx)?.pool.get().await.map_err(pool_error)
    }

    /// Every read runs with the request context set, as PostgREST, so views and functions see
    /// `request.jwt.claims` and the rest whoever the caller is: in a pipelined transaction, or
    /// for plain reads as one statement after the context is set for the session.
    pub async fn read(&self, sql: &ReadSql, ctx: &DbContext) -> ApiResult<ReadResult> {
        self.read_pipelined(sql, ctx, true).await
    }

    /// Whether `read` runs `sql` as one statement after the context, with no transaction of its
    /// own to end: then a caller that goes away mid-read leaves the connection as clean as a
    /// finished read does, and the read may run on the caller's task.
    pub fn plain_read(&self, sql: &ReadSql, ctx: &DbContext) -> bool {
        !self.transaction_pooler && !ctx.rollback && self.session.pre_request.is_none() && sql.count.is_none() && sql.planned.is_none()
    }

    /// A read in a transaction with the caller's role and claims (set-returning `/rpc` calls).
    pub async fn read_in_tx(&self, sql: &ReadSql, ctx: &DbContext, read_only: bool) -> ApiResult<ReadResult> {
        self.read_pipelined(sql, ctx, read_only).await
    }

    /// The request context's parameters, in [`SET_TYPES`] order.
    fn set_params<'a>(&'a self, ctx: &'a DbContext) -> ApiResult<[SqlRef<'a>; 11]> {
        let r = &ctx.request;
        let path = &self.schema_pool(ctx)?.search_path;
        let o = &ctx.origin;
        Ok([
            &ctx.db_role,
            &*ctx.claims,
            &r.method,
            &r.path,
            &r.headers,
            &r.cookies,
            path,
            &self.session.app_settings,
            &ctx.uid,
            &o.ip,
            &o.request_id,
        ])
    }

    /// The pre-request function's call, prepared, when one is configured.
    async fn pre_request(&self, client: &deadpool_postgres::Object) -> ApiResult<Option<tokio_postgres::Statement>> {
        match &self.session.pre_request {
            Some(sql) => Ok(Some(client.prepare_cached(sql).await.map_err(map_pg_error)?)),
            None => Ok(None),
        }
    }

    /// One round trip: BEGIN, the request context, the pre-request function, the query (and
    /// its counts) and COMMIT (or ROLLBACK) are sent together (tokio-postgres pipelines requests
    /// polled together); an error in any of them aborts the transaction, whose end then rolls back.
    /// A plain read sends only the context (for the session) and its statement.
    async fn read_pipelined(&self, sql: &ReadSql, ctx: &DbContext, read_only: bool) -> ApiResult<ReadResult> {
        let client = self.request_client(ctx).await?;
        let body_params = texts(&sql.body.params);
        let stmt = prepare(&client, &sql.body.sql, &vec![Type::TEXT; body_params.len()]).await?;
        let count_params = sql.count.as_ref().map(|c| texts(&c.params)).unwrap_or_default();
        let count_stmt = match &sql.count {
            Some(c) => Some(prepare(&client, &c.sql, &vec![Type::TEXT; count_params.len()]).await?),
            None => None,
        };
        let planned_params = sql.planned.as_ref().map(|c| texts(&c.params)).unwrap_or_default();
        let planned_stmt = match &sql.planned {
            Some(c) => Some(prepare(&client, &c.sql, &vec![Type::TEXT; planned_params.len()]).await?),
            None => None,
        };
        let body_refs = refs(&body_params);
        let count_refs = refs(&count_params);
        let planned_refs = refs(&planned_params);
        let result = |row: tokio_postgres::Row, total, planned| ReadResult {
            rows: row.get(0),
            body: row.get(1),
            total,
            planned,
            response: ResponseSettings { headers: row.get(2), status: row.get(3) },
        };
        let pre = self.pre_request(&client).await?;
        let set_params = self.set_params(ctx)?;
        if read_only && self.plain_read(sql, ctx) {
            // A plain read is one statement: it runs as an implicit (read-only) transaction after
            // the context is set for the session, both in one round trip. Should the context
            // fail, the statement has run with the connection's previous one, read-only; its
            // answer is dropped for the error and the connection is closed rather than reused.
            let set = prepare(&client, &self.session.set_session, &SET_TYPES).await?;
            let (s, row) = tokio::join!(client.query_one(&set, &set_params), client.query_one(&stmt, &body_refs));
            if let Err(e) = s {
                drop(deadpool_postgres::Object::take(client));
                return Err(map_pg_error(e));
            }
            return Ok(result(row.map_err(map_pg_error)?, None, None));
        }
        let count = async {
            match &count_stmt {
                Some(s) => client.query_one(s, &count_refs).await.map(|r| Some(r.get::<_, i64>(0))),
                None => Ok(None),
            }
        };
        let planned = async {
            match &planned_stmt {
                Some(s) => client.query_one(s, &planned_refs).await.map(|r| plan_rows(&r.get::<_, serde_json::Value>(0))),
                None => Ok(None),
            }
        };
        let begin = client.prepare_cached(if read_only { "BEGIN READ ONLY" } else { "BEGIN READ WRITE" }).await.map_err(map_pg_error)?;
        let set = client.prepare_typed_cached(&self.session.set, &SET_TYPES).await.map_err(map_pg_error)?;
        let end = client.prepare_cached(if ctx.rollback { "ROLLBACK" } else { "COMMIT" }).await.map_err(map_pg_error)?;
        let pre_request = async {
            match &pre {
                Some(p) => client.execute(p, &[]).await.map(|_| ()),
                None => Ok(()),
            }
        };
        // All of them are awaited, and the first error in pipeline order is the one reported: once
        // one fails, the later ones fail too ("current transaction is aborted"), and their answers
        // may be seen first.
        let (b, s, p, row, total, planned, e) = tokio::join!(
            client.execute(&begin, &[]),
            client.query_one(&set, &set_params),
            pre_request,
            client.query_one(&stmt, &body_refs),
            count,
            planned,
            client.execute(&end, &[]),
        );
        b.and(s.map(|_| 0)).and(p.map(|_| 0)).map_err(map_pg_error)?;
        let (row, total, planned) = (row.map_err(map_pg_error)?, total.map_err(map_pg_error)?, planned.map_err(map_pg_error)?);
        e.map_err(map_pg_error)?;
        Ok(result(row, total, planned))
    }

    /// Calls a function (`/rpc`) as the caller, read-only for GET as PostgREST does.
    pub async fn call(&self, f: &basalt_query::sql::Fragment, read_only: bool, ctx: &DbContext) -> ApiResult<ReadResult> {
        let mut client = self.request_client(ctx).await?;
        let params = texts(&f.params);
        let stmt = prepare(&client, &f.sql, &vec![Type::TEXT; params.len()]).await?;
        let tx = client.build_transaction().read_only(read_only).start().await.map_err(map_pg_error)?;
        self.set_context(&tx, ctx).await?;
        let row = tx.query_one(&stmt, &refs(&params)).await.map_err(map_pg_error)?;
        if ctx.rollback {
            tx.rollback().await.map_err(map_pg_error)?;
        } else {
            tx.commit().await.map_err(map_pg_error)?;
        }
        Ok(ReadResult {
            rows: row.get(0),
            body: row.get::<_, Option<String>>(1).unwrap_or_default(),
            total: None,
            planned: None,
            response: ResponseSettings { headers: row.get(2), status: row.get(3) },
        })
    }

    pub async fn write(&self, sql: &MutateSql, single: bool, ctx: &DbContext) -> ApiResult<WriteResult> {
        let (f, counted) = match sql {
            MutateSql::Single(f) => (f, false),
            MutateSql::Counted(f) => (f, true),
            MutateSql::Steps { .. } => return Err(ApiError::internal("PostgreSQL got a SQLite plan")),
        };
        let client = self.request_client(ctx).await?;
        let params = texts(&f.params);
        let stmt = prepare(&client, &f.sql, &vec![Type::TEXT; params.len()]).await?;
        let begin = client.prepare_cached("BEGIN READ WRITE").await.map_err(map_pg_error)?;
        let set = client.prepare_typed_cached(&self.session.set, &SET_TYPES).await.map_err(map_pg_error)?;
        let pre = self.pre_request(&client).await?;
        let settings = client.prepare_cached(RESPONSE_SETTINGS).await.map_err(map_pg_error)?;
        let set_params = self.set_params(ctx)?;
        let param_refs = refs(&params);
        let pre_request = async {
            match &pre {
                Some(p) => client.execute(p, &[]).await.map(|_| ()),
                None => Ok(()),
            }
        };
        // BEGIN, the context, the statement and the response settings go in one round trip, and
        // so does the transaction's end unless the statement must affect exactly one row (then
        // COMMIT follows once that is known). After an error, PostgreSQL answers the pipelined
        // COMMIT with a rollback.
        let end_now = !single;
        let end = client.prepare_cached(if ctx.rollback { "ROLLBACK" } else { "COMMIT" }).await.map_err(map_pg_error)?;
        let end_fut = async {
            match end_now {
                true => client.execute(&end, &[]).await.map(|_| ()),
                false => Ok(()),
            }
        };
        let (outcome, ended) = if counted {
            let (b, s, p, n, g, e) = tokio::join!(
                client.execute(&begin, &[]),
                client.query_one(&set, &set_params),
                pre_request,
                client.execute(&stmt, &param_refs),
                client.query_one(&settings, &[]),
                end_fut
            );
            let outcome = b.and(s.map(|_| 0)).and(p.map(|_| 0)).and(n).and_then(|n| {
                g.and_then(|g| Ok((n as i64, n as i64, None, ResponseSettings { headers: g.try_get(0)?, status: g.try_get(1)? })))
            });
            (outcome, e)
        } else {
            let (b, s, p, row, e) = tokio::join!(
                client.execute(&begin, &[]),
                client.query_one(&set, &set_params),
                pre_request,
                client.query_one(&stmt, &param_refs),
                end_fut
            );
            // `try_get`: a surprise in the row must end in ROLLBACK below, never in a panic that
            // would return the connection to the pool inside an open transaction.
            let outcome = b.and(s.map(|_| 0)).and(p.map(|_| 0)).and(row).and_then(|row| {
                let response = ResponseSettings { headers: row.try_get(2)?, status: row.try_get(3)? };
                Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?, row.try_get::<_, Option<String>>(4)?, response))
            });
            (outcome, e)
        };
        let (affected, inserted, body, response) = match outcome {
            Ok(o) => o,
            Err(e) => {
                if !end_now {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                return Err(map_pg_error(e));
            }
        };
        if end_now {
            ended.map_err(map_pg_error)?;
        } else if affected != 1 {
            client.batch_execute("ROLLBACK").await.map_err(map_pg_error)?;
            return Err(RestError::not_single(affected).into());
        } else {
            client.batch_execute(if ctx.rollback { "ROLLBACK" } else { "COMMIT" }).await.map_err(map_pg_error)?;
        }
        Ok(WriteResult { affected, inserted, body, response })
    }

    /// Whether `role` exists, is no superuser and may be switched to: a token (signed with the
    /// project secret) may run as any such role, as PostgREST allows, but never as a role that
    /// bypasses everything, nor as one whose `SET ROLE` would fail.
    pub async fn role_allowed(&self, role: &str) -> ApiResult<bool> {
        if self.roles.read().is_ok_and(|r| r.contains(role)) {
            return Ok(true);
        }
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT NOT rolsuper AND pg_has_role(session_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = $1")
            .await
            .map_err(map_pg_error)?;
        let ok = client.query_opt(&stmt, &[&role]).await.map_err(map_pg_error)?.is_some_and(|r| r.get::<_, bool>(0));
        if ok {
            if let Ok(mut r) = self.roles.write() {
                r.insert(role.to_string());
            }
        }
        Ok(ok)
    }

    /// The catalogs to serve, one per exposed schema: each introspected, as PostgREST builds its
    /// schema cache, except `public` when a schema file describes it (`file`), which gets the
    /// database's functions for `/rpc`.
    pub async fn catalogs(&self, schemas: &[String], file: Option<&Catalog>) -> anyhow::Result<Vec<Catalog>> {
        let client = self.pool.get().await?;
        let mut out = Vec::with_capacity(schemas.len());
        for schema in schemas {
            let catalog = match file {
                Some(f) if schema == "public" => {
                    let mut c = f.clone();
                    c.functions = super::pg_introspect::functions(&**client, schema).await?;
                    c
                }
                _ => super::pg_introspect::catalog(&**client, schema).await?,
            };
            out.push(catalog);
        }
        Ok(out)
    }

    /// The schema file's catalog as last migrated (by any instance).
    pub async fn migrated_catalog(&self) -> anyhow::Result<Option<Catalog>> {
        let client = self.pool.get().await?;
        let row = client.query_opt("SELECT catalog FROM _basalt_migrations ORDER BY id DESC LIMIT 1", &[]).await?;
        Ok(row.and_then(|r| serde_json::from_str::<Catalog>(&r.get::<_, String>(0)).ok()))
    }

    /// Listens for schema changes announced by any instance, `basalt migrate` or DDL (an event
    /// trigger), and swaps in the new catalog, as PostgREST reloads its schema cache on NOTIFY.
    pub fn watch_schema(
        self: &std::sync::Arc<Self>,
        cell: std::sync::Arc<crate::catalog::SharedCatalog>,
        introspect: bool,
        schemas: Vec<String>,
    ) {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = listen_once(&store, &cell, introspect, &schemas).await {
                    tracing::warn!(error = %e, "schema listener lost its connection; retrying");
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        });
    }

    /// Runs portable statements in one transaction; rows of each statement are returned.
    pub async fn batch(&self, stmts: &[Stmt]) -> ApiResult<Vec<Vec<Row>>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(map_pg_error)?;
        let mut out = Vec::with_capacity(stmts.len());
        for s in stmts {
            let stmt = tx.prepare_cached(&portable::to_pg(&s.sql)).await.map_err(map_pg_error)?;
            let params: Vec<PgParam> = s.params.iter().map(PgParam).collect();
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
            let rows = tx.query(&stmt, &refs).await.map_err(map_pg_error)?;
            out.push(
                rows.iter()
                    .map(|r| r.columns().iter().enumerate().map(|(i, c)| (c.name().to_string(), r.get::<_, PgCell>(i).0)).collect::<Row>())
                    .collect(),
            );
        }
        tx.commit().await.map_err(map_pg_error)?;
        Ok(out)
    }

    /// Applies plain SQL migration files (Supabase's `supabase/migrations`) in name order,
    /// each once and in its own transaction, recorded in `_basalt_sql_migrations`.
    pub async fn migrate_sql_dir(&self, files: &[(String, String)], progress: &indicatif::ProgressBar) -> anyhow::Result<Vec<String>> {
        let mut client = self.pool.get().await?;
        client
            .batch_execute("CREATE TABLE IF NOT EXISTS _basalt_sql_migrations (name text PRIMARY KEY, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            .await?;
        let mut applied = Vec::new();
        for (name, sql) in files {
            progress.set_message(name.clone());
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
            let done = tx.query_opt("SELECT checksum FROM _basalt_sql_migrations WHERE name = $1", &[name]).await?;
            let checksum = crate::auth::tokens::sha256_hex(sql);
            match done {
                Some(row) if row.get::<_, String>(0) != checksum => {
                    anyhow::bail!("{name} was applied before and has changed since; add a new migration file instead")
                }
                Some(_) => {}
                None => {
                    tx.batch_execute(sql).await.map_err(|e| anyhow::anyhow!("{name}: {}", pg_message(&e)))?;
                    tx.execute("INSERT INTO _basalt_sql_migrations (name, checksum) VALUES ($1, $2)", &[name, &checksum]).await?;
                    tx.batch_execute("NOTIFY basalt_schema").await?;
                    applied.push(name.clone());
                }
            }
            tx.commit().await?;
            progress.inc(1);
        }
        Ok(applied)
    }

    pub async fn jwt_secret(&self) -> anyhow::Result<String> {
        let client = self.pool.get().await?;
        let candidate = crate::auth::secret::generate();
        client
            .execute("INSERT INTO _basalt_meta (key, value) VALUES ('jwt_secret', $1) ON CONFLICT (key) DO NOTHING", &[&candidate])
            .await?;
        Ok(client.query_one("SELECT value FROM _basalt_meta WHERE key = 'jwt_secret'", &[]).await?.get(0))
    }

    pub async fn migrate(&self, desired: &Catalog, allow_destructive: bool, dry_run: bool) -> anyhow::Result<Migration> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        let state = introspect(&tx).await?;
        let previous: Option<Catalog> = tx
            .query_opt("SELECT catalog FROM _basalt_migrations ORDER BY id DESC LIMIT 1", &[])
            .await?
            .and_then(|r| serde_json::from_str(&r.get::<_, String>(0)).ok());
        let plan = basalt_schema::diff(&state, previous.as_ref(), desired);
        let statements = ddl::render(&plan, desired, &state, DdlDialect::Postgres);
        if dry_run {
            tx.rollback().await?;
            return Ok(Migration { plan, statements, applied: false });
        }
        check_destructive(&plan, allow_destructive)?;
        for s in &statements {
            tx.batch_execute(s).await.map_err(|e| anyhow::anyhow!("{}\nwhile running: {s}", pg_message(&e)))?;
        }
        if previous.as_ref() != Some(desired) || !plan.is_empty() {
            tx.execute(
                "INSERT INTO _basalt_migrations (catalog, statements) VALUES ($1, $2)",
                &[&serde_json::to_string(desired)?, &statements.join(";\n")],
            )
            .await?;
            // Other instances reload their catalog when this commits.
            tx.batch_execute("NOTIFY basalt_schema").await?;
        }
        tx.commit().await?;
        Ok(Migration { applied: !plan.is_empty(), plan, statements })
    }
}

async fn listen_once(store: &PgStore, cell: &crate::catalog::SharedCatalog, introspect: bool, schemas: &[String]) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    let (client, mut conn) = tokio_postgres::connect(&store.url, NoTls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    let driver = tokio::spawn(async move {
        futures_util::pin_mut!(stream);
        while let Some(msg) = stream.next().await {
            match msg {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n.channel().to_string());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    client.batch_execute("LISTEN basalt_schema").await?;
    while rx.recv().await.is_some() {
        // Bursts of notifications (a migration of many statements) reload once.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        while rx.try_recv().is_ok() {}
        let file = if introspect { None } else { store.migrated_catalog().await? };
        cell.set_all(store.catalogs(schemas, file.as_ref()).await?);
        tracing::info!("schema reloaded");
    }
    driver.abort();
    Ok(())
}

/// Creates Supabase's roles, the `auth` schema, its tables and helper functions, once,
/// under an advisory lock so instances starting together do not collide.
async fn bootstrap_auth(pool: &Pool) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    tx.batch_execute(super::auth_schema::POSTGRES).await.map_err(|e| anyhow::anyhow!("auth schema: {}", pg_message(&e)))?;
    tx.batch_execute(super::audit_schema::POSTGRES).await.map_err(|e| anyhow::anyhow!("audit schema: {}", pg_message(&e)))?;
    tx.commit().await?;
    Ok(())
}

impl PgStore {
    /// As PostgREST: the request context, local to the transaction, so native policies,
    /// `auth.uid()` defaults and triggers see the caller; then the pre-request function.
    async fn set_context(&self, tx: &deadpool_postgres::Transaction<'_>, ctx: &DbContext) -> ApiResult<()> {
        let stmt = tx.prepare_typed_cached(&self.session.set, &SET_TYPES).await.map_err(map_pg_error)?;
        tx.query_one(&stmt, &self.set_params(ctx)?).await.map_err(map_pg_error)?;
        if let Some(pre) = &self.session.pre_request {
            let stmt = tx.prepare_cached(pre).await.map_err(map_pg_error)?;
            tx.execute(&stmt, &[]).await.map_err(map_pg_error)?;
        }
        Ok(())
    }
}

/// Prepares (or finds prepared) a statement on a request connection. Plain reads leave their
/// caller's role set for the session, and a statement is resolved when it is prepared: should
/// that role lack what preparing needs (a schema's USAGE), the statement is prepared again as the
/// connecting role, as every statement was before plain reads left a role behind.
async fn prepare(client: &deadpool_postgres::Object, sql: &str, types: &[Type]) -> ApiResult<tokio_postgres::Statement> {
    match client.prepare_typed_cached(sql, types).await {
        Ok(s) => Ok(s),
        Err(_) => {
            client.batch_execute("RESET ROLE").await.map_err(map_pg_error)?;
            client.prepare_typed_cached(sql, types).await.map_err(map_pg_error)
        }
    }
}

/// The planner's row estimate from `EXPLAIN (FORMAT JSON)`: the top plan node's "Plan Rows".
fn pool_error(e: deadpool_postgres::PoolError) -> ApiError {
    match e {
        deadpool_postgres::PoolError::Timeout(_) => {
            ApiError::Rest(RestError::new(504, "PGRST003", "Timed out acquiring connection from connection pool."))
        }
        other => {
            ApiError::Rest(RestError::new(503, "PGRST001", "Database client error. Retrying the connection.").details(other.to_string()))
        }
    }
}

fn plan_rows(explain: &serde_json::Value) -> Option<i64> {
    explain.get(0)?.get("Plan")?.get("Plan Rows")?.as_f64().map(|n| n as i64)
}

async fn introspect(tx: &deadpool_postgres::Transaction<'_>) -> anyhow::Result<DbState> {
    let mut state = DbState::default();
    let rows = tx
        .query(
            "SELECT c.relname::text, a.attname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE '\\_basalt%'
             ORDER BY c.relname, a.attnum",
            &[],
        )
        .await?;
    for r in rows {
        let (t, c): (String, String) = (r.get(0), r.get(1));
        state.tables.entry(t).or_default().columns.push(c);
    }
    let rows = tx.query("SELECT tablename::text, indexname::text FROM pg_indexes WHERE schemaname = 'public'", &[]).await?;
    for r in rows {
        let (t, i): (String, String) = (r.get(0), r.get(1));
        if let Some(tbl) = state.tables.get_mut(&t) {
            tbl.indexes.push(i);
        }
    }
    Ok(state)
}

fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

/// `RAISE SQLSTATE 'PGRST' USING message = '{"code":..,"message":..,"details":..,"hint":..}',
/// detail = '{"status":..,"headers":{..}}'`: SQL chooses the whole error response, as PostgREST allows.
fn raised_error(db: &tokio_postgres::error::DbError) -> ApiError {
    let message: serde_json::Value = serde_json::from_str(db.message()).unwrap_or_default();
    let detail: serde_json::Value = db.detail().and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
    let (Some(m), Some(d)) = (message.as_object(), detail.as_object()) else {
        return ApiError::Rest(
            RestError::new(500, "PGRST121", "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error")
                .details("Invalid JSON value for MESSAGE: '{\"code\":..,\"message\":..}' and DETAIL: '{\"status\":..,\"headers\":..}'"),
        );
    };
    let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let status = d.get("status").and_then(|v| v.as_u64()).and_then(|s| u16::try_from(s).ok()).filter(|s| (100..600).contains(s));
    let mut err = RestError::new(status.unwrap_or(500), &text("code").unwrap_or_default(), text("message").unwrap_or_default());
    err.details = text("details");
    err.hint = text("hint");
    if let Some(h) = d.get("headers").and_then(|v| v.as_object()) {
        err.headers = Some(Box::new(h.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect()));
    }
    ApiError::Rest(err)
}

/// PostgreSQL errors pass through with their SQLSTATE, message, detail and hint, as PostgREST.
pub fn map_pg_error(e: tokio_postgres::Error) -> ApiError {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            if code == "PGRST" {
                return raised_error(db);
            }
            if code == "57014" {
                return ApiError::Rest(RestError::new(500, code, db.message()).hint("The statement ran longer than statement_timeout_ms."));
            }
            let status = status_for_sqlstate(code, false);
            if status >= 500 && !code.starts_with("08") && !code.starts_with("53") && !code.starts_with("PT") {
                return ApiError::internal(format!("postgres {code}: {}", db.message()));
            }
            let mut err = RestError::new(status, code, db.message());
            err.details = db.detail().map(str::to_string);
            err.hint = db.hint().map(str::to_string);
            ApiError::Rest(err)
        }
        None if e.is_closed() => ApiError::Rest(RestError::new(503, "PGRST001", "Database client error. Retrying the connection.")),
        None => ApiError::internal(e),
    }
}
