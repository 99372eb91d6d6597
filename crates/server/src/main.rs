//! `basalt`: a Supabase-compatible backend in one binary.
// Denied, not forbidden: one module (auth::password) calls libsodium through FFI.
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

/// mimalloc returns freed memory to the system; glibc kept the 19 MiB buffers of every
/// password hash (when the argon2 crate hashed), so a few hundred sign-ups left the process at hundreds of MiB.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod app;
mod audit;
mod auth;
mod catalog;
mod cli;
mod config;
mod error;
mod http;
mod store;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// Prints to stdout, ignoring a closed pipe (`basalt schema check | head -1`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

use crate::cli::{Cli, Command, ImportCommand, SchemaCommand};
use crate::config::Config;
use crate::store::Store;

fn main() -> ExitCode {
    // A small blocking pool: SQLite has a few connections and hashing is CPU-bound, so more
    // threads would only add memory (each keeps its own allocator arena).
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().max_blocking_threads(cores * 2 + 4).build();
    match runtime {
        Ok(rt) => rt.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tower_http=warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => serve(a).await,
        Command::Migrate(a) => migrate(a).await,
        Command::Keys(a) => keys(a).await,
        Command::Import { command: ImportCommand::Users { file, store } } => import_users(&file, &store).await,
        Command::Schema { command: SchemaCommand::Check { schema } } => check(&schema),
        Command::Schema { command: SchemaCommand::Types { schema, database_url, db_schema } } => {
            types(schema.as_deref(), database_url.as_deref(), &db_schema).await
        }
        Command::Schema { command: SchemaCommand::Docs { schema } } => {
            load_schema(&schema).map(|catalog| out!("{}", basalt_schema::markdown::markdown(&catalog).trim_end()))
        }
        Command::Audit { command } => audit_command(command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The PostgREST settings SQLite cannot honour are refused rather than ignored.
fn check_backend_settings(config: &Config) -> anyhow::Result<()> {
    if config.database_url.is_some() {
        return Ok(());
    }
    let rest = &config.rest;
    if rest.schemas != ["public"] {
        anyhow::bail!("SQLite serves one schema, public; db-schemas needs PostgreSQL (--database-url)");
    }
    if rest.anon_role.as_deref().is_some_and(|r| r != "anon") {
        anyhow::bail!("SQLite knows the roles anon, authenticated and service_role; a custom db-anon-role needs PostgreSQL");
    }
    if rest.pre_request.is_some() || !rest.app_settings.is_empty() {
        anyhow::bail!("db-pre-request and app.settings run SQL in each transaction and need PostgreSQL (--database-url)");
    }
    Ok(())
}

fn schema_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) if !p.exists() => anyhow::bail!("schema file {} does not exist", p.display()),
        Some(p) => Ok(p),
        None if Path::new("basalt.toml").exists() => Ok(PathBuf::from("basalt.toml")),
        None => anyhow::bail!("no schema: pass --schema PATH (or set BASALT_SCHEMA)"),
    }
}

