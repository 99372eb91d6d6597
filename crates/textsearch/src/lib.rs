//! Full-text search as PostgreSQL's `@@` does it, for SQLite, which has no `tsvector`.
//!
//! PostgREST's `fts`, `plfts`, `phfts` and `wfts` filters become `to_tsvector(cfg, col) @@
//! to_tsquery(cfg, q)` (or `plainto_`, `phraseto_`, `websearch_to_tsquery`) on PostgreSQL. On
//! SQLite the same request runs this crate's [`matches`] as a SQL function: the document is
//! split into words with positions, each word normalized by the configuration (lower case,
//! English stop words dropped, Snowball stemming), and the query is parsed with PostgreSQL's
//! grammar and evaluated against those positions, phrase operators included.
//!
//! The planner also uses [`check_syntax`], so a malformed `to_tsquery` gets PostgreSQL's
//! `42601` on both backends before anything runs.

mod config;
mod eval;
mod query;
mod token;

pub use config::Config;
pub use query::{Kind, Query};

/// What can go wrong: the two errors PostgreSQL raises for the same input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// SQLSTATE 42601.
    #[error("syntax error in tsquery: \"{0}\"")]
    Syntax(String),
    /// SQLSTATE 42601: the text ends where an operand should be.
    #[error("no operand in tsquery: \"{0}\"")]
    NoOperand(String),
    /// SQLSTATE 42704.
    #[error("text search configuration \"{0}\" does not exist")]
    UnknownConfig(String),
}

impl Error {
    /// The SQLSTATE PostgreSQL gives the same error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::Syntax(_) | Error::NoOperand(_) => "42601",
            Error::UnknownConfig(_) => "42704",
        }
    }

    /// The SQLSTATE of an error known only by its message (SQLite passes a function's error
    /// on as text).
    pub fn sqlstate_of_message(message: &str) -> Option<&'static str> {
        if message.starts_with("syntax error in tsquery: ") || message.starts_with("no operand in tsquery: ") {
            Some("42601")
        } else if message.starts_with("text search configuration \"") && message.ends_with("\" does not exist") {
            Some("42704")
        } else {
            None
        }
    }
}

/// Fails where PostgreSQL's parser for `kind` would fail on `text` (only `to_tsquery` can).
pub fn check_syntax(kind: Kind, text: &str) -> Result<(), Error> {
    query::parse_raw(kind, text).map(|_| ())
}

/// `to_tsvector(config, document) @@ <kind>(config, query)`; `config` None is `english`,
/// PostgreSQL's usual `default_text_search_config`.
pub fn matches(document: &str, kind: Kind, config: Option<&str>, query: &str) -> Result<bool, Error> {
    let config = Config::named(config)?;
    let query = Query::parse(kind, query, &config)?;
    Ok(query.matches(&config.document(document)))
}

#[cfg(test)]
mod tests;
