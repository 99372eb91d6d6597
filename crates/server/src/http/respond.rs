//! Response shaping: status, Content-Range, media types and Preference-Applied, as PostgREST.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use basalt_query::plan::{MutatePlan, OutField, ReadPlan};
use basalt_query::request::{Action, ApiRequest, MediaType, ReturnPref};
use basalt_query::Error as RestError;

use crate::error::{ApiError, ApiResult};
use crate::store::{ReadResult, WriteResult};

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
    let mut res = e.into_response();
    if let Some(v) = www.and_then(|v| HeaderValue::from_str(&v).ok()) {
        res.headers_mut().insert("www-authenticate", v);
    }
    if let Some(v) = proxy_status {
        res.headers_mut().insert("proxy-status", v);
    }
    res
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

pub fn read(req: &ApiRequest, plan: &ReadPlan, r: ReadResult, head: bool) -> ApiResult<Response> {
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
    build(status, Some(ct), body, &[("content-range", range), ("range-unit", "items".into())])
}

pub fn write(req: &ApiRequest, plan: &MutatePlan, r: WriteResult) -> ApiResult<Response> {
    let representation = req.prefer.return_ == Some(ReturnPref::Representation);
    let count = if req.prefer.count.is_some() { r.affected.to_string() } else { "*".into() };
    let (status, range) = match req.action {
        Action::Insert => {
            let upsert_without_insert = req.prefer.resolution.is_some() && r.inserted == 0 && r.affected > 0;
            (if upsert_without_insert { 200 } else { 201 }, format!("*/{count}"))
        }
        Action::Update => {
            let range = if r.affected > 0 { format!("0-{}/{count}", r.affected - 1) } else { format!("*/{count}") };
            (if representation { 200 } else { 204 }, range)
        }
        _ => (if representation { 200 } else { 204 }, format!("*/{count}")),
    };
    let mut headers = vec![("content-range", range)];
    if !req.prefer.applied.is_empty() {
        headers.push(("preference-applied", req.prefer.applied.join(", ")));
    }
    match (representation, r.body) {
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
            build(status, Some(ct), body, &headers)
        }
        _ => build(status, None, String::new(), &headers),
    }
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
            OutField::Column { key, .. } | OutField::Embed { key, .. } | OutField::Count { key, .. } => vec![key.clone()],
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
