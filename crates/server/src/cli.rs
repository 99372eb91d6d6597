//! Command line: `serve`, `migrate`, `keys`, `import`, `schema check`, `audit`. Flags override `BASALT_*`
//! environment variables, which override the config file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "basalt", version, about = "A Supabase-compatible backend in one binary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Migrate the database to the schema and serve the APIs.
    Serve(ServeArgs),
    /// Plan and apply the migration from the database to the schema.
    Migrate(MigrateArgs),
    /// Print the anon and service_role keys.
    Keys(KeysArgs),
    /// Import data: `basalt import users FILE`.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Check a schema file.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Read the audit log or check its hash chain.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain; exits with 1 when an entry was changed, added or removed.
    Verify {
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print entries as JSON lines, oldest first.
    Log {
        /// Only this table's entries.
        #[arg(long)]
        table: Option<String>,
        /// Only this row's entries (its primary key as text).
        #[arg(long)]
        row_id: Option<String>,
        /// Only this user's entries.
        #[arg(long)]
        actor_id: Option<String>,
        /// Entries after this id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Import users from a CSV or JSON export of auth.users (ids and bcrypt hashes kept).
    Users {
        /// The export: `.csv` with a header row, or `.json` (an array of objects).
        file: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Validate the schema file and print a summary.
    Check {
        #[arg(long, env = "BASALT_SCHEMA")]
        schema: PathBuf,
    },
    /// Print TypeScript types for supabase-js (`createClient<Database>(…)`), as
    /// `supabase gen types typescript` does: from the schema file, or from a PostgreSQL
    /// database as it is (with its functions) when --database-url is given.
    Types {
        #[arg(long, env = "BASALT_SCHEMA")]
        schema: Option<PathBuf>,
        /// A PostgreSQL database to read the tables and functions from (read only).
        #[arg(long, env = "BASALT_DATABASE_URL")]
        database_url: Option<String>,
        /// The database schema to type, with --database-url.
        #[arg(long, default_value = "public")]
        db_schema: String,
    },
    /// Print the schema file as human documentation (Markdown): purpose, structure, relations,
    /// access rules and indexes of each table.
    Docs {
        #[arg(long, env = "BASALT_SCHEMA")]
        schema: PathBuf,
    },
}

/// Where the data lives; shared by every command that touches it.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Data folder for the embedded database, the JWT secret and files.
    #[arg(long, env = "BASALT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL; when set, Basalt runs on PostgreSQL instead of embedded SQLite.
    #[arg(long, env = "BASALT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Config file (defaults to the schema file, whose [server]/[database]/[auth] sections it reads).
    #[arg(long, env = "BASALT_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaSource {
    /// The schema file: Basalt migrates the database to it.
    File,
    /// The PostgreSQL database as it is (tables, keys, policies and functions by introspection).
    Postgres,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Schema file (TOML).
    #[arg(long, env = "BASALT_SCHEMA")]
    pub schema: Option<PathBuf>,
    /// Where the schema comes from.
    #[arg(long, value_enum, env = "BASALT_SCHEMA_SOURCE", default_value = "file")]
    pub schema_source: SchemaSource,
    /// Address to listen on.
    #[arg(long, env = "BASALT_LISTEN")]
    pub listen: Option<String>,
    /// Apply destructive migration steps (drop table/column, type change) at start.
    #[arg(long)]
    pub allow_destructive: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    #[arg(long, env = "BASALT_SCHEMA")]
    pub schema: Option<PathBuf>,
    /// Print the plan and the SQL without applying it.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow steps that can lose data.
    #[arg(long)]
    pub allow_destructive: bool,
    /// Apply plain SQL migration files from this folder (PostgreSQL), in name order, each once.
    #[arg(long)]
    pub sql_dir: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    /// Print JSON: {"anon_key": ..., "service_role_key": ...}
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}