fn load_schema(path: &Path) -> anyhow::Result<basalt_schema::Catalog> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read schema {}: {e}", path.display()))?;
    basalt_schema::parse_schema(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

async fn serve(a: cli::ServeArgs) -> anyhow::Result<()> {
    let introspect = a.schema_source == cli::SchemaSource::Postgres;
    let schema = if introspect { a.schema.clone() } else { Some(schema_path(a.schema.clone())?) };
    // The config comes from --config, else the schema file, else ./basalt.toml (as `keys` reads it).
    let config_file = a.store.config.clone().or(schema.clone()).or_else(|| Some(PathBuf::from("basalt.toml")).filter(|p| p.exists()));
    let config = Config::load(config_file.as_deref(), &a.store, a.listen.as_deref())?;
    tracing::debug!(?config, "configuration");
    check_backend_settings(&config)?;
    let store = Store::open(&config).await?;
    let schemas = config.rest.schemas.clone();
    let catalogs = match (&store, &schema) {
        (Store::Postgres(pg), _) if introspect => pg.catalogs(&schemas, None).await?,
        (_, _) if introspect => anyhow::bail!("--schema-source postgres needs --database-url"),
        (_, Some(path)) => {
            let catalog = load_schema(path)?;
            let migration = store.migrate(&catalog, a.allow_destructive, false).await?;
            if migration.applied {
                for step in &migration.plan.steps {
                    tracing::info!("migrated: {}", step.describe());
                }
            } else {
                tracing::info!("the database matches the schema");
            }
            match &store {
                Store::Postgres(pg) => pg.catalogs(&schemas, Some(&catalog)).await?,
                Store::Sqlite(_) => vec![catalog],
            }
        }
        (_, None) => anyhow::bail!("no schema: pass --schema PATH"),
    };
    let secret = match &config.jwt_secret {
        Some(s) => s.clone(),
        None => store.jwt_secret(&config.data_dir).await?,
    };
    let listener =
        tokio::net::TcpListener::bind(&config.listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let base_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let state = app::AppState::new(config.clone(), store.clone(), catalogs, &secret, base_url)?;
    if let Store::Postgres(pg) = &store {
        pg.watch_schema(state.catalog.clone(), introspect, schemas);
        pg.start_audit_sealer();
    }
    let place = match &store {
        Store::Sqlite(s) => s.path().display().to_string(),
        Store::Postgres(_) => config.database_url.as_deref().map(config::redact_url).unwrap_or_default(),
    };
    out!("Basalt is serving on http://{addr} ({} at {place})", store.backend_name());
    let mount = if config.rest.mount.is_empty() { "/" } else { config.rest.mount.as_str() };
    out!("  REST API:         http://{addr}{mount}   Auth API: http://{addr}/auth/v1");
    out!("  anon key:         {}", state.anon_key);
    out!("  service_role key: {}", state.service_key);
    out!("  publishable key:  {}   secret key: {}", state.jwt.opaque_key("anon"), state.jwt.opaque_key("service_role"));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    app::serve(listener, state, shutdown).await?;
    Ok(())
}

async fn migrate(a: cli::MigrateArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.sql_dir {
        migrate_sql_dir(dir, &a.store).await?;
        if a.schema.is_none() {
            return Ok(());
        }
    }
    let schema = schema_path(a.schema)?;
    let config = Config::load(Some(a.store.config.as_deref().unwrap_or(&schema)), &a.store, None)?;
    let catalog = load_schema(&schema)?;
    let store = Store::open(&config).await?;
    let m = store.migrate(&catalog, a.allow_destructive, a.dry_run).await?;
    if m.plan.is_empty() {
        out!("The database already matches the schema.");
        return Ok(());
    }
    out!("{} ({} steps):", if a.dry_run { "Migration plan" } else { "Applied" }, m.plan.steps.len());
    for s in &m.plan.steps {
        out!("  - {}", s.describe());
    }
    if a.dry_run {
        out!("\nSQL ({}):", store.backend_name());
        for s in &m.statements {
            out!("{s};");
        }
    }
    Ok(())
}

fn progress(len: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len as u64);
    let style = indicatif::ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_prefix(what.to_string());
    bar
}

/// Plain SQL migrations (Supabase's `supabase/migrations`), on PostgreSQL.
async fn migrate_sql_dir(dir: &Path, store_args: &cli::StoreArgs) -> anyhow::Result<()> {
    let config = Config::load(store_args.config.as_deref(), store_args, None)?;
    let Store::Postgres(pg) = Store::open(&config).await? else {
        anyhow::bail!("--sql-dir runs PostgreSQL migrations: pass --database-url");
    };
    let mut files: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sql") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            files.push((name, std::fs::read_to_string(&path)?));
        }
    }
    files.sort();
    let bar = progress(files.len(), "sql migrations");
    let applied = pg.migrate_sql_dir(&files, &bar).await?;
    bar.finish_and_clear();
    out!("{} of {} SQL migrations applied", applied.len(), files.len());
    for name in applied {
        out!("  - {name}");
    }
    Ok(())
}

/// Reads a CSV (header row) or JSON (array of objects) export of auth.users.
fn read_users(file: &Path) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    if file.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('[') {
        return serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()));
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers()?.clone();
    let mut rows = Vec::new();
    for rec in reader.records() {
        let rec = rec?;
        rows.push(headers.iter().zip(rec.iter()).map(|(h, v)| (h.to_string(), serde_json::Value::from(v))).collect());
    }
    Ok(rows)
}

