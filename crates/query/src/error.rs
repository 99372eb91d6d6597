//! Errors of the data API, carrying PostgREST's codes, statuses and messages verbatim.

use serde::Serialize;

/// A data-API error: the PostgREST body `{code, details, hint, message}` and its HTTP status.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    #[serde(skip)]
    pub status: u16,
    pub code: String,
    pub details: Option<String>,
    pub hint: Option<String>,
    pub message: String,
    /// Extra response headers (an error raised from SQL with `SQLSTATE 'PGRST'` may set them).
    /// Boxed: errors travel in every `Result` and should stay small.
    #[serde(skip)]
    pub headers: Option<Box<Vec<(String, String)>>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Error { status, code: code.into(), details: None, hint: None, message: message.into(), headers: None }
    }

    pub fn details(mut self, d: impl Into<String>) -> Self {
        self.details = Some(d.into());
        self
    }

    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }

    /// PGRST100: the query string does not parse.
    pub fn parse(what: &str, input: &str, details: impl Into<String>) -> Self {
        Error::new(400, "PGRST100", format!("failed to parse {what} ({input})")).details(details)
    }

    /// PGRST102: the body is not the JSON expected.
    pub fn bad_body(message: impl Into<String>) -> Self {
        Error::new(400, "PGRST102", message)
    }

    /// 22P02: a value does not parse as the column's type.
    pub fn invalid_input(type_name: &str, value: &str) -> Self {
        Error::new(400, "22P02", format!("invalid input syntax for type {type_name}: \"{value}\""))
    }

    /// PGRST205: no such table.
    pub fn unknown_table(schema: &str, name: &str, suggestion: Option<&str>) -> Self {
        let e = Error::new(404, "PGRST205", format!("Could not find the table '{schema}.{name}' in the schema cache"));
        match suggestion {
            Some(s) => e.hint(format!("Perhaps you meant the table '{schema}.{s}'")),
            None => e,
        }
    }

    /// 42703: a column in select, filter or order that the table does not have.
    pub fn unknown_column(table: &str, column: &str, suggestion: Option<&str>) -> Self {
        let e = Error::new(400, "42703", format!("column {table}.{column} does not exist"));
        match suggestion {
            Some(s) => e.hint(format!("Perhaps you meant to reference the column \"{table}.{s}\".")),
            None => e,
        }
    }

    /// PGRST204: a column in a write payload or `columns=` that the table does not have.
    pub fn unknown_payload_column(table: &str, column: &str) -> Self {
        Error::new(400, "PGRST204", format!("Could not find the '{column}' column of '{table}' in the schema cache"))
    }

    /// PGRST116: a singular response was asked for and the result is not exactly one row.
    pub fn not_single(rows: i64) -> Self {
        Error::new(406, "PGRST116", "Cannot coerce the result to a single JSON object").details(format!("The result contains {rows} rows"))
    }

    /// 42501 for a role without the privilege (401 for anon, 403 otherwise, as PostgREST).
    pub fn permission_denied(table: &str, anon: bool) -> Self {
        Error::new(if anon { 401 } else { 403 }, "42501", format!("permission denied for table {table}"))
    }

    /// PGRST103: a range that cannot be satisfied.
    pub fn bad_range(message: impl Into<String>) -> Self {
        Error::new(416, "PGRST103", "Requested range not satisfiable").details(message)
    }
}
