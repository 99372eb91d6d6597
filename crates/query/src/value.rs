//! Values: request text and JSON turned into typed, canonical parameters per column type,
//! so both backends store and compare exactly what PostgreSQL would.

use basalt_schema::ColumnType;
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

use crate::error::{Error, Result};

/// A bound parameter. PostgreSQL receives every parameter as text and casts it in SQL;
/// SQLite receives the native value.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A numeric kept as its decimal text (exact on PostgreSQL).
    Numeric(String),
    Text(String),
    /// JSON text (jsonb values, arrays, payloads).
    Json(String),
}

impl Param {
    /// The text form PostgreSQL parses.
    pub fn as_pg_text(&self) -> Option<String> {
        match self {
            Param::Null => None,
            Param::Bool(b) => Some(b.to_string()),
            Param::Int(i) => Some(i.to_string()),
            Param::Float(f) => Some(f.to_string()),
            Param::Numeric(s) | Param::Text(s) | Param::Json(s) => Some(s.clone()),
        }
    }
}

/// A JSON value as text. `serde_json::to_string` writes straight into a buffer; `Display` (what
/// `.to_string()` calls) goes through the formatting machinery, a call per token, and showed in
/// profiles of inserts with a JSON column.
pub fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Coerces a filter value (text from the URL) to the column type.
pub fn from_text(ty: ColumnType, raw: &str) -> Result<Param> {
    let bad = || Error::invalid_input(&ty.pg_display(), raw);
    Ok(match ty {
        ColumnType::Uuid => Param::Text(canonical_uuid(raw).ok_or_else(bad)?),
        ColumnType::Text | ColumnType::Other => Param::Text(raw.to_string()),
        ColumnType::Varchar(_) => Param::Text(raw.to_string()),
        ColumnType::Boolean => Param::Bool(parse_bool(raw).ok_or_else(bad)?),
        ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => Param::Int(parse_int(ty, raw)?),
        ColumnType::Numeric => {
            let t = raw.trim();
            t.parse::<f64>().ok().filter(|f| f.is_finite()).ok_or_else(bad)?;
            Param::Numeric(t.to_string())
        }
        ColumnType::Real | ColumnType::Double => Param::Float(raw.trim().parse::<f64>().map_err(|_| bad())?),
        ColumnType::Date => Param::Text(canonical_date(raw).ok_or_else(|| datetime_error(ty, raw))?),
        ColumnType::Timestamptz => Param::Text(canonical_timestamptz(raw).ok_or_else(|| datetime_error(ty, raw))?),
        ColumnType::Jsonb => {
            let v: Value = serde_json::from_str(raw).map_err(|_| bad())?;
            Param::Json(v.to_string())
        }
        ColumnType::TextArray | ColumnType::UuidArray => {
            let items = basalt_schema::default::parse_array_literal(raw)
                .ok_or_else(|| Error::new(400, "22P02", format!("malformed array literal: \"{raw}\"")))?;
            let elem = if ty == ColumnType::UuidArray { ColumnType::Uuid } else { ColumnType::Text };
            let vals = items.iter().map(|i| from_text(elem, i).map(param_to_json)).collect::<Result<Vec<_>>>()?;
            Param::Json(Value::Array(vals).to_string())
        }
    })
}

/// A filter value as the JSON value a payload would carry for the column, to compare the two.
pub fn text_as_json(ty: ColumnType, raw: &str) -> Result<Value> {
    from_text(ty, raw).map(param_to_json)
}

/// PostgreSQL's errors for dates: 22008 when the fields are out of range, 22007 otherwise.
fn datetime_error(ty: ColumnType, raw: &str) -> Error {
    let t = raw.trim();
    let shaped = t.len() >= 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-' && t[..4].chars().all(|c| c.is_ascii_digit());
    if shaped {
        Error::new(400, "22008", format!("date/time field value out of range: \"{raw}\""))
    } else {
        Error::new(400, "22007", format!("invalid input syntax for type {}: \"{raw}\"", ty.pg_display()))
    }
}

