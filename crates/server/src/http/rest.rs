//! The data API at `/rest/v1`: parse, plan, render, execute, respond.

use axum::body::{to_bytes, Body};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use basalt_query::parse::{parse_request, Headers};
use basalt_query::plan::{plan_mutate, plan_read, Access};
use basalt_query::request::{Action, MediaType};
use basalt_query::Error as RestError;

use super::identity::identify;
use super::{openapi, respond};
use crate::app::AppState;
use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::store::{DbContext, RequestInfo};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(openapi::document))
        .route("/rpc/{function}", get(rpc).head(rpc).post(rpc))
        .route("/{table}", get(handle).head(handle).post(handle).patch(handle).delete(handle).put(unsupported))
}

async fn unsupported() -> ApiError {
    RestError::new(405, "PGRST117", "Unsupported HTTP method: PUT").into()
}

async fn handle(
    State(app): State<AppState>,
    method: Method,
    Path(table): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match run(&app, &method, &table, query.as_deref().unwrap_or_default(), &headers, body).await {
        Ok(r) => r,
        Err(e) => respond::error(e),
    }
}

async fn rpc(
    State(app): State<AppState>,
    method: Method,
    Path(function): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match call(&app, &method, &function, query.as_deref().unwrap_or_default(), &headers, body).await {
        Ok(r) => r,
        Err(e) => respond::error(e),
    }
}

/// `/rpc/{function}`: arguments from the JSON body (POST) or the query string (GET).
async fn call(app: &AppState, method: &Method, function: &str, query: &str, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let ident = identify(app, headers, query)?;
    let bytes = to_bytes(body, app.config.max_body_bytes).await.map_err(|_| RestError::new(413, "PGRST413", "Payload Too Large"))?;
    let args: serde_json::Map<String, serde_json::Value> = if *method == Method::POST {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::Map::new()
        } else {
            serde_json::from_slice(&bytes).map_err(|e| RestError::bad_body("Empty or invalid json").details(e.to_string()))?
        }
    } else {
        // GET: arguments are the query keys the function takes; the rest shape the result.
        let current = app.catalog.get();
        let takes = |k: &str| current.functions.iter().any(|f| f.name == function && f.args.iter().any(|a| a.name == k));
        form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| takes(k))
            .map(|(k, v)| (k.into_owned(), serde_json::Value::from(v.into_owned())))
            .collect()
    };
    let current = app.catalog.get();
    let plan = basalt_query::plan::plan_rpc(&current, function, &args)?;
    if let Some(result_catalog) = basalt_query::plan::result_catalog(&current, &plan.function) {
        return call_set(app, method, function, query, headers, &ident, plan, &result_catalog).await;
    }
    let sql = app
        .store
        .dialect()
        .rpc(&plan)
        .ok_or_else(|| RestError::new(404, "PGRST202", format!("Could not find the function public.{function} in the schema cache")))?;
    let claims = serde_json::to_value(&ident.claims).map_err(ApiError::internal)?;
    let ctx = DbContext {
        role: ident.role,
        claims: claims.to_string(),
        uid: ident.claims.sub.clone(),
        request: request_info(app, method, &format!("/rpc/{function}"), headers),
    };
    let read_only = *method != Method::POST;
    let result = app.store.call(&sql, read_only, &ctx).await.map_err(|e| match e {
        ApiError::Rest(mut r) if r.code == "25006" => {
            r.status = 405;
            ApiError::Rest(r)
        }
        other => other,
    })?;
    if plan.function.returns == basalt_schema::FunctionReturn::Void {
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response());
    }
    let mut res = Response::new(Body::from(if *method == Method::HEAD { String::new() } else { result.body }));
    res.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("application/json; charset=utf-8"));
    Ok(res)
}

/// A set-returning function read like a table: `select`, filters, `order`, ranges and counts.
#[allow(clippy::too_many_arguments)]
async fn call_set(
    app: &AppState,
    method: &Method,
    function: &str,
    query: &str,
    headers: &HeaderMap,
    ident: &super::identity::Identity,
    call: basalt_query::plan::RpcPlan,
    catalog: &basalt_schema::Catalog,
) -> ApiResult<Response> {
    let read_query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form_urlencoded::parse(query.as_bytes()).filter(|(k, _)| !call.function.args.iter().any(|a| a.name == *k)))
        .finish();
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let head = *method == Method::HEAD;
    let req = parse_request(
        if head { "HEAD" } else { "GET" },
        function,
        &read_query,
        Headers { prefer: h("prefer"), accept: h("accept"), range: h("range") },
        b"",
    )?;
    let claims = serde_json::to_value(&ident.claims).map_err(ApiError::internal)?;
    let access = Access { role: ident.role.name(), claims: &claims, enforce: !app.store.native_rls() };
    let mut plan = plan_read(catalog, &req, access)?;
    plan.call = Some(Box::new(call));
    let sql = app.store.dialect().read(&plan, req.prefer.count.is_some());
    let ctx = DbContext {
        role: ident.role,
        claims: claims.to_string(),
        uid: ident.claims.sub.clone(),
        request: request_info(app, method, &format!("/rpc/{function}"), headers),
    };
    let read_only = *method != Method::POST;
    // Function calls always run in a transaction as the caller (read-only for GET).
    let result = app.store.read_as(sql, &ctx, read_only).await?;
    respond::read(&req, &plan, result, head)
}

