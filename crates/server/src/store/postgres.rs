//! PostgreSQL: a bounded pool, statements prepared once per connection (all parameters typed
//! text and cast in SQL), sessions in UTC so timestamps print as PostgREST's do.

use super::pg_mux::MuxPool;
use super::pg_pipeline::{Answer, Lease, PipeError, PipeManager, PipePool, Step, Target};
use super::pg_session::{SessionSql, RESPONSE_SETTINGS};
use super::pg_tls::{self, PgConnect};
use super::portable::{self, PgCell, PgParam, Row, Stmt};
use super::{check_destructive, DbContext, Migration, ReadResult, ResponseSettings, WriteResult};
use crate::error::{status_for_sqlstate, ApiError, ApiResult};
use basalt_query::sql::{MutateSql, ReadSql};
use basalt_query::value::Param;
use basalt_query::Error as RestError;
use basalt_schema::{ddl, Catalog, DbState, DdlDialect};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

pub struct PgStore {
    /// Basalt's own work (migrations, auth, imports), with `public` first on the search path.
    pool: Pool,
    /// Data-API requests, one pool per exposed schema: each connection's search path is the
    /// schema and the extra search path, so statements prepared on it resolve in that schema.
    /// Its connections are Basalt's own, so a request sends all its statements under one `Sync`.
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
    /// Connections of Basalt's own ([`super::pg_pipeline`]).
    pipes: PipePool,
    /// Connections plain reads share ([`super::pg_mux`]).
    mux: Option<MuxPool>,
    search_path: String,
}

/// Basalt's own pool (tokio-postgres): migrations, auth and imports.
fn build_pool(url: &str, pool_size: usize, timeouts: (u64, u64), search_path: &str) -> anyhow::Result<Pool> {
    let PgConnect { config, tls } = pool_config(url, timeouts.0, search_path, false)?;
    let mgr = Manager::from_config(config, tls.for_tokio_postgres(), ManagerConfig { recycling_method: RecyclingMethod::Fast });
    // A request waits at most `db-pool-acquisition-timeout` for a connection, then gets 504
    // PGRST003.
    Ok(Pool::builder(mgr)
        .max_size(pool_size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(timeouts.1)))
        .build()?)
}

/// The pool of a schema's requests ([`super::pg_pipeline`]).
fn build_pipe_pool(url: &str, pool_size: usize, timeouts: (u64, u64), search_path: &str) -> anyhow::Result<PipePool> {
    let PgConnect { config, tls } = pool_config(url, timeouts.0, search_path, true)?;
    let target = Target::new(&config, tls)?;
    Ok(PipePool::builder(PipeManager { target })
        .max_size(pool_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(timeouts.1)))
        .build()?)
}

/// The connections plain reads share ([`super::pg_mux`]), configured as the request pool's.
fn build_mux_pool(url: &str, size: usize, statement_timeout_ms: u64, search_path: &str) -> anyhow::Result<MuxPool> {
    let PgConnect { config, tls } = pool_config(url, statement_timeout_ms, search_path, true)?;
    Ok(MuxPool::new(Target::new(&config, tls)?, size))
}

/// Connections start in UTC, with the statement timeout and `search_path`. Request pools
/// (`read_only`) default to read-only transactions: plain reads run as implicit transactions,
/// which stay read-only as PostgREST's `BEGIN READ ONLY` does; everything that writes starts its
/// transaction `READ WRITE` explicitly.
fn pool_config(url: &str, statement_timeout_ms: u64, search_path: &str, read_only: bool) -> anyhow::Result<PgConnect> {
    let mut connect = pg_tls::parse(url)?;
    let cfg = &mut connect.config;
    cfg.options(format!(
        "-c TimeZone=UTC -c client_min_messages=warning -c statement_timeout={statement_timeout_ms} -c search_path={}{}",
        search_path.replace(", ", ",").replace(' ', "\\ "),
        if read_only { " -c default_transaction_read_only=on" } else { "" }
    ));
    cfg.application_name("basalt");
    Ok(connect)
}

/// An error and what caused it, which tokio-postgres keeps out of its message (a TLS handshake's
/// "certificate verify failed", say).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// Serialises migrations across instances sharing the database.
const MIGRATION_LOCK: i64 = 0x6261_7361_6c74;

