//! Embedded SQLite: one writer connection and a few readers over WAL, statements cached per
//! connection, JSON built by SQLite. Reads run on the async workers; so do writes, one thread at a
//! time (see [`super::sqlite_writer`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use basalt_query::sql::{Fragment, MutateSql, ReadSql};
use basalt_query::value::Param;
use basalt_query::Error as RestError;
use basalt_schema::{ddl, Catalog, DbState, DdlDialect};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags};

use super::portable::{self, Row, Stmt};
use super::sqlite_writer::{checkpoint_loop, writer_busy, Finish, Job, Writer};
use super::{check_destructive, Migration, ReadResult, WriteResult};
use crate::error::{ApiError, ApiResult};

pub struct SqliteStore {
    path: PathBuf,
    /// The one write connection; writes queue there, first come first served.
    writer: Arc<Writer>,
    readers: Arc<Vec<Mutex<Reader>>>,
    /// Bumped by the writer after every commit (and migration), before anyone hears of it:
    /// a reader whose snapshot predates the current value starts a new one.
    commits: Arc<AtomicU64>,
    /// See [`Snapshots::restarting`].
    restarting: Arc<AtomicBool>,
    /// How long a read may run before it is interrupted (the `statement_timeout` of PostgreSQL).
    timeout_ms: u64,
    /// For naming constraints in errors, as PostgreSQL does.
    catalog: RwLock<Arc<Catalog>>,
}

fn open_conn(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(256);
    // Plans must not depend on bound values: otherwise SQLite marks statements with `col = ?`
    // terms to re-prepare whenever a binding changes, and the statement cache clears bindings
    // on every return, so each execution re-prepared (perf: 18 % of the writer's time).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    super::sqlite_functions::register(&conn)?;
    Ok(conn)
}

/// A read-only connection of its own for the audit log's pages and checks, which may read
/// for longer than a request and should not hold a pooled reader meanwhile.
pub(super) fn open_audit_reader(path: &Path) -> ApiResult<Connection> {
    open_conn(path, true).map_err(ApiError::internal)
}

/// A parameter as SQLite binds it; text is lent, not copied.
fn to_sql(p: &Param) -> ToSqlOutput<'_> {
    match p {
        Param::Null => ToSqlOutput::Owned(SqlValue::Null),
        Param::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(i64::from(*b))),
        Param::Int(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
        Param::Float(f) => ToSqlOutput::Owned(SqlValue::Real(*f)),
        Param::Numeric(s) => {
            ToSqlOutput::Owned(s.parse::<i64>().map(SqlValue::Integer).unwrap_or_else(|_| SqlValue::Real(s.parse().unwrap_or(0.0))))
        }
        Param::Text(s) | Param::Json(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
    }
}

/// A read-only connection and the moment its current statement must stop (ms since the Unix
/// epoch; `u64::MAX` when idle), checked by SQLite's progress handler.
///
/// A reader keeps its read transaction (its snapshot) from one request to the next while
/// nothing was committed: taking and dropping WAL read locks cost a get by id 12 % of its time
/// (a mutex shared by all connections and `fcntl` calls). Every commit of this process ends
/// the reuse, so reads always see the writes answered before them; writes of other processes
/// (`basalt import` on a live data folder) show within [`SNAPSHOT_MAX_AGE`].
struct Reader {
    conn: Connection,
    deadline: Arc<AtomicU64>,
    /// The open read transaction: the commit count it started at, and when.
    snapshot: Option<(u64, std::time::Instant)>,
}

/// How long a reader may keep one snapshot, for other processes' writes to show and for
/// checkpoints to pass it.
const SNAPSHOT_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(10);

impl Reader {
    /// Ends the read transaction if it is older than the last commit or `max_age`.
    fn end_stale(&mut self, commits: u64, max_age: std::time::Duration) {
        if let Some((at, since)) = self.snapshot {
            if at != commits || since.elapsed() >= max_age {
                self.end();
            }
        }
    }

    fn end(&mut self) {
        self.snapshot = None;
        if !self.conn.is_autocommit() && self.conn.execute_batch("COMMIT").is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }

