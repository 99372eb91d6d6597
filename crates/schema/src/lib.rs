//! Basalt's schema as code: the schema file model, its validation, the catalog every
//! other layer resolves names against, the migration diff and the DDL for each dialect.
//! Pure: no IO beyond the text handed in.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod audit;
mod build;
pub mod catalog;
pub mod ddl;
pub mod default;
pub mod diff;
mod error;
mod file;
pub mod ident;
pub mod markdown;
pub mod policy;
mod types;
pub mod typescript;

pub use catalog::{
    Audit, Catalog, CheckConstraint, Column, ForeignKey, Function, FunctionArg, FunctionReturn, Index, OnDelete, Policy, Table,
    UniqueConstraint, AUTH_USERS,
};
pub use ddl::DdlDialect;
pub use default::DefaultExpr;
pub use diff::{diff, DbState, MigrationPlan, MigrationStep};
pub use error::{Result, SchemaError};
pub use types::ColumnType;

/// Parses and validates schema text (TOML) into a catalog.
pub fn parse_schema(source: &str) -> Result<Catalog> {
    build::build(source)
}