fn texts(params: &[Param]) -> Vec<Option<String>> {
    params.iter().map(Param::as_pg_text).collect()
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
        let pool = build_pool(url, pool_size, timeouts, "\"$user\", public, extensions")?;
        let mut schemas = std::collections::HashMap::new();
        for schema in &rest.schemas {
            let search_path = super::pg_session::search_path(schema, &rest.extra_search_path);
            // Shared connections for plain reads come out of the pool's size: one per core, at
            // most a quarter of it (none below four). Through a transaction-mode pooler
            // consecutive `Sync`s may reach different server connections, which prepared
            // statements cannot survive: no sharing there.
            let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
            let shared = if rest.transaction_pooler { 0 } else { cores.min(pool_size / 4) };
            let pipes = build_pipe_pool(url, pool_size - shared, timeouts, &search_path)?;
            let mux = (shared > 0).then(|| build_mux_pool(url, shared, timeouts.0, &search_path)).transpose()?;
            schemas.insert(schema.clone(), SchemaPool { pipes, mux, search_path });
        }
        let client = pool.get().await.map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {}", with_causes(&e)))?;
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

    /// One schema of a database as it is, for `basalt schema types`: read only, nothing created.
    pub async fn introspect(url: &str, schema: &str) -> anyhow::Result<Catalog> {
        let pool = build_pool(url, 1, (30_000, 10), "public")?;
        let client = pool.get().await.map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {}", with_causes(&e)))?;
        Ok(super::pg_introspect::catalog(&**client, schema).await?)
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

    /// A connection of the pool of the schema a request addresses.
    async fn lease(&self, ctx: &DbContext) -> ApiResult<Lease> {
        Lease::get(&self.schema_pool(ctx)?.pipes).await.map_err(pool_error)
    }

    /// Every read runs with the request context set, as PostgREST, so views and functions see
    /// `request.jwt.claims` and the rest whoever the caller is: in a transaction, or for plain
    /// reads with the statement as one implicit transaction ([`super::pg_pipeline`]).
    pub async fn read(&self, sql: &ReadSql, ctx: &DbContext) -> ApiResult<ReadResult> {
        self.read_pipelined(sql, ctx, true, true).await
    }

    /// Whether `read` runs its statements right after the context, without a transaction of
    /// their own.
    fn plain_read(&self, ctx: &DbContext) -> bool {
        !self.transaction_pooler && !ctx.rollback && self.session.pre_request.is_none()
    }

    /// A read in a transaction with the caller's role and claims (set-returning `/rpc` calls).
    /// Never on a shared connection: a function may change its session (`set_config(…,
    /// false)`), which on a shared connection would reach other callers' requests at once.
    pub async fn read_in_tx(&self, sql: &ReadSql, ctx: &DbContext, read_only: bool) -> ApiResult<ReadResult> {
        self.read_pipelined(sql, ctx, read_only, false).await
    }

    /// The request context's parameters, in the order of [`SessionSql::set`]'s placeholders.
    fn context<'a>(&'a self, ctx: &'a DbContext) -> ApiResult<[Option<&'a str>; 11]> {
        let (r, o) = (&ctx.request, &ctx.origin);
        Ok([
            Some(&ctx.db_role),
            Some(&ctx.claims),
            Some(&r.method),
            Some(&r.path),
            Some(&r.headers),
            Some(&r.cookies),
            Some(&self.schema_pool(ctx)?.search_path),
            Some(&self.session.app_settings),
            ctx.uid.as_deref(),
            o.ip.as_deref(),
            o.request_id.as_deref(),
        ])
    }

    /// Runs `statements` as the caller in one round trip: `BEGIN`, the request context, the
    /// pre-request function, the statements and, with `end`, `COMMIT` (`ROLLBACK` for
    /// `tx=rollback`). Without `end` the transaction stays open for the caller to end. Returns
    /// the statements' answers; after an error the transaction has been rolled back.
    async fn transaction(
        &self,
        conn: &mut Lease,
        ctx: &DbContext,
        read_only: bool,
        end: bool,
        statements: &[Step<'_>],
    ) -> ApiResult<Vec<Answer>> {
        let context = self.context(ctx)?;
        let mut steps = vec![
            Step { sql: if read_only { "BEGIN READ ONLY" } else { "BEGIN READ WRITE" }, params: &[] },
            Step { sql: &self.session.set, params: &context },
        ];
        if let Some(pre) = &self.session.pre_request {
            steps.push(Step { sql: pre, params: &[] });
        }
        let first = steps.len();
        steps.extend_from_slice(statements);
        if end {
            steps.push(end_step(ctx));
        }
        let answers = conn.run(&steps).await.map_err(map_pipe_error)?;
        Ok(answers.into_iter().skip(first).take(statements.len()).collect())
    }

    /// A plain read sends the context, its statement and its counts under one `Sync`: one
    /// implicit read-only transaction in one round trip (should the context fail, PostgreSQL
    /// skips the rest), on a shared connection when one is free ([`super::pg_mux`]). Other
    /// reads run in a transaction of their own.
    async fn read_pipelined(&self, sql: &ReadSql, ctx: &DbContext, read_only: bool, may_share: bool) -> ApiResult<ReadResult> {
        let body_params = texts(&sql.body.params);
        let body_params = strs(&body_params);
        let count_params = sql.count.as_ref().map(|c| texts(&c.params)).unwrap_or_default();
        let count_params = strs(&count_params);
        let planned_params = sql.planned.as_ref().map(|c| texts(&c.params)).unwrap_or_default();
        let planned_params = strs(&planned_params);
        let mut statements = vec![Step { sql: &sql.body.sql, params: &body_params }];
        if let Some(c) = &sql.count {
            statements.push(Step { sql: &c.sql, params: &count_params });
        }
        if let Some(c) = &sql.planned {
            statements.push(Step { sql: &c.sql, params: &planned_params });
        }
        let answers = if read_only && self.plain_read(ctx) {
            let context = self.context(ctx)?;
            let mut steps = vec![Step { sql: &self.session.set_read, params: &context }];
            steps.extend_from_slice(&statements);
            let shared = self.schema_pool(ctx)?.mux.as_ref().filter(|_| may_share).and_then(MuxPool::pick);
            let answers = match shared {
                // A shared connection lost before it answered: a read is safe to send again.
                Some(conn) => match conn.run(&steps).await {
                    Err(PipeError::Io(_)) => self.lease(ctx).await?.run(&steps).await,
                    other => other,
                },
                None => self.lease(ctx).await?.run(&steps).await,
            }
            .map_err(map_pipe_error)?;
            answers.into_iter().skip(1).collect()
        } else {
            let mut conn = self.lease(ctx).await?;
            self.transaction(&mut conn, ctx, read_only, true, &statements).await?
        };
        let mut answers = answers.into_iter();
        let body = answers.next();
        let total = match sql.count {
            Some(_) => Some(int(&row(answers.next())?, 0)?),
            None => None,
        };
        let planned = match sql.planned {
            Some(_) => {
                let explain = row(answers.next())?;
                plan_rows(&serde_json::from_str(text(&explain, 0)?.unwrap_or_default()).unwrap_or_default())
            }
            None => None,
        };
        read_result(body, total, planned)
    }

    /// Calls a function (`/rpc`) as the caller, read-only for GET as PostgREST does.
    pub async fn call(&self, f: &basalt_query::sql::Fragment, read_only: bool, ctx: &DbContext) -> ApiResult<ReadResult> {
        let mut conn = self.lease(ctx).await?;
        let params = texts(&f.params);
        let params = strs(&params);
        let mut answers = self.transaction(&mut conn, ctx, read_only, true, &[Step { sql: &f.sql, params: &params }]).await?;
        read_result(answers.pop(), None, None)
    }

    /// A write in one round trip: `BEGIN`, the context, the statement (and the response
    /// settings) and `COMMIT`, unless the statement must affect exactly one row: then `COMMIT`
    /// or `ROLLBACK` follows once that is known. A caller that goes away in between leaves a
    /// connection that is rolled back before anyone reuses it ([`Lease`]).
    pub async fn write(&self, sql: &MutateSql, bound: super::RowBound, ctx: &DbContext) -> ApiResult<WriteResult> {
        let (f, counted) = match sql {
            MutateSql::Single(f) => (f, false),
            MutateSql::Counted(f) => (f, true),
            MutateSql::Steps { .. } => return Err(ApiError::internal("PostgreSQL got a SQLite plan")),
        };
        let mut conn = self.lease(ctx).await?;
        let params = texts(&f.params);
        let params = strs(&params);
        let stmt = Step { sql: &f.sql, params: &params };
        let end_now = !bound.any();
        let outcome = if counted {
            let settings = Step { sql: RESPONSE_SETTINGS, params: &[] };
            let answers = self.transaction(&mut conn, ctx, false, end_now, &[stmt, settings]).await?;
            let n = answers.first().map_or(0, |a| a.affected as i64);
            answers
                .get(1)
                .and_then(|a| a.row.as_ref())
                .ok_or_else(no_row)
                .and_then(|g| Ok((n, n, None, ResponseSettings { headers: owned(text(g, 0)?), status: owned(text(g, 1)?) })))
        } else {
            let answers = self.transaction(&mut conn, ctx, false, end_now, &[stmt]).await?;
            answers.first().and_then(|a| a.row.as_ref()).ok_or_else(no_row).and_then(|r| {
                let response = ResponseSettings { headers: owned(text(r, 2)?), status: owned(text(r, 3)?) };
                Ok((int(r, 0)?, int(r, 1)?, owned(text(r, 4)?), response))
            })
        };
        // Anything but an answer within the bound ends the open transaction with ROLLBACK.
        let end = match &outcome {
            Ok((affected, ..)) if end_now || bound.check(*affected).is_ok() => end_step(ctx),
            _ => Step { sql: "ROLLBACK", params: &[] },
        };
        if !end_now {
            conn.run(&[end]).await.map_err(map_pipe_error)?;
        }
        let (affected, inserted, body, response) = outcome?;
        bound.check(affected)?;
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
                    tracing::warn!(error = %with_causes(e.as_ref()), "schema listener lost its connection; retrying");
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
    let PgConnect { config, tls } = pg_tls::parse(&store.url)?;
    let (client, mut conn) = config.connect(tls.for_tokio_postgres()).await?;
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

fn strs(texts: &[Option<String>]) -> Vec<Option<&str>> {
    texts.iter().map(Option::as_deref).collect()
}

/// How a request's transaction ends: `COMMIT`, or `ROLLBACK` for `tx=rollback`.
fn end_step(ctx: &DbContext) -> Step<'static> {
    Step { sql: if ctx.rollback { "ROLLBACK" } else { "COMMIT" }, params: &[] }
}

fn no_row() -> ApiError {
    ApiError::internal("a statement returned no row")
}

fn row(answer: Option<Answer>) -> ApiResult<super::pg_pipeline::Row> {
    answer.and_then(|a| a.row).ok_or_else(no_row)
}

fn text(row: &super::pg_pipeline::Row, column: usize) -> ApiResult<Option<&str>> {
    row.text(column).map_err(map_pipe_error)
}

fn owned(text: Option<&str>) -> Option<String> {
    text.map(str::to_string)
}

fn int(row: &super::pg_pipeline::Row, column: usize) -> ApiResult<i64> {
    text(row, column)?.and_then(|n| n.parse().ok()).ok_or_else(|| ApiError::internal(format!("column {column} is not a number")))
}

/// A read's one row: `(rows, body, response.headers, response.status)`.
fn read_result(answer: Option<Answer>, total: Option<i64>, planned: Option<i64>) -> ApiResult<ReadResult> {
    let row = row(answer)?;
    Ok(ReadResult {
        rows: int(&row, 0)?,
        body: text(&row, 1)?.unwrap_or_default().to_string(),
        total,
        planned,
        response: ResponseSettings { headers: owned(text(&row, 2)?), status: owned(text(&row, 3)?) },
    })
}

/// The planner's row estimate from `EXPLAIN (FORMAT JSON)`: the top plan node's "Plan Rows".
fn pool_error<E: std::fmt::Display>(e: deadpool::managed::PoolError<E>) -> ApiError {
    match e {
        deadpool::managed::PoolError::Timeout(_) => {
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
fn raised_error(message: &str, detail: Option<&str>) -> ApiError {
    let message: serde_json::Value = serde_json::from_str(message).unwrap_or_default();
    let detail: serde_json::Value = detail.and_then(|d| serde_json::from_str(d).ok()).unwrap_or_default();
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
        Some(db) => map_db_error(db.code().code(), db.message(), db.detail(), db.hint()),
        None if e.is_closed() => connection_lost(),
        None => ApiError::internal(e),
    }
}

/// The same for the plain reads' own connections.
fn map_pipe_error(e: PipeError) -> ApiError {
    match e {
        PipeError::Db(db) => map_db_error(&db.code, &db.message, db.detail.as_deref(), db.hint.as_deref()),
        PipeError::Io(_) => connection_lost(),
        PipeError::Protocol(_) => ApiError::internal(e),
    }
}

fn connection_lost() -> ApiError {
    ApiError::Rest(RestError::new(503, "PGRST001", "Database client error. Retrying the connection."))
}

fn map_db_error(code: &str, message: &str, detail: Option<&str>, hint: Option<&str>) -> ApiError {
    if code == "PGRST" {
        return raised_error(message, detail);
    }
    if code == "57014" {
        return ApiError::Rest(RestError::new(500, code, message).hint("The statement ran longer than statement_timeout_ms."));
    }
    let status = status_for_sqlstate(code, false);
    // As PostgREST, the database's own code and message, which clients act on (40001: retry;
    // 55P03: locked; P0002 from a function), but for the classes whose messages describe the
    // server itself (58: system errors with file paths, XX: internal, F0: its configuration).
    if ["58", "XX", "F0"].iter().any(|class| code.starts_with(class)) {
        return ApiError::internal(format!("postgres {code}: {message}"));
    }
    let mut err = RestError::new(status, code, message);
    err.details = detail.map(str::to_string);
    err.hint = hint.map(str::to_string);
    ApiError::Rest(err)
}