    /// Makes sure a read transaction is open (its snapshot is taken by its first statement).
    fn begin(&mut self, commits: u64) -> rusqlite::Result<()> {
        self.end_stale(commits, SNAPSHOT_MAX_AGE);
        if self.snapshot.is_none() {
            self.conn.execute_batch("BEGIN")?;
            self.snapshot = Some((commits, std::time::Instant::now()));
        }
        Ok(())
    }
}

/// The readers and the commit count, for the writer and the thread that end idle readers' snapshots.
pub(super) struct Snapshots {
    readers: std::sync::Weak<Vec<Mutex<Reader>>>,
    pub(super) commits: Arc<AtomicU64>,
    /// Set while the writer restarts the WAL: readers then end their snapshot after each read.
    pub(super) restarting: Arc<AtomicBool>,
}

impl Snapshots {
    /// Ends the snapshots of idle readers that are older than the last commit or `max_age`;
    /// false once the store is gone.
    pub(super) fn end_stale(&self, max_age: std::time::Duration) -> bool {
        let Some(readers) = self.readers.upgrade() else { return false };
        for r in readers.iter() {
            if let Some(mut r) = try_lock(r) {
                r.end_stale(self.commits.load(Ordering::Acquire), max_age);
            }
        }
        true
    }
}

/// Ends idle readers' snapshots once they are old, so they never hold back a checkpoint for long.
fn release_idle_readers(snapshots: Snapshots) {
    while snapshots.end_stale(SNAPSHOT_MAX_AGE) {
        std::thread::sleep(SNAPSHOT_MAX_AGE);
    }
}

/// A connection if it is free. One whose user panicked is still used (a reader's snapshot still
/// ended, the writer's transaction rolled back): the connection is sound, and skipping it would
/// leave that state behind for good.
pub(super) fn try_lock<T>(m: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Each thread starts looking for a free reader at its own: with reads on the async workers,
/// each worker keeps reusing one connection whose page cache holds what it read last.
fn reader_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! { static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed); }
    SLOT.with(|s| *s)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

fn open_reader(path: &Path) -> rusqlite::Result<Reader> {
    let mut conn = open_conn(path, true)?;
    let deadline = Arc::new(AtomicU64::new(u64::MAX));
    let d = deadline.clone();
    conn.progress_handler(10_000, Some(move || now_ms() > d.load(Ordering::Relaxed)))?;
    Ok(Reader { conn, deadline, snapshot: None })
}

