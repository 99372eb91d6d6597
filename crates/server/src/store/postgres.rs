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

use super::portable::{self, PgCell, PgParam, Row, Stmt};
use super::{check_destructive, DbContext, Migration, ReadResult, WriteResult};
use crate::auth::Role;
use crate::error::{status_for_sqlstate, ApiError, ApiResult};

pub struct PgStore {
    pool: Pool,
    url: String,
}

/// Serialises migrations across instances sharing the database.
const MIGRATION_LOCK: i64 = 0x6261_7361_6c74;

fn texts(params: &[Param]) -> Vec<Option<String>> {
    params.iter().map(Param::as_pg_text).collect()
}

fn refs(v: &[Option<String>]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    v.iter().map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync)).collect()
}

impl PgStore {
    pub async fn connect(url: &str, pool_size: usize, statement_timeout_ms: u64) -> anyhow::Result<PgStore> {
        let mut cfg = tokio_postgres::Config::from_str(url)?;
        // `extensions` on the search path, as Supabase has it, so `uuid_generate_v4()` and pgcrypto's
        // functions work unqualified in migrations and defaults.
        cfg.options(format!(
            "-c TimeZone=UTC -c client_min_messages=warning -c statement_timeout={statement_timeout_ms} -c search_path=\"$user\",public,extensions"
        ));
        cfg.application_name("basalt");
        let mgr = Manager::from_config(cfg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(mgr).max_size(pool_size).build()?;
        let client = pool.get().await.map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS _basalt_migrations (id bigserial PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), catalog text NOT NULL, statements text NOT NULL);
                 CREATE TABLE IF NOT EXISTS _basalt_meta (key text PRIMARY KEY, value text NOT NULL);",
            )
            .await
            .or_else(|e| if e.code().map(|c| c.code()) == Some("23505") { Ok(()) } else { Err(e) })?;
        bootstrap_auth(&pool).await?;
        Ok(PgStore { pool, url: url.to_string() })
    }

    async fn client(&self) -> ApiResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| {
            ApiError::Rest(RestError::new(503, "PGRST001", "Database client error. Retrying the connection.").details(e.to_string()))
        })
    }

    pub async fn read(&self, sql: &ReadSql, ctx: &DbContext) -> ApiResult<ReadResult> {
        // service_role reads need no transaction, unless two statements must see one snapshot.
        let in_tx = ctx.role != Role::ServiceRole || sql.count.is_some();
        self.read_pipelined(sql, ctx, in_tx, true).await
    }

    /// A read in a transaction with the caller's role and claims (set-returning `/rpc` calls).
    pub async fn read_in_tx(&self, sql: &ReadSql, ctx: &DbContext, read_only: bool) -> ApiResult<ReadResult> {
        self.read_pipelined(sql, ctx, true, read_only).await
    }

    /// One round trip: BEGIN, the role and claims, the query (and its count) and COMMIT are sent
    /// together (tokio-postgres pipelines requests polled together); an error in any of them
    /// aborts the transaction, whose COMMIT then rolls back.
    async fn read_pipelined(&self, sql: &ReadSql, ctx: &DbContext, in_tx: bool, read_only: bool) -> ApiResult<ReadResult> {
        let client = self.client().await?;
        let body_params = texts(&sql.body.params);
        let stmt = client.prepare_typed_cached(&sql.body.sql, &vec![Type::TEXT; body_params.len()]).await.map_err(map_pg_error)?;
        let count_params = sql.count.as_ref().map(|c| texts(&c.params)).unwrap_or_default();
        let count_stmt = match &sql.count {
            Some(c) => Some(client.prepare_typed_cached(&c.sql, &vec![Type::TEXT; count_params.len()]).await.map_err(map_pg_error)?),
            None => None,
        };
        let body_refs = refs(&body_params);
        let count_refs = refs(&count_params);
        let count = async {
            match &count_stmt {
                Some(s) => client.query_one(s, &count_refs).await.map(|r| Some(r.get::<_, i64>(0))),
                None => Ok(None),
            }
        };
        if !in_tx {
            let (row, total) = tokio::try_join!(client.query_one(&stmt, &body_refs), count).map_err(map_pg_error)?;
            return Ok(ReadResult { rows: row.get(0), body: row.get(1), total });
        }
        let begin = client.prepare_cached(if read_only { "BEGIN READ ONLY" } else { "BEGIN" }).await.map_err(map_pg_error)?;
        let set = client.prepare_typed_cached(SET_ROLE, &SET_ROLE_TYPES).await.map_err(map_pg_error)?;
        let commit = client.prepare_cached("COMMIT").await.map_err(map_pg_error)?;
        let role = ctx.role.name();
        let r = &ctx.request;
        let set_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [&role, &ctx.claims, &r.method, &r.path, &r.headers, &r.cookies];
        let (_, _, row, total, _) = tokio::try_join!(
            client.execute(&begin, &[]),
            client.query_one(&set, &set_params),
            client.query_one(&stmt, &body_refs),
            count,
            client.execute(&commit, &[]),
        )
        .map_err(map_pg_error)?;
        Ok(ReadResult { rows: row.get(0), body: row.get(1), total })
    }

    /// Calls a function (`/rpc`) as the caller, read-only for GET as PostgREST does.
    pub async fn call(&self, f: &basalt_query::sql::Fragment, read_only: bool, ctx: &DbContext) -> ApiResult<ReadResult> {
        let mut client = self.client().await?;
        let params = texts(&f.params);
        let stmt = client.prepare_typed_cached(&f.sql, &vec![Type::TEXT; params.len()]).await.map_err(map_pg_error)?;
        let tx = client.build_transaction().read_only(read_only).start().await.map_err(map_pg_error)?;
        set_role(&tx, ctx).await?;
        let row = tx.query_one(&stmt, &refs(&params)).await.map_err(map_pg_error)?;
        tx.commit().await.map_err(map_pg_error)?;
        Ok(ReadResult { rows: row.get(0), body: row.get::<_, Option<String>>(1).unwrap_or_default(), total: None })
    }

    pub async fn write(&self, sql: &MutateSql, single: bool, ctx: &DbContext) -> ApiResult<WriteResult> {
        let (f, counted) = match sql {
            MutateSql::Single(f) => (f, false),
            MutateSql::Counted(f) => (f, true),
            MutateSql::Steps { .. } => return Err(ApiError::internal("PostgreSQL got a SQLite plan")),
        };
        let client = self.client().await?;
        let params = texts(&f.params);
        let stmt = client.prepare_typed_cached(&f.sql, &vec![Type::TEXT; params.len()]).await.map_err(map_pg_error)?;
        let begin = client.prepare_cached("BEGIN").await.map_err(map_pg_error)?;
        let set = client.prepare_typed_cached(SET_ROLE, &SET_ROLE_TYPES).await.map_err(map_pg_error)?;
        let role = ctx.role.name();
        let r = &ctx.request;
        let set_params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [&role, &ctx.claims, &r.method, &r.path, &r.headers, &r.cookies];
        let param_refs = refs(&params);
        // BEGIN, the role and the statement go in one round trip; COMMIT or ROLLBACK follows.
        let outcome = if counted {
            tokio::try_join!(client.execute(&begin, &[]), client.query_one(&set, &set_params), client.execute(&stmt, &param_refs))
                .map(|(_, _, n)| (n as i64, n as i64, None))
        } else {
            tokio::try_join!(client.execute(&begin, &[]), client.query_one(&set, &set_params), client.query_one(&stmt, &param_refs))
                .map(|(_, _, row)| (row.get::<_, i64>(0), row.get::<_, i64>(1), row.get::<_, Option<String>>(2)))
        };
        let (affected, inserted, body) = match outcome {
            Ok(o) => o,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(map_pg_error(e));
            }
        };
        if single && affected != 1 {
            client.batch_execute("ROLLBACK").await.map_err(map_pg_error)?;
            return Err(RestError::not_single(affected).into());
        }
        client.batch_execute("COMMIT").await.map_err(map_pg_error)?;
        Ok(WriteResult { affected, inserted, body })
    }

    /// The database's own schema (`--schema-source postgres`).
    pub async fn introspect(&self) -> anyhow::Result<Catalog> {
        let client = self.pool.get().await?;
        Ok(super::pg_introspect::catalog(&**client).await?)
    }

    /// The catalog to serve: the last migrated schema (or the database's own, when
    /// `introspect`), with the database's functions for `/rpc`.
    pub async fn current_catalog(&self, introspect: bool) -> anyhow::Result<Option<Catalog>> {
        let client = self.pool.get().await?;
        if introspect {
            return Ok(Some(super::pg_introspect::catalog(&**client).await?));
        }
        let row = client.query_opt("SELECT catalog FROM _basalt_migrations ORDER BY id DESC LIMIT 1", &[]).await?;
        let Some(mut c) = row.and_then(|r| serde_json::from_str::<Catalog>(&r.get::<_, String>(0)).ok()) else { return Ok(None) };
        c.functions = super::pg_introspect::functions(&**client).await?;
        Ok(Some(c))
    }

    /// Functions for `/rpc`, next to a schema-file catalog.
    pub async fn functions(&self) -> anyhow::Result<Vec<basalt_schema::Function>> {
        let client = self.pool.get().await?;
        Ok(super::pg_introspect::functions(&**client).await?)
    }

    /// Listens for schema changes announced by any instance, `basalt migrate` or DDL (an event
    /// trigger), and swaps in the new catalog, as PostgREST reloads its schema cache on NOTIFY.
    pub fn watch_schema(self: &std::sync::Arc<Self>, cell: std::sync::Arc<crate::catalog::SharedCatalog>, introspect: bool) {
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = listen_once(&store, &cell, introspect).await {
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

async fn listen_once(store: &PgStore, cell: &crate::catalog::SharedCatalog, introspect: bool) -> anyhow::Result<()> {
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
        if let Some(c) = store.current_catalog(introspect).await? {
            tracing::info!("schema reloaded");
            cell.set(c);
        }
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
    tx.commit().await?;
    Ok(())
}

/// As PostgREST: the request's role and claims, local to the transaction, so native policies,
/// `auth.uid()` defaults and triggers see the caller.
const SET_ROLE: &str = "SELECT set_config('role', $1, true), set_config('request.jwt.claims', $2, true), \
    set_config('request.method', $3, true), set_config('request.path', $4, true), \
    set_config('request.headers', $5, true), set_config('request.cookies', $6, true)";

const SET_ROLE_TYPES: [Type; 6] = [Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT];

async fn set_role(tx: &deadpool_postgres::Transaction<'_>, ctx: &DbContext) -> ApiResult<()> {
    let stmt = tx.prepare_typed_cached(SET_ROLE, &SET_ROLE_TYPES).await.map_err(map_pg_error)?;
    let (role, r) = (ctx.role.name(), &ctx.request);
    tx.query_one(&stmt, &[&role, &ctx.claims, &r.method, &r.path, &r.headers, &r.cookies]).await.map_err(map_pg_error)?;
    Ok(())
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

/// PostgreSQL errors pass through with their SQLSTATE, message, detail and hint, as PostgREST.
pub fn map_pg_error(e: tokio_postgres::Error) -> ApiError {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            if code == "57014" {
                return ApiError::Rest(RestError::new(500, code, db.message()).hint("The statement ran longer than statement_timeout_ms."));
            }
            let status = status_for_sqlstate(code, false);
            if status >= 500 && !code.starts_with("08") && !code.starts_with("53") {
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