async fn import_users(file: &Path, store_args: &cli::StoreArgs) -> anyhow::Result<()> {
    let config = Config::load(store_args.config.as_deref(), store_args, None)?;
    let users = read_users(file)?;
    for (i, u) in users.iter().enumerate() {
        let id = u.get("id").and_then(|v| v.as_str()).unwrap_or_default();
        if uuid::Uuid::parse_str(id).is_err() {
            anyhow::bail!("row {}: id {id:?} is not a uuid", i + 1);
        }
    }
    let store = Store::open(&config).await?;
    let bar = progress(users.len(), "users");
    let mut imported = 0;
    for chunk in users.chunks(500) {
        let stmts = chunk.iter().map(store::auth_sql::import_user).collect();
        let out = store.batch(stmts).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        imported += out.iter().filter(|rows| !rows.is_empty()).count();
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    out!("{imported} users imported, {} skipped (id or e-mail already present)", users.len() - imported);
    Ok(())
}

async fn keys(a: cli::KeysArgs) -> anyhow::Result<()> {
    // Like `serve`, read ./basalt.toml when no config is named, so both find the same secret.
    let default_file = Path::new("basalt.toml");
    let file = a.store.config.as_deref().or(default_file.exists().then_some(default_file));
    let config = Config::load(file, &a.store, None)?;
    let secret = match &config.jwt_secret {
        Some(s) => s.clone(),
        None => Store::open(&config).await?.jwt_secret(&config.data_dir).await?,
    };
    let is_base64 = config.rest.jwt_secret_is_base64 && config.jwt_secret.is_some();
    let jwt = auth::JwtKeys::new(&config::secret_bytes(&secret, is_base64)?, None);
    let (anon, service) = (jwt.project_key("anon"), jwt.project_key("service_role"));
    let (publishable, secret_key) = (jwt.opaque_key("anon"), jwt.opaque_key("service_role"));
    if a.json {
        out!(
            "{}",
            serde_json::json!({"anon_key": anon, "service_role_key": service, "publishable_key": publishable, "secret_key": secret_key})
        );
    } else {
        out!("anon key:         {anon}\nservice_role key: {service}\npublishable key:  {publishable}\nsecret key:       {secret_key}");
    }
    Ok(())
}

async fn audit_command(command: cli::AuditCommand) -> anyhow::Result<()> {
    let store_args = match &command {
        cli::AuditCommand::Verify { store, .. } | cli::AuditCommand::Log { store, .. } => store,
    };
    let config = Config::load(store_args.config.as_deref(), store_args, None)?;
    let store = Store::open(&config).await?;
    match command {
        cli::AuditCommand::Verify { json, .. } => {
            let verdict = store.audit_verify().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                out!("{}", serde_json::to_string(&verdict)?);
            } else if verdict.ok {
                out!("audit log ok: {} entries, head {}", verdict.entries, verdict.head);
            } else {
                out!(
                    "audit log BROKEN at entry {}: {} ({} entries check out before it)",
                    verdict.broken_at.unwrap_or_default(),
                    verdict.reason.as_deref().unwrap_or_default(),
                    verdict.entries
                );
            }
            if !verdict.ok {
                std::process::exit(1);
            }
        }
        cli::AuditCommand::Log { table, row_id, actor_id, after, limit, .. } => {
            let q = store::audit_log::EntryQuery { after, limit, table, row_id, actor_id };
            for e in store.audit_entries(q).await.map_err(|e| anyhow::anyhow!("{e}"))? {
                out!("{}", serde_json::to_string(&e)?);
            }
        }
    }
    Ok(())
}

/// `schema types`: the database's own tables and functions when a URL is given (the schema file's
/// tables stand in for `public` when both are), else the schema file's.
async fn types(schema: Option<&Path>, database_url: Option<&str>, db_schema: &str) -> anyhow::Result<()> {
    let file = schema.map(load_schema).transpose()?;
    let catalog = match (database_url, file) {
        (Some(url), file) => {
            let mut found = store::PgStore::introspect(url, db_schema).await?;
            if let Some(f) = file.filter(|_| db_schema == "public") {
                found = basalt_schema::Catalog { functions: found.functions, ..f };
            }
            found
        }
        (None, Some(f)) => f,
        (None, None) => anyhow::bail!("pass --schema PATH or --database-url URL"),
    };
    out!("{}", basalt_schema::typescript::typescript(&catalog).trim_end());
    Ok(())
}

fn check(schema: &Path) -> anyhow::Result<()> {
    let catalog = load_schema(schema)?;
    out!("{}: ok, {} tables", schema.display(), catalog.tables.len());
    for t in catalog.tables.values() {
        out!("  {} ({} columns, {} foreign keys, {} indexes)", t.name, t.columns.len(), t.foreign_keys.len(), t.indexes.len());
    }
    Ok(())
}