fn param_to_json(p: Param) -> Value {
    match p {
        Param::Null => Value::Null,
        Param::Bool(b) => Value::Bool(b),
        Param::Int(i) => Value::from(i),
        Param::Float(f) => Value::from(f),
        Param::Numeric(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
        Param::Text(s) => Value::String(s),
        Param::Json(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
    }
}

/// Whether a JSON value holds a NUL character in a string or key, which PostgreSQL's `text` and
/// `jsonb` refuse; SQLite would store it, so both refuse it here.
pub fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Coerces one JSON value of a write payload to the column type, as `json_populate_record` would.
pub fn from_json(ty: ColumnType, v: &Value) -> Result<Value> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    if has_nul(v) {
        return Err(Error::new(400, "22P05", "unsupported Unicode escape sequence").details("\\u0000 cannot be converted to text."));
    }
    let text_of = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match ty {
        ColumnType::Jsonb | ColumnType::Other => Ok(v.clone()),
        ColumnType::TextArray | ColumnType::UuidArray => match v {
            Value::Array(items) => {
                let elem = if ty == ColumnType::UuidArray { ColumnType::Uuid } else { ColumnType::Text };
                items.iter().map(|i| from_json(elem, i)).collect::<Result<Vec<_>>>().map(Value::Array)
            }
            Value::String(s) => from_text(ty, s).map(param_to_json),
            other => Err(Error::new(400, "22P02", format!("malformed array literal: \"{other}\""))),
        },
        ColumnType::Text => Ok(Value::String(text_of(v))),
        ColumnType::Varchar(limit) => {
            let s = text_of(v);
            if let Some(n) = limit {
                if s.chars().count() > n as usize {
                    return Err(Error::new(400, "22001", format!("value too long for type character varying({n})")));
                }
            }
            Ok(Value::String(s))
        }
        ColumnType::Boolean => match v {
            Value::Bool(b) => Ok(Value::Bool(*b)),
            other => from_text(ty, &text_of(other)).map(param_to_json),
        },
        ColumnType::SmallInt | ColumnType::Integer | ColumnType::BigInt => match v {
            Value::Number(n) if n.is_i64() => Ok(Value::from(check_int_range(ty, n.as_i64().unwrap_or_default(), &n.to_string())?)),
            // JSON's `-0`, which serde_json reads as a float; PostgreSQL takes it as 0.
            Value::Number(n) if n.as_f64() == Some(0.0) => Ok(Value::from(0)),
            other => from_text(ty, &text_of(other)).map(param_to_json),
        },
        ColumnType::Numeric | ColumnType::Real | ColumnType::Double => match v {
            Value::Number(_) => Ok(v.clone()),
            other => from_text(ty, &text_of(other)).map(param_to_json),
        },
        _ => match v {
            Value::String(s) => from_text(ty, s).map(param_to_json),
            other => Err(Error::invalid_input(&ty.pg_display(), &other.to_string())),
        },
    }
}

fn parse_int(ty: ColumnType, raw: &str) -> Result<i64> {
    let n = raw.trim().parse::<i64>().map_err(|_| Error::invalid_input(&ty.pg_display(), raw))?;
    check_int_range(ty, n, raw)
}

fn check_int_range(ty: ColumnType, n: i64, raw: &str) -> Result<i64> {
    let ok = match ty {
        ColumnType::SmallInt => i16::try_from(n).is_ok(),
        ColumnType::Integer => i32::try_from(n).is_ok(),
        _ => true,
    };
    if ok {
        Ok(n)
    } else {
        Err(Error::new(400, "22003", format!("value \"{raw}\" is out of range for type {}", ty.pg_display())))
    }
}

/// PostgreSQL's boolean input: t/true/yes/on/1 and f/false/no/off/0, any case.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
        "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

pub fn canonical_uuid(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw.trim()).ok().map(|u| u.hyphenated().to_string())
}

pub fn canonical_date(raw: &str) -> Option<String> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok().filter(|d| four_digit_year(d.year())).map(|d| d.format("%Y-%m-%d").to_string())
}

/// Years 1 to 9999: PostgreSQL has no year 0 (and writes BC years its own way), and four digits
/// keep text order and time order the same on SQLite.
fn four_digit_year(y: i32) -> bool {
    (1..=9999).contains(&y)
}

/// Parses the usual timestamp spellings and prints them as PostgreSQL's JSON does in UTC:
/// `2026-11-21T22:42:06.123456+00:00`, fraction trimmed of trailing zeros.
pub fn canonical_timestamptz(raw: &str) -> Option<String> {
    let s = raw.trim();
    let parsed: Option<DateTime<Utc>> = DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%#z"))
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"))
                .ok()
                .or_else(|| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
                .map(|n| n.and_utc())
        });
    parsed.filter(|d| four_digit_year(d.year())).map(|d| format_timestamptz(&d))
}

/// PostgreSQL's JSON rendering of a timestamptz in UTC, with microsecond precision.
pub fn format_timestamptz(d: &DateTime<Utc>) -> String {
    let micros = d.timestamp_subsec_micros();
    let base = d.format("%Y-%m-%dT%H:%M:%S").to_string();
    if micros == 0 {
        format!("{base}+00:00")
    } else {
        let frac = format!("{micros:06}");
        format!("{base}.{}+00:00", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_print_like_postgres() {
        assert_eq!(canonical_timestamptz("2026-01-02T03:04:05.120Z").unwrap(), "2026-01-02T03:04:05.12+00:00");
        assert_eq!(canonical_timestamptz("2026-01-02 05:04:05+02").unwrap(), "2026-01-02T03:04:05+00:00");
        assert_eq!(canonical_timestamptz("2026-01-02").unwrap(), "2026-01-02T00:00:00+00:00");
        assert!(canonical_timestamptz("yesterday-ish").is_none());
    }

    #[test]
    fn text_values() {
        assert_eq!(
            from_text(ColumnType::Uuid, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11").unwrap(),
            Param::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into())
        );
        let e = from_text(ColumnType::Integer, "abc").unwrap_err();
        assert_eq!((e.code.as_str(), e.message.as_str()), ("22P02", "invalid input syntax for type integer: \"abc\""));
        assert_eq!(from_text(ColumnType::SmallInt, "40000").unwrap_err().code, "22003");
        assert_eq!(from_text(ColumnType::TextArray, "{a,\"b c\"}").unwrap(), Param::Json("[\"a\",\"b c\"]".into()));
        assert_eq!(from_text(ColumnType::Boolean, "TRUE").unwrap(), Param::Bool(true));
    }

    #[test]
    fn json_values() {
        assert_eq!(from_json(ColumnType::BigInt, &json!("42")).unwrap(), json!(42));
        assert_eq!(from_json(ColumnType::Integer, &json!(1.5)).unwrap_err().code, "22P02");
        assert_eq!(from_json(ColumnType::Varchar(Some(2)), &json!("abc")).unwrap_err().code, "22001");
        assert_eq!(from_json(ColumnType::Text, &json!(5)).unwrap(), json!("5"));
        assert_eq!(from_json(ColumnType::Boolean, &json!("no")).unwrap(), json!(false));
    }
}
