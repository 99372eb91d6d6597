//! The one error type of the schema crate.

/// An error in a schema file, with the line it was found on when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SchemaError {
    #[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Invalid { message: String, line: Option<usize> },
}

impl SchemaError {
    pub fn at(message: impl Into<String>, line: Option<usize>) -> Self {
        SchemaError::Invalid { message: message.into(), line }
    }
}

pub type Result<T, E = SchemaError> = std::result::Result<T, E>;
