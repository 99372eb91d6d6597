//! Response shaping: status, Content-Range, media types and Preference-Applied, as PostgREST.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use basalt_query::plan::{MutatePlan, OutField, ReadPlan};
use basalt_query::request::{Action, ApiRequest, MediaType, ReturnPref};
use basalt_query::Error as RestError;

use crate::error::{ApiError, ApiResult};
use crate::store::{ReadResult, ResponseSettings, WriteResult};

const JSON: &str = "application/json; charset=utf-8";

pub fn error(e: ApiError) -> Response {
    let www = match &e {
        ApiError::Rest(r) if r.code == "PGRST301" || r.code == "PGRST303" => {
            Some(format!("Bearer error=\"invalid_token\", error_description=\"{}\"", r.message.replace('"', "'")))
        }
        ApiError::Rest(r) if r.code == "42501" && r.status == 401 => Some("Bearer".to_string()),
        _ => None,
    };
    let proxy_status = match &e {
        ApiError::Rest(r) if r.code.starts_with("PGRST") => HeaderValue::from_str(&format!("PostgREST; error={}", r.code)).ok(),
        _ => None,
    };
    let extra = match &e {
        ApiError::Rest(r) => r.headers.clone().map(|h| *h).unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut res = e.into_response();
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (axum::http::HeaderName::try_from(k.as_str()), HeaderValue::from_str(&v)) {
            res.headers_mut().insert(k, v);
        }
    }
    if let Some(v) = www.and_then(|v| HeaderValue::from_str(&v).ok()) {
        res.headers_mut().insert("www-authenticate", v);
    }
    if let Some(v) = proxy_status {
        res.headers_mut().insert("proxy-status", v);
    }
    res
}

/// Sets one header (a value that is not valid header text is an internal error).
pub fn set_header(res: &mut Response, name: &'static str, value: &str) -> ApiResult<()> {
    res.headers_mut().insert(name, HeaderValue::from_str(value).map_err(ApiError::internal)?);
    Ok(())
}

/// Applies what SQL set in `response.headers` (a JSON array of one-key objects, each replacing
/// the header of that name) and `response.status`, as PostgREST does.
pub fn apply_settings(res: &mut Response, s: &ResponseSettings) -> ApiResult<()> {
    if let Some(h) = s.headers.as_deref().filter(|h| !h.trim().is_empty()) {
        let bad = || {
            RestError::new(
                500,
                "PGRST111",
                "response.headers guc must be a JSON array composed of objects with a single key and a string value",
            )
        };
        let list: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(h).map_err(|_| bad())?;
        let mut pairs = Vec::new();
        for item in &list {
            let (k, v) = match item.iter().next() {
                Some((k, serde_json::Value::String(v))) if item.len() == 1 => (k, v),
                _ => return Err(bad().into()),
            };
            let name = axum::http::HeaderName::try_from(k.as_str()).map_err(|_| bad())?;
            pairs.push((name, HeaderValue::from_str(v).map_err(|_| bad())?));
        }
        for (name, _) in &pairs {
            res.headers_mut().remove(name);
        }
        for (name, value) in pairs {
            res.headers_mut().append(name, value);
        }
    }
    if let Some(st) = s.status.as_deref().filter(|st| !st.trim().is_empty()) {
        let digits: String = st.trim().chars().take_while(char::is_ascii_digit).collect();
        let status = digits
            .parse::<u16>()
            .ok()
            .and_then(|n| StatusCode::from_u16(n).ok())
            .ok_or_else(|| RestError::new(500, "PGRST112", "response.status guc must be a valid status code"))?;
        *res.status_mut() = status;
    }
    Ok(())
}

