//! Column defaults: the few shapes the seeds use, parsed once and rendered per dialect.

use serde::{Deserialize, Serialize};

use crate::types::ColumnType;

/// A column default. Literals are kept as the value PostgreSQL would store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum DefaultExpr {
    Null,
    /// `now()`: the transaction's timestamp.
    Now,
    /// `gen_random_uuid()` (also accepted: `uuid_generate_v4()`).
    RandomUuid,
    /// `uuidv7()` (also accepted: `uuid_generate_v7()`): a time-ordered uuid, so new rows land at
    /// the right edge of the primary-key index instead of on a random page of it.
    TimeUuid,
    /// `auth.uid()`: the requesting user's id (null for anon and service_role).
    AuthUid,
    Bool(bool),
    Number(serde_json::Number),
    Text(String),
    /// A jsonb or array literal, held as JSON (`'{}'` on a text[] column becomes `[]`).
    Json(serde_json::Value),
    /// A default found by introspecting PostgreSQL, as `pg_get_expr` prints it (never from a
    /// schema file), used verbatim where a statement must spell the default out.
    Database(String),
}

impl DefaultExpr {
    /// Parses a default as written in a schema file for a column of type `ty`.
    pub fn parse(raw: &toml::Value, ty: ColumnType) -> Result<Self, String> {
        match raw {
            toml::Value::Boolean(b) => Self::typed_literal(&b.to_string(), ty),
            toml::Value::Integer(i) => Self::typed_literal(&i.to_string(), ty),
            toml::Value::Float(f) => Self::typed_literal(&f.to_string(), ty),
            toml::Value::String(s) => Self::parse_sql(s, ty),
            _ => Err("a default is a string such as \"now()\" or \"'text'\", a number or a boolean".into()),
        }
    }

    fn parse_sql(raw: &str, ty: ColumnType) -> Result<Self, String> {
        let s = raw.trim();
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "null" => return Ok(DefaultExpr::Null),
            "now()" | "current_timestamp" | "timezone('utc'::text, now())" => {
                return match ty {
                    ColumnType::Timestamptz | ColumnType::Date => Ok(DefaultExpr::Now),
                    _ => Err(format!("now() is a timestamp, not a default for type {}", ty.pg_name())),
                }
            }
            "gen_random_uuid()" | "uuid_generate_v4()" | "extensions.uuid_generate_v4()" => {
                return match ty {
                    ColumnType::Uuid => Ok(DefaultExpr::RandomUuid),
                    _ => Err(format!("{s} makes a uuid, not a default for type {}", ty.pg_name())),
                }
            }
            "uuidv7()" | "uuid_generate_v7()" | "extensions.uuid_generate_v7()" => {
                return match ty {
                    ColumnType::Uuid => Ok(DefaultExpr::TimeUuid),
                    _ => Err(format!("{s} makes a uuid, not a default for type {}", ty.pg_name())),
                }
            }
            "auth.uid()" => {
                return match ty {
                    ColumnType::Uuid => Ok(DefaultExpr::AuthUid),
                    _ => Err("auth.uid() is a uuid; the column must be of type uuid".into()),
                }
            }
            _ => {}
        }
        // A quoted literal, optionally with a cast: 'open', '{}'::jsonb, '[]'
        if let Some(rest) = s.strip_prefix('\'') {
            let end = rest.rfind('\'').ok_or("unterminated quoted default")?;
            let (body, tail) = (&rest[..end], rest[end + 1..].trim());
            if !tail.is_empty() && !tail.starts_with("::") {
                return Err(format!("unexpected text after the quoted default: {tail}"));
            }
            let body = body.replace("''", "'");
            return Self::typed_literal_quoted(&body, ty);
        }
        Self::typed_literal(s, ty)
    }

    /// An unquoted literal: numbers and booleans.
    fn typed_literal(s: &str, ty: ColumnType) -> Result<Self, String> {
        match ty {
            ColumnType::Boolean => match s.to_ascii_lowercase().as_str() {
                "true" => Ok(DefaultExpr::Bool(true)),
                "false" => Ok(DefaultExpr::Bool(false)),
                _ => Err(format!("a boolean default is true or false, not {s}")),
            },
            t if t.is_numeric() => {
                let n: serde_json::Number = s.parse().map_err(|_| format!("{s} is not a number"))?;
                let integral = matches!(t, ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt);
                if integral && !(n.is_i64() || n.is_u64()) {
                    return Err(format!("{s} is not an integer"));
                }
                Ok(DefaultExpr::Number(n))
            }
            _ => Err(format!("default {s} does not fit type {}; quote text as \"'{s}'\"", ty.pg_name())),
        }
    }

    fn typed_literal_quoted(body: &str, ty: ColumnType) -> Result<Self, String> {
        match ty {
            ColumnType::Jsonb => serde_json::from_str(body).map(DefaultExpr::Json).map_err(|e| format!("default is not valid JSON: {e}")),
            ColumnType::TextArray | ColumnType::UuidArray => parse_array_literal(body)
                .map(|items| DefaultExpr::Json(serde_json::Value::from(items)))
                .ok_or_else(|| format!("malformed array literal: \"{body}\"")),
            ColumnType::Boolean | ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => Self::typed_literal(body, ty),
            ColumnType::Numeric | ColumnType::Real | ColumnType::Double => Self::typed_literal(body, ty),
            _ => Ok(DefaultExpr::Text(body.to_string())),
        }
    }

    /// True when the default is the same for every row (SQLite can add such a column in place).
    pub fn is_constant(&self) -> bool {
        !matches!(
            self,
            DefaultExpr::Now | DefaultExpr::RandomUuid | DefaultExpr::TimeUuid | DefaultExpr::AuthUid | DefaultExpr::Database(_)
        )
    }
}

