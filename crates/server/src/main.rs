//! `basalt`: a Supabase-compatible backend in one binary.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod app;
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

use crate::cli::{Cli, Command, SchemaCommand};
use crate::config::Config;
use crate::store::Store;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tower_http=warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => serve(a).await,
        Command::Migrate(a) => migrate(a).await,
        Command::Keys(a) => keys(a).await,
        Command::Schema { command: SchemaCommand::Check { schema } } => check(&schema),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn schema_path(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
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
    let schema = schema_path(a.schema)?;
    let config = Config::load(Some(a.store.config.as_deref().unwrap_or(&schema)), &a.store, a.listen.as_deref())?;
    let catalog = load_schema(&schema)?;
    tracing::debug!(?config, "configuration");
    let store = Store::open(&config).await?;
    let migration = store.migrate(&catalog, a.allow_destructive, false).await?;
    if migration.applied {
        for step in &migration.plan.steps {
            tracing::info!("migrated: {}", step.describe());
        }
    } else {
        tracing::info!("the database matches the schema");
    }
    let secret = match &config.jwt_secret {
        Some(s) => s.clone(),
        None => store.jwt_secret(&config.data_dir).await?,
    };
    let listener =
        tokio::net::TcpListener::bind(&config.listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}");
    let state = app::AppState::new(config.clone(), store.clone(), catalog, &secret, base_url);
    if let Store::Postgres(pg) = &store {
        pg.watch_schema(state.catalog.clone());
    }
    let place = match &store {
        Store::Sqlite(s) => s.path().display().to_string(),
        Store::Postgres(_) => config.database_url.as_deref().map(config::redact_url).unwrap_or_default(),
    };
    println!("Basalt is serving on http://{addr} ({} at {place})", store.backend_name());
    println!("  REST API:         http://{addr}/rest/v1   Auth API: http://{addr}/auth/v1");
    println!("  anon key:         {}", state.anon_key);
    println!("  service_role key: {}", state.service_key);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    app::serve(listener, state, shutdown).await?;
    Ok(())
}

async fn migrate(a: cli::MigrateArgs) -> anyhow::Result<()> {
    let schema = schema_path(a.schema)?;
    let config = Config::load(Some(a.store.config.as_deref().unwrap_or(&schema)), &a.store, None)?;
    let catalog = load_schema(&schema)?;
    let store = Store::open(&config).await?;
    let m = store.migrate(&catalog, a.allow_destructive, a.dry_run).await?;
    if m.plan.is_empty() {
        println!("The database already matches the schema.");
        return Ok(());
    }
    println!("{} ({} steps):", if a.dry_run { "Migration plan" } else { "Applied" }, m.plan.steps.len());
    for s in &m.plan.steps {
        println!("  - {}", s.describe());
    }
    if a.dry_run {
        println!("\nSQL ({}):", store.backend_name());
        for s in &m.statements {
            println!("{s};");
        }
    }
    Ok(())
}

async fn keys(a: cli::KeysArgs) -> anyhow::Result<()> {
    let config = Config::load(a.store.config.as_deref(), &a.store, None)?;
    let secret = match &config.jwt_secret {
        Some(s) => s.clone(),
        None => Store::open(&config).await?.jwt_secret(&config.data_dir).await?,
    };
    let jwt = auth::JwtKeys::new(&secret);
    let (anon, service) = (jwt.project_key("anon"), jwt.project_key("service_role"));
    if a.json {
        println!("{}", serde_json::json!({"anon_key": anon, "service_role_key": service}));
    } else {
        println!("anon key:         {anon}\nservice_role key: {service}");
    }
    Ok(())
}

fn check(schema: &Path) -> anyhow::Result<()> {
    let catalog = load_schema(schema)?;
    println!("{}: ok, {} tables", schema.display(), catalog.tables.len());
    for t in catalog.tables.values() {
        println!("  {} ({} columns, {} foreign keys, {} indexes)", t.name, t.columns.len(), t.foreign_keys.len(), t.indexes.len());
    }
    Ok(())
}
