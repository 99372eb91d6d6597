//! Portable SQL for Basalt's own tables (auth, and later keys, vault, jobs, audit): statements
//! written once with `?` placeholders and `auth.` table names, adapted per backend here.
//! Parameters and results are JSON values; PostgreSQL converts them to the column's real type.

use bytes::BytesMut;
use serde_json::{Map, Value};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type};

/// One statement and its parameters.
#[derive(Debug, Clone)]
pub struct Stmt {
    pub sql: String,
    pub params: Vec<Value>,
}

impl Stmt {
    pub fn new(sql: impl Into<String>, params: Vec<Value>) -> Self {
        Stmt { sql: sql.into(), params }
    }
}

pub type Row = Map<String, Value>;

/// `?` placeholders become `$1..$n` (outside quoted text).
pub fn to_pg(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let (mut n, mut quoted) = (0, false);
    for ch in sql.chars() {
        match ch {
            '\'' => {
                quoted = !quoted;
                out.push(ch);
            }
            '?' if !quoted => {
                n += 1;
                out.push_str(&format!("${n}"));
            }
            _ => out.push(ch),
        }
    }
    out
}

/// SQLite keeps Basalt's auth tables in the main database as `auth_<name>`.
pub fn to_sqlite(sql: &str) -> String {
    sql.replace("auth.", "auth_")
}

/// A JSON value bound to a PostgreSQL parameter of whatever type the server inferred.
#[derive(Debug)]
pub struct PgParam<'a>(pub &'a Value);

impl ToSql for PgParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let v = self.0;
        if v.is_null() {
            return Ok(IsNull::Yes);
        }
        let text = || match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match *ty {
            Type::UUID => uuid::Uuid::parse_str(&text())?.to_sql(ty, out),
            Type::TIMESTAMPTZ => chrono::DateTime::parse_from_rfc3339(&text())?.with_timezone(&chrono::Utc).to_sql(ty, out),
            Type::BOOL => v.as_bool().unwrap_or(text() == "true").to_sql(ty, out),
            Type::INT2 => (v.as_i64().unwrap_or_default() as i16).to_sql(ty, out),
            Type::INT4 => (v.as_i64().unwrap_or_default() as i32).to_sql(ty, out),
            Type::INT8 => v.as_i64().unwrap_or_default().to_sql(ty, out),
            Type::FLOAT8 => v.as_f64().unwrap_or_default().to_sql(ty, out),
            Type::JSON | Type::JSONB => match v {
                Value::String(s) => serde_json::from_str::<Value>(s).unwrap_or_else(|_| v.clone()).to_sql(ty, out),
                other => other.to_sql(ty, out),
            },
            _ => text().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Any PostgreSQL value read back as JSON (timestamps in Basalt's canonical form).
pub struct PgCell(pub Value);

impl<'a> FromSql<'a> for PgCell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgCell(match *ty {
            Type::UUID => Value::from(uuid::Uuid::from_sql(ty, raw)?.hyphenated().to_string()),
            Type::TIMESTAMPTZ => Value::from(basalt_query::value::format_timestamptz(&chrono::DateTime::<chrono::Utc>::from_sql(ty, raw)?)),
            Type::BOOL => Value::from(bool::from_sql(ty, raw)?),
            Type::INT2 => Value::from(i16::from_sql(ty, raw)?),
            Type::INT4 => Value::from(i32::from_sql(ty, raw)?),
            Type::INT8 => Value::from(i64::from_sql(ty, raw)?),
            Type::FLOAT8 => Value::from(f64::from_sql(ty, raw)?),
            Type::JSON | Type::JSONB => Value::from_sql(ty, raw)?,
            _ => Value::from(String::from_sql(ty, raw)?),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(PgCell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Typed reads from a portable row, smoothing SQLite's storage (0/1 booleans, JSON as text).
pub trait RowExt {
    fn str(&self, k: &str) -> Option<String>;
    fn flag(&self, k: &str) -> bool;
    fn json(&self, k: &str) -> Value;
    fn int(&self, k: &str) -> Option<i64>;
}

impl RowExt for Row {
    fn str(&self, k: &str) -> Option<String> {
        match self.get(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    fn flag(&self, k: &str) -> bool {
        match self.get(k) {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64() == Some(1),
            _ => false,
        }
    }

    fn json(&self, k: &str) -> Value {
        match self.get(k) {
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
            Some(v) => v.clone(),
            None => Value::Null,
        }
    }

    fn int(&self, k: &str) -> Option<i64> {
        self.get(k).and_then(Value::as_i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_names() {
        assert_eq!(
            to_pg("SELECT '?' , a FROM auth.users WHERE id = ? AND b = ?"),
            "SELECT '?' , a FROM auth.users WHERE id = $1 AND b = $2"
        );
        assert_eq!(to_sqlite("DELETE FROM auth.sessions"), "DELETE FROM auth_sessions");
    }
}