/// Parses a flat PostgreSQL array literal such as `{a,"b c"}` into its items.
pub fn parse_array_literal(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    if inner.trim().is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut item = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            while chars.peek() == Some(&' ') {
                chars.next();
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' || c == '}' || c == '"' {
                    return None;
                }
                item.push(c);
                chars.next();
            }
            item = item.trim().to_string();
        }
        items.push(item);
        match chars.next() {
            None => return Some(items),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(raw: &str, ty: ColumnType) -> Result<DefaultExpr, String> {
        DefaultExpr::parse(&toml::Value::String(raw.into()), ty)
    }

    #[test]
    fn parses_seed_defaults() {
        assert_eq!(p("now()", ColumnType::Timestamptz), Ok(DefaultExpr::Now));
        assert_eq!(p("gen_random_uuid()", ColumnType::Uuid), Ok(DefaultExpr::RandomUuid));
        assert_eq!(p("uuidv7()", ColumnType::Uuid), Ok(DefaultExpr::TimeUuid));
        assert_eq!(p("uuid_generate_v7()", ColumnType::Uuid), Ok(DefaultExpr::TimeUuid));
        assert!(p("uuidv7()", ColumnType::Text).is_err());
        assert_eq!(p("'free'", ColumnType::Text), Ok(DefaultExpr::Text("free".into())));
        assert_eq!(p("'{}'", ColumnType::TextArray), Ok(DefaultExpr::Json(serde_json::json!([]))));
        assert_eq!(p("'{}'::jsonb", ColumnType::Jsonb), Ok(DefaultExpr::Json(serde_json::json!({}))));
        assert_eq!(p("false", ColumnType::Boolean), Ok(DefaultExpr::Bool(false)));
        assert!(p("now()", ColumnType::Text).is_err());
        assert!(p("abc", ColumnType::Integer).is_err());
    }

    #[test]
    fn parses_array_literals() {
        assert_eq!(parse_array_literal("{a, \"b,c\"}"), Some(vec!["a".into(), "b,c".into()]));
        assert_eq!(parse_array_literal("{}"), Some(vec![]));
        assert_eq!(parse_array_literal("a,b"), None);
    }
}