impl SqliteStore {
    pub fn open(dir: &Path, timeout_ms: u64) -> anyhow::Result<SqliteStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("data.db");
        let mut writer = open_conn(&path, false)?;
        writer.execute_batch(
            "CREATE TABLE IF NOT EXISTS _basalt_migrations (id INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, catalog TEXT NOT NULL, statements TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS _basalt_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )?;
        writer.execute_batch(super::auth_schema::SQLITE)?;
        writer.execute_batch(super::audit_schema::SQLITE)?;
        writer.execute_batch(&super::audit_schema::sqlite_auth_event_triggers())?;
        // Reads run on the async workers (one per core): a reader each, and spares.
        let n = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) + 2;
        let readers = Arc::new((0..n).map(|_| open_reader(&path).map(Mutex::new)).collect::<rusqlite::Result<Vec<_>>>()?);
        let commits = Arc::new(AtomicU64::new(0));
        let restarting = Arc::new(AtomicBool::new(false));
        // Checkpoints run on a thread of their own, so the writer (every write waits for it)
        // never copies the WAL back into the database inside a commit.
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.busy_handler(Some(writer_busy))?;
        // When the WAL starts over, a file grown larger than this is cut back. Under sustained
        // writes the WAL grows to what comes between two restarts (80-140 MB at 10-20k audited
        // inserts a second): a limit below that made the first commit after each restart cut the
        // file (ftruncate, 50 ms on the writer) and the next ones grow it again (64 MiB: insert
        // p99 60-67 ms; 256 MiB: +5-10 % inserts, bench/README, seventeenth round).
        writer.pragma_update(None, "journal_size_limit", 256 * 1024 * 1024)?;
        // The writer's page cache survives its own commits (readers' caches are emptied by every
        // commit): 8 MiB keeps the right edges and hot leaves of growing indexes, which the
        // default 2 MiB read back through pread (+7 % audited inserts). 4 MiB lost inserts again;
        // 16 MiB was no faster than 8 and held 9-13 MiB more under load (bench/README, 13th round).
        writer.pragma_update(None, "cache_size", -8192)?;
        let checkpointer = open_conn(&path, false)?;
        // The checkpoint thread syncs the database file through it. Never closed, not even if
        // the thread cannot start: closing a descriptor of the file would drop the POSIX locks
        // SQLite's connections in this process hold on it.
        let db_file = std::mem::ManuallyDrop::new(std::fs::File::open(&path)?);
        let restart = Arc::new(AtomicBool::new(false));
        let wanted = restart.clone();
        let (counted, held, flag) = (commits.clone(), Arc::downgrade(&readers), restarting.clone());
        let writer = Arc::new(Writer::new(writer, restart, Snapshots { readers: held, commits: counted, restarting: flag }));
        std::thread::Builder::new()
            .name("basalt-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(checkpointer, db_file, wanted))?;
        let idle = Snapshots { readers: Arc::downgrade(&readers), commits: commits.clone(), restarting: restarting.clone() };
        std::thread::Builder::new().name("basalt-sqlite-readers".into()).spawn(move || release_idle_readers(idle))?;
        Ok(SqliteStore { path, writer, readers, commits, restarting, timeout_ms, catalog: RwLock::new(Arc::new(Catalog::default())) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub(super) fn writer(&self) -> &Arc<Writer> {
        &self.writer
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, Reader> {
        let start = reader_slot();
        for i in 0..self.readers.len() {
            if let Some(g) = try_lock(&self.readers[(start + i) % self.readers.len()]) {
                return g;
            }
        }
        let i = start % self.readers.len();
        self.readers[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a read on the calling thread: reads are short and WAL readers never wait for the
    /// writer, so handing them to another thread would cost more (two context switches) than the
    /// query. A read that runs past the timeout is interrupted.
    pub fn read(&self, sql: &ReadSql) -> ApiResult<ReadResult> {
        let mut reader = self.reader();
        reader.deadline.store(now_ms().saturating_add(self.timeout_ms), Ordering::Relaxed);
        let begun = reader.begin(self.commits.load(Ordering::Acquire));
        let conn = &reader.conn;
        let run = || -> rusqlite::Result<ReadResult> {
            begun?;
            let mut stmt = conn.prepare_cached(&sql.body.sql)?;
            let (rows, body): (i64, String) =
                stmt.query_row(params_from_iter(sql.body.params.iter().map(to_sql)), |r| Ok((r.get(0)?, r.get(1)?)))?;
            let total = match &sql.count {
                Some(c) => {
                    let mut stmt = conn.prepare_cached(&c.sql)?;
                    let n: i64 = stmt.query_row(params_from_iter(c.params.iter().map(to_sql)), |r| r.get(0))?;
                    Some(n)
                }
                None => None,
            };
            Ok(ReadResult { rows, body, total, planned: None, response: Default::default() })
        };
        let result = run();
        if result.is_err() {
            reader.end();
        } else if self.restarting.load(Ordering::Acquire) {
            // The writer waits for every snapshot taken before the WAL was copied back.
            reader.end();
        } else {
            // A commit landed meanwhile: the snapshot is stale, and would hold back a checkpoint.
            reader.end_stale(self.commits.load(Ordering::Acquire), SNAPSHOT_MAX_AGE);
        }
        let result = result.map_err(|e| {
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) {
                return ApiError::Rest(
                    RestError::new(500, "57014", "canceling statement due to statement timeout")
                        .hint("The statement ran longer than statement_timeout_ms."),
                );
            }
            self.map_error(e)
        });
        reader.deadline.store(u64::MAX, Ordering::Relaxed);
        result
    }

    /// Queues a write for the writer, which commits queued writes together (each in its
    /// own savepoint, so one failing write leaves the others untouched).
    /// With `rollback`, the write runs and answers as usual but its changes are undone.
    pub async fn write(
        self: &Arc<Self>,
        sql: MutateSql,
        bound: super::RowBound,
        rollback: bool,
        actor: super::sqlite_functions::Actor,
    ) -> ApiResult<WriteResult> {
        let store = self.clone();
        self.submit(move |conn| {
            super::sqlite_functions::set_actor(Some(actor));
            let result = savepoint(conn, rollback, |c| store.write_on(c, &sql, bound));
            super::sqlite_functions::set_actor(None);
            result
        })
        .await
    }

    /// Runs portable statements in one write transaction; rows of each statement are returned.
    pub async fn batch(self: &Arc<Self>, stmts: Vec<Stmt>) -> ApiResult<Vec<Vec<Row>>> {
        let store = self.clone();
        self.submit(move |conn| {
            savepoint(conn, false, |c| {
                stmts.iter().map(|s| run_portable(c, s)).collect::<rusqlite::Result<Vec<_>>>().map_err(|e| store.map_error(e))
            })
        })
        .await
    }

    /// Queues `work` for the writer (running the queue on this thread if nobody is) and waits
    /// for its result, delivered after the commit.
    async fn submit<T: Send + 'static>(&self, work: impl FnOnce(&Connection) -> ApiResult<T> + Send + 'static) -> ApiResult<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer.run(Job::Write(Box::new(move |conn: Result<&Connection, String>| -> Finish {
            let result = match conn {
                Ok(c) => work(c),
                Err(e) => Err(ApiError::internal(e)),
            };
            Box::new(move |commit: Result<(), String>| {
                let _ = tx.send(commit.map_err(ApiError::internal).and(result));
            })
        })));
        rx.await.map_err(|_| ApiError::internal("the SQLite writer dropped a write"))?
    }

    /// Runs `work` alone on the writer connection, outside any group transaction (migrations).
    async fn exclusive<T: Send + 'static>(&self, work: impl FnOnce(&mut Connection) -> T + Send + 'static) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.writer.run(Job::Exclusive(Box::new(move |c: &mut Connection| {
            let _ = tx.send(work(c));
        })));
        Ok(rx.await?)
    }

    fn write_on(&self, conn: &Connection, sql: &MutateSql, bound: super::RowBound) -> ApiResult<WriteResult> {
        let MutateSql::Steps { existing, collect, collect_body, check, read, finish } = sql else {
            return Err(ApiError::internal("SQLite got a PostgreSQL plan"));
        };
        let existing: Option<i64> = match existing {
            Some(f) => Some(
                conn.prepare_cached(&f.sql)
                    .and_then(|mut st| st.query_row(params_from_iter(f.params.iter().map(to_sql)), |r| r.get(0)))
                    .map_err(|e| self.map_error(e))?,
            ),
            None => None,
        };
        if let Some(f) = check {
            let mut stmt = conn.prepare_cached(&f.sql).map_err(|e| self.map_error(e))?;
            let failing: i64 =
                stmt.query_row(params_from_iter(f.params.iter().map(to_sql)), |r| r.get(0)).map_err(|e| self.map_error(e))?;
            if failing > 0 {
                let table = collect.sql.split('"').nth(1).unwrap_or_default();
                return Err(
                    RestError::new(403, "42501", format!("new row violates row-level security policy for table \"{table}\"")).into()
                );
            }
        }
        let (ids, objects) = query_ids(conn, collect, *collect_body).map_err(|e| self.map_error(e))?;
        let affected = ids.len() as i64;
        bound.check(affected)?;
        let inserted = existing.map(|e| (affected - e).max(0)).unwrap_or(affected);
        let ids_json = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
        let body = match read {
            // The objects are JSON that SQLite wrote: the array is what json_group_array makes.
            None if *collect_body => Some(format!("[{}]", objects.join(","))),
            Some(f) => {
                let mut params: Vec<ToSqlOutput> = f.params.iter().map(to_sql).collect();
                params[0] = ToSqlOutput::Borrowed(ValueRef::Text(ids_json.as_bytes()));
                let mut stmt = conn.prepare_cached(&f.sql).map_err(|e| self.map_error(e))?;
                let body: String = stmt.query_row(params_from_iter(params), |r| r.get(1)).map_err(|e| self.map_error(e))?;
                Some(body)
            }
            None => None,
        };
        if let Some(f) = finish {
            let mut stmt = conn.prepare_cached(&f.sql).map_err(|e| self.map_error(e))?;
            stmt.execute([ids_json]).map_err(|e| self.map_error(e))?;
        }
        Ok(WriteResult { affected, inserted, body, response: Default::default() })
    }

    /// Maps SQLite errors to PostgreSQL's SQLSTATEs and messages.
    fn map_error(&self, e: rusqlite::Error) -> ApiError {
        let catalog = self.catalog.read().map(|c| c.clone()).unwrap_or_default();
        map_sqlite_error(&catalog, e)
    }

    pub async fn migrate(self: &Arc<Self>, desired: Catalog, allow_destructive: bool, dry_run: bool) -> anyhow::Result<Migration> {
        let store = self.clone();
        self.exclusive(move |conn| store.migrate_on(conn, &desired, allow_destructive, dry_run)).await?
    }

    fn migrate_on(&self, conn: &mut Connection, desired: &Catalog, allow_destructive: bool, dry_run: bool) -> anyhow::Result<Migration> {
        let state = introspect(conn)?;
        let previous: Option<Catalog> = conn
            .query_row("SELECT catalog FROM _basalt_migrations ORDER BY id DESC LIMIT 1", [], |r| r.get::<_, String>(0))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        let plan = basalt_schema::diff(&state, previous.as_ref(), desired);
        let statements = ddl::render(&plan, desired, &state, DdlDialect::Sqlite);
        if !dry_run {
            check_destructive(&plan, allow_destructive)?;
        }
        let changed = previous.as_ref() != Some(desired);
        if !dry_run && (changed || !plan.is_empty()) {
            conn.pragma_update(None, "foreign_keys", "OFF")?;
            let applied = apply_migration(conn, desired, &statements);
            conn.pragma_update(None, "foreign_keys", "ON")?;
            applied?;
        }
        if let Ok(mut c) = self.catalog.write() {
            *c = Arc::new(desired.clone());
        }
        Ok(Migration { applied: !dry_run && !plan.is_empty(), plan, statements })
    }
}

/// Runs the statements and records the catalog, in one transaction, with foreign keys checked at the end.
fn apply_migration(conn: &mut Connection, desired: &Catalog, statements: &[String]) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    for s in statements {
        tx.execute_batch(s).map_err(|e| anyhow::anyhow!("{e}\nwhile running: {s}"))?;
    }
    let bad: Option<String> = tx.query_row("SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1", [], |r| r.get(0)).ok();
    if let Some(t) = bad {
        anyhow::bail!("the migration leaves rows in {t} whose foreign keys point nowhere");
    }
    tx.execute(
        "INSERT INTO _basalt_migrations (applied_at, catalog, statements) VALUES (?1, ?2, ?3)",
        (basalt_query::value::format_timestamptz(&chrono::Utc::now()), serde_json::to_string(desired)?, statements.join(";\n")),
    )?;
    tx.commit()?;
    Ok(())
}