/// The request for SQL to read (`request.headers`, ...): only PostgreSQL has a use for it, so SQLite
/// requests skip building it.
fn request_info(app: &AppState, method: &Method, path: &str, headers: &HeaderMap) -> RequestInfo {
    if app.store.native_rls() {
        RequestInfo::new(method.as_str(), path, headers)
    } else {
        RequestInfo::default()
    }
}

async fn run(app: &AppState, method: &Method, table: &str, query: &str, headers: &HeaderMap, body: Body) -> ApiResult<Response> {
    let ident = identify(app, headers, query)?;
    let anon = ident.role == Role::Anon;
    // PostgreSQL answers 401 to anon and 403 to others for missing privileges (42501).
    run_as(app, method, table, query, headers, body, ident).await.map_err(|e| match e {
        ApiError::Rest(mut r) if r.code == "42501" => {
            r.status = if anon { 401 } else { 403 };
            ApiError::Rest(r)
        }
        other => other,
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_as(
    app: &AppState,
    method: &Method,
    table: &str,
    query: &str,
    headers: &HeaderMap,
    body: Body,
    ident: super::identity::Identity,
) -> ApiResult<Response> {
    let profile_header = if matches!(*method, Method::GET | Method::HEAD) { "accept-profile" } else { "content-profile" };
    if let Some(profile) = headers.get(profile_header).and_then(|v| v.to_str().ok()).filter(|p| *p != "public") {
        return Err(RestError::new(406, "PGRST106", format!("Invalid schema: {profile}"))
            .hint("Only the following schemas are exposed: public")
            .into());
    }
    let claims = serde_json::to_value(&ident.claims).map_err(ApiError::internal)?;
    let ctx = DbContext {
        role: ident.role,
        claims: claims.to_string(),
        uid: ident.claims.sub.clone(),
        request: request_info(app, method, &format!("/{table}"), headers),
    };
    let access = Access { role: ident.role.name(), claims: &claims, enforce: !app.store.native_rls() };
    let too_large = || {
        RestError::new(413, "PGRST413", "Payload Too Large")
            .details(format!("The request body is larger than the limit of {} bytes", app.config.max_body_bytes))
    };
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > app.config.max_body_bytes) {
        return Err(too_large().into());
    }
    let bytes = to_bytes(body, app.config.max_body_bytes).await.map_err(|_| too_large())?;
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let req =
        parse_request(method.as_str(), table, query, Headers { prefer: h("prefer"), accept: h("accept"), range: h("range") }, &bytes)?;
    let current = app.catalog.get();
    let catalog = current.as_ref();
    match req.action {
        Action::Read { head } => {
            let mut plan = plan_read(catalog, &req, access)?;
            if let Some(max) = app.config.max_rows {
                plan.limit = Some(plan.limit.map_or(max, |l| l.min(max)));
            }
            let sql = app.store.dialect().read(&plan, req.prefer.count.is_some());
            let result = app.store.read(sql, &ctx).await?;
            respond::read(&req, &plan, result, head)
        }
        _ => {
            let plan = plan_mutate(catalog, &req, access)?;
            if matches!(req.action, Action::Update | Action::Delete)
                && req.filters.is_empty()
                && req.logic.is_empty()
                && ident.role != Role::ServiceRole
            {
                return Err(RestError::new(
                    400,
                    "21000",
                    format!("{} requires a WHERE clause", if req.action == Action::Update { "UPDATE" } else { "DELETE" }),
                )
                .hint("Add a filter; only the service_role key may change every row at once.")
                .into());
            }
            let single = req.accept == MediaType::SingleObject;
            let sql = app.store.dialect().mutate(&plan);
            let result = app.store.write(sql, single, &ctx).await?;
            respond::write(&req, &plan, result)
        }
    }
}
