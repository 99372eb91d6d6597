//! Column types Basalt supports, with their names in each dialect.

use serde::{Deserialize, Serialize};

/// A column type from the schema file. Arrays are one level deep, as in the seeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Uuid,
    Text,
    Varchar(Option<u32>),
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Numeric,
    Real,
    Double,
    Date,
    Timestamptz,
    Jsonb,
    TextArray,
    UuidArray,
    /// A type found by introspecting an existing database that Basalt has no special handling
    /// for (enums, inet, time, ...): compared as text, written and read by PostgreSQL itself.
    Other,
}

impl ColumnType {
    /// Parses a type as written in a schema file (`varchar(255)`, `timestamptz`, `text[]`, ...).
    pub fn parse(raw: &str) -> Option<Self> {
        let t = raw.trim().to_ascii_lowercase();
        let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(inner) = t.strip_prefix("varchar(").or_else(|| t.strip_prefix("character varying(")) {
            let n = inner.strip_suffix(')')?.trim().parse::<u32>().ok()?;
            return (n > 0).then_some(ColumnType::Varchar(Some(n)));
        }
        Some(match t.as_str() {
            "uuid" => ColumnType::Uuid,
            "text" => ColumnType::Text,
            "varchar" | "character varying" => ColumnType::Varchar(None),
            "boolean" | "bool" => ColumnType::Boolean,
            "smallint" | "int2" => ColumnType::SmallInt,
            "integer" | "int" | "int4" => ColumnType::Integer,
            "bigint" | "int8" => ColumnType::BigInt,
            "numeric" | "decimal" => ColumnType::Numeric,
            "real" | "float4" => ColumnType::Real,
            "double precision" | "float8" | "double" => ColumnType::Double,
            "date" => ColumnType::Date,
            "timestamptz" | "timestamp with time zone" => ColumnType::Timestamptz,
            "jsonb" | "json" => ColumnType::Jsonb,
            "text[]" => ColumnType::TextArray,
            "uuid[]" => ColumnType::UuidArray,
            _ => return None,
        })
    }

    /// The PostgreSQL type, as used in DDL and casts.
    pub fn pg_name(&self) -> String {
        match self {
            ColumnType::Varchar(Some(n)) => format!("varchar({n})"),
            other => other.pg_base().to_string(),
        }
    }

    fn pg_base(&self) -> &'static str {
        match self {
            ColumnType::Uuid => "uuid",
            ColumnType::Text => "text",
            ColumnType::Varchar(_) => "varchar",
            ColumnType::Boolean => "boolean",
            ColumnType::SmallInt => "smallint",
            ColumnType::Integer => "integer",
            ColumnType::BigInt => "bigint",
            ColumnType::Numeric => "numeric",
            ColumnType::Real => "real",
            ColumnType::Double => "double precision",
            ColumnType::Date => "date",
            ColumnType::Timestamptz => "timestamptz",
            ColumnType::Jsonb => "jsonb",
            ColumnType::TextArray => "text[]",
            ColumnType::UuidArray => "uuid[]",
            ColumnType::Other => "text",
        }
    }

    /// The name PostgreSQL uses in error messages ("invalid input syntax for type integer").
    pub fn pg_display(&self) -> String {
        match self {
            ColumnType::Varchar(Some(n)) => format!("character varying({n})"),
            ColumnType::Varchar(None) => "character varying".into(),
            ColumnType::Timestamptz => "timestamp with time zone".into(),
            ColumnType::Jsonb => "json".into(),
            other => other.pg_base().to_string(),
        }
    }

    /// The format shown in OpenAPI and generated docs (PostgreSQL's own spelling).
    pub fn format_name(&self) -> String {
        match self {
            ColumnType::Varchar(Some(n)) => format!("character varying({n})"),
            ColumnType::Timestamptz => "timestamp with time zone".into(),
            ColumnType::TextArray => "text[]".into(),
            ColumnType::UuidArray => "uuid[]".into(),
            other => other.pg_display(),
        }
    }

    /// The SQLite declared type (affinity). Values are canonicalised before they are stored,
    /// so SQLite holds what PostgreSQL would print.
    pub fn sqlite_name(&self) -> &'static str {
        match self {
            ColumnType::Boolean | ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => "INTEGER",
            ColumnType::Numeric => "NUMERIC",
            ColumnType::Real | ColumnType::Double => "REAL",
            _ => "TEXT",
        }
    }

    /// Values held as JSON text on SQLite (and produced as JSON by PostgreSQL).
    pub fn is_json_like(&self) -> bool {
        matches!(self, ColumnType::Jsonb | ColumnType::TextArray | ColumnType::UuidArray)
    }

    pub fn is_array(&self) -> bool {
        matches!(self, ColumnType::TextArray | ColumnType::UuidArray)
    }

    pub fn is_textual(&self) -> bool {
        matches!(self, ColumnType::Text | ColumnType::Varchar(_))
    }

    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt | ColumnType::Numeric | ColumnType::Real | ColumnType::Double
        )
    }

    /// The JSON-schema type used in OpenAPI and TypeScript generation.
    pub fn json_type(&self) -> &'static str {
        match self {
            ColumnType::Boolean => "boolean",
            ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => "integer",
            ColumnType::Numeric | ColumnType::Real | ColumnType::Double => "number",
            ColumnType::TextArray | ColumnType::UuidArray => "array",
            ColumnType::Jsonb => "object",
            _ => "string",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_types() {
        assert_eq!(ColumnType::parse("VARCHAR(255)"), Some(ColumnType::Varchar(Some(255))));
        assert_eq!(ColumnType::parse("timestamp with time zone"), Some(ColumnType::Timestamptz));
        assert_eq!(ColumnType::parse("double  precision"), Some(ColumnType::Double));
        assert_eq!(ColumnType::parse("uuid[]"), Some(ColumnType::UuidArray));
        assert_eq!(ColumnType::parse("varchar(0)"), None);
        assert_eq!(ColumnType::parse("money"), None);
    }

    #[test]
    fn names_per_dialect() {
        assert_eq!(ColumnType::Varchar(Some(50)).pg_name(), "varchar(50)");
        assert_eq!(ColumnType::Timestamptz.pg_display(), "timestamp with time zone");
        assert_eq!(ColumnType::Boolean.sqlite_name(), "INTEGER");
    }
}
