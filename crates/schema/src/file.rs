//! The schema file as written (TOML), before validation. Spans give error lines.

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SchemaFile {
    #[serde(default)]
    pub tables: IndexMap<String, Spanned<TableDef>>,
    /// Server settings live in the same file; the server crate reads them.
    #[serde(default)]
    pub server: Option<toml::Table>,
    #[serde(default)]
    pub database: Option<toml::Table>,
    #[serde(default)]
    pub auth: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableDef {
    #[serde(default)]
    pub description: Option<String>,
    /// Adds `created_at`/`updated_at` (default true, the seeds' convention).
    #[serde(default = "yes")]
    pub timestamps: bool,
    /// Owner column: rows belong to `auth.uid()` through it (enforced by the auth layer).
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub columns: IndexMap<String, Spanned<ColumnDef>>,
    /// Composite unique constraints, each a list of column names.
    #[serde(default)]
    pub unique: Vec<Vec<String>>,
    #[serde(default)]
    pub indexes: Vec<Spanned<IndexDef>>,
    #[serde(default)]
    pub policies: Vec<Spanned<PolicyDef>>,
    /// Signup hook: a row inserted for every new user, column = user field
    /// (`id`, `email`, `phone`, `user_metadata.<key>`, `app_metadata.<key>`).
    #[serde(default)]
    pub on_signup: Option<Spanned<IndexMap<String, String>>>,
    /// Audit trail: `true`, or `{ redact = ["column", ...] }` to keep those values out of it.
    #[serde(default)]
    pub audit: Option<Spanned<AuditDef>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum AuditDef {
    On(bool),
    With(AuditOptions),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditOptions {
    #[serde(default)]
    pub redact: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDef {
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default)]
    pub primary_key: bool,
    #[serde(default)]
    pub not_null: bool,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub default: Option<toml::Value>,
    /// `table.column` (or `table`, meaning its primary key).
    #[serde(default)]
    pub references: Option<String>,
    #[serde(default)]
    pub on_delete: Option<String>,
    /// Check constraint: the value must be one of these.
    #[serde(default)]
    pub one_of: Option<Vec<toml::Value>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexDef {
    /// Column names, each optionally followed by ` desc`.
    pub columns: Vec<String>,
    #[serde(default)]
    pub unique: bool,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDef {
    pub name: String,
    #[serde(default = "all")]
    pub command: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub using: Option<String>,
    #[serde(default)]
    pub with_check: Option<String>,
}

fn all() -> String {
    "all".into()
}
