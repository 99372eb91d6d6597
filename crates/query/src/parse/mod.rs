//! Parse: HTTP method, path, query string, headers and body into an [`ApiRequest`].
//! Names are not checked here; the planner checks them against the catalog.

mod cursor;
mod filter;
mod headers;
mod select;

pub use filter::{is_config_name, parse_field, parse_filter, parse_list, parse_logic, parse_order};
pub use headers::{parse_accept, parse_prefer, parse_range_header};
pub use select::parse_select;

use crate::error::{Error, Result};
use crate::request::*;

/// The headers the data API reads.
#[derive(Debug, Default, Clone, Copy)]
pub struct Headers<'a> {
    pub prefer: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub range: Option<&'a str>,
    /// The body's media type: JSON (also when absent), `text/csv` or a form.
    pub content_type: Option<&'a str>,
}

/// Parses one request to `/rest/v1/{table}`.
pub fn parse_request(method: &str, table: &str, query: &str, headers: Headers, body: &[u8]) -> Result<ApiRequest> {
    let action = match method {
        "GET" => Action::Read { head: false },
        "HEAD" => Action::Read { head: true },
        "POST" => Action::Insert,
        "PATCH" => Action::Update,
        "DELETE" => Action::Delete,
        "PUT" => Action::Put,
        other => return Err(Error::new(405, "PGRST117", format!("Unsupported HTTP method: {other}"))),
    };
    let mut req = ApiRequest {
        action,
        table: table.to_string(),
        select: vec![SelectItem::Star],
        filters: Vec::new(),
        logic: Vec::new(),
        order: Vec::new(),
        ranges: Vec::new(),
        on_conflict: None,
        columns: None,
        prefer: parse_prefer(headers.prefer)?,
        accept: parse_accept(headers.accept)?,
        strip_nulls: headers.accept.is_some_and(|a| a.replace(' ', "").contains("nulls=stripped")),
        range_header: match headers.range {
            Some(r) if matches!(action, Action::Read { .. }) => parse_range_header(r)?,
            _ => None,
        },
        body: None,
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        apply_param(&mut req, &key, &value)?;
    }
    if matches!(action, Action::Insert | Action::Update | Action::Put) {
        let body = match body_kind(headers.content_type) {
            BodyKind::Csv => csv_rows(body, action == Action::Update)?,
            BodyKind::Form if !looks_like_json(body) => form_object(body),
            _ => std::borrow::Cow::Borrowed(body),
        };
        req.body = Some(parse_body(&body, action)?);
    }
    Ok(req)
}

enum BodyKind {
    Json,
    Csv,
    Form,
}

fn body_kind(content_type: Option<&str>) -> BodyKind {
    let essence = content_type.and_then(|c| c.split(';').next()).map(str::trim).unwrap_or_default();
    if essence.eq_ignore_ascii_case("text/csv") {
        BodyKind::Csv
    } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        BodyKind::Form
    } else {
        BodyKind::Json
    }
}

/// A form body that is really JSON: `curl -d '{...}'` sends JSON as a form unless told
/// otherwise, and no column is named `{"a":1}`, so such a body is read as the JSON it is.
fn looks_like_json(body: &[u8]) -> bool {
    matches!(body.iter().find(|b| !b.is_ascii_whitespace()), Some(b'{' | b'['))
        && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// A form body as one JSON object of strings, as PostgREST reads it.
fn form_object(body: &[u8]) -> std::borrow::Cow<'static, [u8]> {
    let obj: serde_json::Map<String, serde_json::Value> =
        form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned()))).collect();
    std::borrow::Cow::Owned(serde_json::to_vec(&obj).unwrap_or_default())
}

/// CSV with a header row as a JSON array of objects of strings, as PostgREST reads it: the
/// unquoted or quoted text `NULL` is null, an empty field the empty string. For a `PATCH`
/// (`single`), the one row's object.
fn csv_rows(body: &[u8], single: bool) -> Result<std::borrow::Cow<'static, [u8]>> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(body);
    let bad = |e: csv::Error| Error::bad_body(format!("Error parsing CSV: {e}"));
    let headers = reader.headers().map_err(bad)?.clone();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.kind() {
            csv::ErrorKind::UnequalLengths { .. } => Error::bad_body("All lines must have same number of fields"),
            _ => bad(e),
        })?;
        let row: serde_json::Map<String, serde_json::Value> = headers
            .iter()
            .zip(record.iter())
            .map(|(k, v)| (k.to_string(), if v == "NULL" { serde_json::Value::Null } else { serde_json::Value::String(v.to_string()) }))
            .collect();
        rows.push(serde_json::Value::Object(row));
    }
    if single {
        let [row] = rows.as_slice() else { return Err(Error::bad_body("A CSV body for PATCH must have exactly one row")) };
        return Ok(std::borrow::Cow::Owned(serde_json::to_vec(row).unwrap_or_default()));
    }
    Ok(std::borrow::Cow::Owned(serde_json::to_vec(&rows).unwrap_or_default()))
}