/// Runs `work` in a savepoint: on error (or when asked to `rollback`) only its own changes are undone.
fn savepoint<T>(conn: &Connection, rollback: bool, work: impl FnOnce(&Connection) -> ApiResult<T>) -> ApiResult<T> {
    let run = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ());
    run("SAVEPOINT basalt_write").map_err(ApiError::internal)?;
    // A bug in one write must not take the writer (and every later write) down with it.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn)))
        .unwrap_or_else(|_| Err(ApiError::internal("a write panicked; its changes were rolled back")));
    if result.is_err() || rollback {
        let _ = run("ROLLBACK TO basalt_write");
    }
    let _ = run("RELEASE basalt_write");
    result
}

fn run_portable(conn: &Connection, s: &Stmt) -> rusqlite::Result<Vec<Row>> {
    let sql = portable::to_sqlite(&s.sql);
    let mut stmt = conn.prepare_cached(&sql)?;
    let names: Vec<String> = stmt.column_names().map(|n| n.to_string()).collect();
    let params = s.params.iter().map(|v| match v {
        serde_json::Value::Null => SqlValue::Null,
        serde_json::Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        serde_json::Value::Number(n) => n.as_i64().map(SqlValue::Integer).unwrap_or_else(|| SqlValue::Real(n.as_f64().unwrap_or_default())),
        serde_json::Value::String(t) => SqlValue::Text(t.clone()),
        other => SqlValue::Text(other.to_string()),
    });
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut row = Row::new();
        for (i, n) in names.iter().enumerate() {
            let v = match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => serde_json::Value::Null,
                rusqlite::types::ValueRef::Integer(i) => serde_json::Value::from(i),
                rusqlite::types::ValueRef::Real(f) => serde_json::Value::from(f),
                rusqlite::types::ValueRef::Text(t) => serde_json::Value::from(String::from_utf8_lossy(t).into_owned()),
                rusqlite::types::ValueRef::Blob(_) => serde_json::Value::Null,
            };
            row.insert(n.clone(), v);
        }
        out.push(row);
    }
    Ok(out)
}