/// `Preference-Applied` in PostgREST's order.
pub fn applied_header(applied: &[String]) -> Option<String> {
    const ORDER: [&str; 6] = ["resolution=", "missing=", "return=", "count=", "tx=", "handling="];
    let mut sorted: Vec<&String> = applied.iter().collect();
    sorted.sort_by_key(|a| ORDER.iter().position(|p| a.starts_with(p)).unwrap_or(ORDER.len()));
    (!sorted.is_empty()).then(|| sorted.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
}

fn build(status: u16, content_type: Option<&str>, body: String, headers: &[(&'static str, String)]) -> ApiResult<Response> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = StatusCode::from_u16(status).map_err(ApiError::internal)?;
    let h = res.headers_mut();
    if let Some(ct) = content_type {
        h.insert("content-type", HeaderValue::from_str(ct).map_err(ApiError::internal)?);
    }
    for (k, v) in headers {
        h.insert(*k, HeaderValue::from_str(v).map_err(ApiError::internal)?);
    }
    Ok(res)
}

/// One JSON object out of a one-element array.
fn unwrap_single(body: &str, rows: i64) -> ApiResult<String> {
    if rows != 1 {
        return Err(RestError::not_single(rows).into());
    }
    let t = body.trim();
    Ok(t.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(t).trim().to_string())
}

/// A read's response; `profile` is echoed in `Content-Profile` when given.
pub fn read(
    req: &ApiRequest,
    plan: &ReadPlan,
    r: ReadResult,
    head: bool,
    applied: &[String],
    profile: Option<&str>,
) -> ApiResult<Response> {
    let offset = plan.offset.unwrap_or(0);
    let total = r.total.map_or("*".to_string(), |t| t.to_string());
    if let Some(t) = r.total {
        if offset > t && r.rows == 0 {
            return Err(RestError::bad_range(format!("An offset of {offset} was requested, but there are only {t} rows.")).into());
        }
    }
    let range = if r.rows == 0 { format!("*/{total}") } else { format!("{offset}-{}/{total}", offset + r.rows - 1) };
    let status = match r.total {
        Some(t) if r.rows < t => 206,
        _ => 200,
    };
    let (ct, body) = match req.accept {
        MediaType::Json => (JSON, r.body),
        MediaType::SingleObject => ("application/vnd.pgrst.object+json; charset=utf-8", unwrap_single(&r.body, r.rows)?),
        MediaType::Csv => ("text/csv; charset=utf-8", to_csv(plan, &r.body)?),
    };
    let body = if head {
        String::new()
    } else if req.strip_nulls && req.accept != MediaType::Csv {
        strip_nulls(&body)?
    } else {
        body
    };
    let mut headers = vec![("content-range", range)];
    if let Some(a) = applied_header(applied) {
        headers.push(("preference-applied", a));
    }
    if let Some(p) = profile {
        headers.push(("content-profile", p.to_string()));
    }
    let mut res = build(status, Some(ct), body, &headers)?;
    apply_settings(&mut res, &r.response)?;
    Ok(res)
}

/// A write's response; `profile` is echoed in `Content-Profile` with a representation.
pub fn write(req: &ApiRequest, plan: &MutatePlan<'_>, r: WriteResult, profile: Option<&str>) -> ApiResult<Response> {
    let representation = req.prefer.return_ == Some(ReturnPref::Representation);
    let count = if req.prefer.count.is_some() { r.affected.to_string() } else { "*".into() };
    let (status, range) = match req.action {
        Action::Insert => {
            let upsert_without_insert = req.prefer.resolution.is_some() && r.inserted == 0 && r.affected > 0;
            (if upsert_without_insert { 200 } else { 201 }, format!("*/{count}"))
        }
        // PUT: 201 when the row was new, 200 when it replaced one; 204 without a representation.
        Action::Put => (
            match (representation, r.inserted) {
                (false, _) => 204,
                (true, 0) => 200,
                (true, _) => 201,
            },
            format!("*/{count}"),
        ),
        Action::Update => {
            let range = if r.affected > 0 { format!("0-{}/{count}", r.affected - 1) } else { format!("*/{count}") };
            (if representation { 200 } else { 204 }, range)
        }
        _ => (if representation { 200 } else { 204 }, format!("*/{count}")),
    };
    let mut headers = vec![("content-range", range)];
    if let Some(a) = applied_header(&req.prefer.applied) {
        headers.push(("preference-applied", a));
    }
    let response = r.response;
    if req.prefer.return_ == Some(ReturnPref::HeadersOnly) {
        if let Some(location) = r.body.as_deref().and_then(|b| location(&plan.table, b)) {
            headers.push(("location", location));
        }
    }
    let mut res = match (representation, r.body) {
        (true, Some(body)) => {
            let (ct, body) = match req.accept {
                MediaType::SingleObject => ("application/vnd.pgrst.object+json; charset=utf-8", unwrap_single(&body, r.affected)?),
                MediaType::Csv => (
                    "text/csv; charset=utf-8",
                    match &plan.returning {
                        Some(p) => to_csv(p, &body)?,
                        None => body,
                    },
                ),
                MediaType::Json => (JSON, body),
            };
            let body = if req.strip_nulls && req.accept != MediaType::Csv { strip_nulls(&body)? } else { body };
            if let Some(p) = profile {
                headers.push(("content-profile", p.to_string()));
            }
            build(status, Some(ct), body, &headers)?
        }
        _ => build(status, None, String::new(), &headers)?,
    };
    apply_settings(&mut res, &response)?;
    Ok(res)
}

/// `Location` for an insert: the first row's primary key as filters, `/t?id=eq.1`, as PostgREST
/// (`is.null` for a null key column).
fn location(table: &str, body: &str) -> Option<String> {
    let rows: serde_json::Value = serde_json::from_str(body).ok()?;
    let row = rows.as_array()?.first()?.as_object()?;
    let filters: Vec<String> = row
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::Null => "is.null".to_string(),
                serde_json::Value::String(s) => format!("eq.{}", form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()),
                other => format!("eq.{}", form_urlencoded::byte_serialize(other.to_string().as_bytes()).collect::<String>()),
            };
            format!("{}={value}", form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>())
        })
        .collect();
    Some(format!("/{}?{}", form_urlencoded::byte_serialize(table.as_bytes()).collect::<String>(), filters.join("&")))
}

/// Drops null-valued keys at every depth (`nulls=stripped`).
fn strip_nulls(json: &str) -> ApiResult<String> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|_, x| !x.is_null());
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(json).map_err(ApiError::internal)?;
    strip(&mut v);
    Ok(v.to_string())
}

/// CSV with a header row of the selected keys; objects and arrays as JSON text.
fn to_csv(plan: &ReadPlan, json: &str) -> ApiResult<String> {
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(json).map_err(ApiError::internal)?;
    let keys: Vec<String> = plan
        .fields
        .iter()
        .flat_map(|f| match f {
            OutField::Spread { plan, .. } => plan
                .fields
                .iter()
                .filter_map(|c| match c {
                    OutField::Column { key, .. } => Some(key.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>(),
            OutField::Embed { hidden: true, .. } => vec![],
            OutField::Column { key, .. } | OutField::Embed { key, .. } | OutField::Count { key, .. } | OutField::Aggregate { key, .. } => {
                vec![key.clone()]
            }
        })
        .collect();
    let mut out = keys.iter().map(|k| csv_cell(k)).collect::<Vec<_>>().join(",");
    for row in rows {
        out.push('\n');
        let cells: Vec<String> = keys
            .iter()
            .map(|k| match row.get(k) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => csv_cell(s),
                Some(other) => csv_cell(&other.to_string()),
            })
            .collect();
        out.push_str(&cells.join(","));
    }
    Ok(out)
}

fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