fn parse_body(body: &[u8], action: Action) -> Result<serde_json::Value> {
    let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::bad_body("Empty or invalid json"));
    } else {
        serde_json::from_slice(body).map_err(|e| Error::bad_body("Empty or invalid json").details(e.to_string()))?
    };
    match (&value, action) {
        (serde_json::Value::Object(_), _) => Ok(value),
        (serde_json::Value::Array(items), Action::Insert) if items.iter().all(|i| i.is_object()) => Ok(value),
        (serde_json::Value::Array(_), Action::Insert) => Err(Error::bad_body("All object keys must match")),
        // PostgREST takes the first object of an array for PUT.
        (serde_json::Value::Array(items), Action::Put) => match items.first() {
            Some(first @ serde_json::Value::Object(_)) => Ok(first.clone()),
            _ => Err(Error::bad_body("Empty or invalid json").details("PUT needs one JSON object")),
        },
        _ => Err(Error::bad_body("Empty or invalid json").details("expected a JSON object")),
    }
}

fn parse_int(key: &str, value: &str) -> Result<i64> {
    value.parse::<i64>().map_err(|_| Error::parse(key, value, format!("unexpected \"{value}\" expecting an integer")))
}

fn apply_param(req: &mut ApiRequest, key: &str, value: &str) -> Result<()> {
    match key {
        "select" => {
            req.select = parse_select(value)?;
            return Ok(());
        }
        "columns" => {
            let cols = value.split(',').map(|c| c.trim().trim_matches('"').to_string()).filter(|c| !c.is_empty()).collect();
            req.columns = Some(cols);
            return Ok(());
        }
        "on_conflict" => {
            req.on_conflict = Some(value.split(',').map(|c| c.trim().trim_matches('"').to_string()).collect());
            return Ok(());
        }
        "apikey" => return Ok(()),
        _ => {}
    }
    let parts: Vec<&str> = key.split('.').collect();
    let (path, last, negated_logic) = match parts.as_slice() {
        [prefix @ .., "not", l @ ("or" | "and")] => (prefix, *l, true),
        [prefix @ .., l] => (prefix, *l, false),
        [] => return Ok(()),
    };
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    match last {
        "or" | "and" => req.logic.push((path, parse_logic(last == "or", negated_logic, value)?)),
        "order" => req.order.push((path, parse_order(value)?)),
        "limit" | "offset" => {
            let n = parse_int(last, value)?;
            let idx = match req.ranges.iter().position(|(p, _)| *p == path) {
                Some(i) => i,
                None => {
                    req.ranges.push((path, Range::default()));
                    req.ranges.len() - 1
                }
            };
            let r = &mut req.ranges[idx].1;
            if last == "limit" {
                r.limit = Some(n);
            } else {
                r.offset = Some(n);
            }
        }
        _ => {
            // A filter: the key is `embed.path.field`; the field itself may carry `->` steps.
            let field = parse_field(last)?;
            req.filters.push((path, parse_filter(field, value)?));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_supabase_js_url() {
        let q = "select=id%2Ctitle%2Cowner%3Alists%21list_id%28name%29&done=eq.false&order=created_at.desc&limit=10&or=%28status.eq.open%2Ctitle.ilike.*a+b*%29&comments.order=id.asc&comments.limit=2";
        let r = parse_request("GET", "todos", q, Headers::default(), b"").unwrap();
        assert_eq!(r.select.len(), 3);
        assert_eq!(r.filters.len(), 1);
        assert!(r.order[0].1[0].desc);
        assert_eq!(r.ranges[0].1.limit, Some(10));
        assert_eq!(r.ranges[1].0, vec!["comments".to_string()]);
        let Logic::Or { items, .. } = &r.logic[0].1 else { panic!() };
        let Logic::Filter(f) = &items[1] else { panic!() };
        assert_eq!(f.op, Operation::Like { insensitive: true, quant: None, pattern: "%a b%".into() });
    }

    #[test]
    fn bodies() {
        assert_eq!(parse_request("POST", "t", "", Headers::default(), b"{x").unwrap_err().code, "PGRST102");
        assert_eq!(parse_request("PATCH", "t", "", Headers::default(), b"[]").unwrap_err().code, "PGRST102");
        assert!(parse_request("POST", "t", "", Headers::default(), b"[{\"a\":1}]").is_ok());
        assert_eq!(parse_request("GET", "t", "limit=x", Headers::default(), b"").unwrap_err().code, "PGRST100");
    }
}