/// The rowids a write returned, and with `bodies` each row's JSON object (its second column).
fn query_ids(conn: &Connection, f: &Fragment, bodies: bool) -> rusqlite::Result<(Vec<i64>, Vec<String>)> {
    let mut stmt = conn.prepare_cached(&f.sql)?;
    let mut rows = stmt.query(params_from_iter(f.params.iter().map(to_sql)))?;
    let (mut ids, mut objects) = (Vec::new(), Vec::new());
    while let Some(r) = rows.next()? {
        ids.push(r.get::<_, i64>(0)?);
        if bodies {
            objects.push(r.get::<_, String>(1)?);
        }
    }
    Ok((ids, objects))
}

fn introspect(conn: &Connection) -> rusqlite::Result<DbState> {
    let mut state = DbState::default();
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_basalt%' ESCAPE '\\' AND name NOT LIKE 'auth\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let tables: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    for t in tables {
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?
            .query_map([&t], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL")?
            .query_map([&t], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        state.tables.insert(t, basalt_schema::diff::DbTable { columns, indexes });
    }
    Ok(state)
}

/// PostgreSQL's error for what SQLite says only in words: a bad regular expression (2201B); a
/// statement past one of SQLite's compile-time limits (class 54, "statement is too complex");
/// `::jsonb` of text that is not JSON (22P02); a full-text query or configuration (42601, 42704).
fn error_of_message(m: &str) -> Option<ApiError> {
    const LIMITS: [&str; 5] = [
        "Expression tree is too large",
        "too many arguments on function",
        "too many terms in",
        "too many columns",
        "too many SQL variables",
    ];
    if m.contains("invalid regular expression") {
        Some(RestError::new(400, "2201B", m).into())
    } else if LIMITS.iter().any(|p| m.starts_with(p)) {
        let status = crate::error::status_for_sqlstate("54001", false);
        Some(RestError::new(status, "54001", "statement is too complex").details(m).into())
    } else if m == "malformed JSON" {
        Some(RestError::new(400, "22P02", "invalid input syntax for type json").into())
    } else {
        basalt_textsearch::Error::sqlstate_of_message(m).map(|sqlstate| RestError::new(400, sqlstate, m).into())
    }
}

/// Turns SQLite's constraint messages into PostgreSQL's codes and wording.
pub fn map_sqlite_error(catalog: &Catalog, e: rusqlite::Error) -> ApiError {
    // Errors SQLite reports only as text: while compiling a statement, or from our functions.
    if let rusqlite::Error::SqlInputError { msg: m, .. } | rusqlite::Error::SqliteFailure(_, Some(m)) = &e {
        if let Some(err) = error_of_message(m) {
            return err;
        }
    }
    let (code, msg) = match &e {
        rusqlite::Error::SqliteFailure(f, Some(m)) => (f.extended_code, m.clone()),
        rusqlite::Error::SqliteFailure(f, None) => (f.extended_code, String::new()),
        rusqlite::Error::UserFunctionError(u) => {
            let text = u.to_string();
            if text.starts_with("invalid regular expression") {
                return RestError::new(400, "2201B", text).into();
            }
            return ApiError::internal(text);
        }
        _ => return ApiError::internal(e),
    };
    let rest = |sqlstate: &str, message: String| {
        ApiError::Rest(RestError::new(crate::error::status_for_sqlstate(sqlstate, false), sqlstate, message))
    };
    match code {
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
        2067 | 1555 => {
            let cols = msg.trim_start_matches("UNIQUE constraint failed: ");
            let mut table = String::new();
            let names: Vec<String> = cols
                .split(", ")
                .filter_map(|tc| tc.split_once('.'))
                .map(|(t, c)| {
                    table = t.to_string();
                    c.to_string()
                })
                .collect();
            let constraint = catalog
                .table(&table)
                .and_then(|t| {
                    if t.primary_key == names {
                        Some(format!("{table}_pkey"))
                    } else {
                        t.uniques.iter().find(|u| u.columns == names).map(|u| u.name.clone()).or_else(|| {
                            t.indexes
                                .iter()
                                .find(|i| i.unique && i.columns.iter().map(|(c, _)| c.clone()).collect::<Vec<_>>() == names)
                                .map(|i| i.name.clone())
                        })
                    }
                })
                .unwrap_or_else(|| format!("{table}_{}_key", names.join("_")));
            ApiError::Rest(
                RestError::new(409, "23505", format!("duplicate key value violates unique constraint \"{constraint}\""))
                    .details(format!("Key ({}) already exists.", names.join(", "))),
            )
        }
        // SQLITE_CONSTRAINT_NOTNULL
        1299 => {
            let (t, c) = msg.trim_start_matches("NOT NULL constraint failed: ").split_once('.').unwrap_or(("", ""));
            rest("23502", format!("null value in column \"{c}\" of relation \"{t}\" violates not-null constraint"))
        }
        // SQLITE_CONSTRAINT_FOREIGNKEY
        787 => ApiError::Rest(
            RestError::new(409, "23503", "insert or update on table violates foreign key constraint")
                .details("A referenced row is missing, or a referencing row still exists."),
        ),
        // SQLITE_CONSTRAINT_CHECK
        275 => {
            let name = msg.trim_start_matches("CHECK constraint failed: ");
            let table =
                catalog.tables.values().find(|t| t.checks.iter().any(|c| c.name == name)).map(|t| t.name.clone()).unwrap_or_default();
            rest("23514", format!("new row for relation \"{table}\" violates check constraint \"{name}\""))
        }
        c if c & 0xff == 5 || c & 0xff == 6 => ApiError::Rest(RestError::new(503, "PGRST000", "Database is busy").details(msg)),
        _ => ApiError::internal(format!("sqlite: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use rusqlite::StatementStatus;
    use serde_json::json;

    use super::super::portable::Stmt;

    /// Writes from many tasks all run, whoever leads: on the multi-thread runtime in groups,
    /// handed between workers and to a blocking thread for the restarting checkpoint asked for
    /// in the middle; on the current-thread runtime one by one. A failing write is answered
    /// with its error and leaves the others, and writes after a quiet spell still find a writer.
    #[test]
    fn writes_from_many_tasks_all_land() {
        for multi in [true, false] {
            let dir = std::env::temp_dir().join(format!("basalt-writer-{}", uuid::Uuid::new_v4()));
            let rt = if multi {
                tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
            } else {
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
            };
            rt.block_on(async {
                let store = Arc::new(super::SqliteStore::open(&dir, 5_000).unwrap());
                store.batch(vec![Stmt::new("CREATE TABLE t (n INTEGER PRIMARY KEY)", vec![])]).await.unwrap();
                for round in 0..3 {
                    let mut writes = tokio::task::JoinSet::new();
                    for i in 0..200 {
                        let store = store.clone();
                        // Every tenth write repeats a key, so it fails in its savepoint.
                        let n = if i % 10 == 9 { round * 1000 + i - 1 } else { round * 1000 + i };
                        if i == 100 {
                            store.writer().restart_flag().store(true, Ordering::Relaxed);
                        }
                        writes.spawn(
                            async move { store.batch(vec![Stmt::new("INSERT INTO t (n) VALUES (?1)", vec![json!(n)])]).await.is_ok() },
                        );
                    }
                    // A write left in the queue with nobody leading would never be answered.
                    let all = tokio::time::timeout(std::time::Duration::from_secs(30), writes.join_all()).await;
                    let ok = all.expect("every write is answered").into_iter().filter(|ok| *ok).count();
                    assert_eq!(ok, 180, "multi-thread: {multi}, round {round}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                let rows = store.batch(vec![Stmt::new("SELECT count(*) AS c FROM t", vec![])]).await.unwrap();
                assert_eq!(rows[0][0]["c"], json!(540));
            });
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// Writes that outgrow the restart threshold, with reads going on all the while: the WAL
    /// starts over (the checkpoint thread's catch-up and the writer's restart, or SQLite's own
    /// restart when a commit finds the WAL copied back and no reader in it), and every row is
    /// still in the database, which passes SQLite's integrity check.
    #[test]
    fn a_grown_wal_starts_over_under_reads() {
        let dir = std::env::temp_dir().join(format!("basalt-wal-{}", uuid::Uuid::new_v4()));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let store = Arc::new(super::SqliteStore::open(&dir, 5_000).unwrap());
            store.batch(vec![Stmt::new("CREATE TABLE t (n INTEGER PRIMARY KEY, pad TEXT)", vec![])]).await.unwrap();
            // The WAL header's checkpoint sequence number goes up each time the WAL starts over.
            let wal_sequence = || {
                use std::io::Read;
                let mut header = [0u8; 16];
                std::fs::File::open(dir.join("data.db-wal")).unwrap().read_exact(&mut header).unwrap();
                u32::from_be_bytes(header[12..16].try_into().unwrap())
            };
            /// Stops the reader however the test ends: a reader left spinning would take a core.
            struct Stop(Arc<std::sync::atomic::AtomicBool>);
            impl Drop for Stop {
                fn drop(&mut self) {
                    self.0.store(false, Ordering::Relaxed);
                }
            }
            let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
            let stop = Stop(reading.clone());
            let reader = std::thread::spawn({
                let (store, reading) = (store.clone(), reading.clone());
                move || {
                    let count = basalt_query::sql::Fragment { sql: "SELECT count(*), '[]' FROM t".into(), params: vec![] };
                    let sql = basalt_query::sql::ReadSql { body: count, count: None, planned: None };
                    while reading.load(Ordering::Relaxed) {
                        store.read(&sql).unwrap();
                    }
                }
            });
            // About 6,000 pages: past the 4,096 that ask for a restart.
            let insert = "WITH RECURSIVE s(v) AS (SELECT ?1 UNION ALL SELECT v + 1 FROM s WHERE v < ?2) \
                          INSERT INTO t (n, pad) SELECT v, hex(randomblob(1500)) FROM s";
            for chunk in 0..24 {
                let (from, to) = (chunk * 250, chunk * 250 + 249);
                store.batch(vec![Stmt::new(insert, vec![json!(from), json!(to)])]).await.unwrap();
            }
            let before = wal_sequence();
            let mut restarted = false;
            for n in 0..200 {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                store.batch(vec![Stmt::new("INSERT INTO t (n) VALUES (?1)", vec![json!(100_000 + n)])]).await.unwrap();
                if wal_sequence() != before {
                    restarted = true;
                    break;
                }
            }
            drop(stop);
            reader.join().unwrap();
            assert!(restarted, "the WAL started over");
            let rows = store.batch(vec![Stmt::new("SELECT count(*) AS c FROM t WHERE n < 100000", vec![])]).await.unwrap();
            assert_eq!(rows[0][0]["c"], json!(6000));
            let ok = store.batch(vec![Stmt::new("PRAGMA integrity_check", vec![])]).await.unwrap();
            assert_eq!(ok[0][0]["integrity_check"], json!("ok"));
        });
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Cached statements with `col = ?` terms run as prepared, not re-prepared on every use.
    #[test]
    fn cached_statements_are_not_reprepared() {
        let dir = std::env::temp_dir().join(format!("basalt-sqlite-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = super::open_conn(&dir.join("t.db"), false).unwrap();
        c.execute_batch("CREATE TABLE t (id TEXT PRIMARY KEY, owner TEXT); CREATE INDEX t_owner ON t (owner); INSERT INTO t VALUES ('a', 'o'), ('b', 'p');")
            .unwrap();
        let sql = "SELECT count(*) FROM t WHERE owner = ?1 AND id = ?2 LIMIT ?3";
        for (owner, id) in [("o", "a"), ("p", "b"), ("o", "b"), ("p", "a")] {
            let n: i64 = c.prepare_cached(sql).unwrap().query_row(rusqlite::params![owner, id, 5], |r| r.get(0)).unwrap();
            assert!(n <= 1);
        }
        assert_eq!(c.prepare_cached(sql).unwrap().get_status(StatementStatus::RePrepare), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
