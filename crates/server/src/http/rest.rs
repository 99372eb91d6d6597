//! The data API (at `/rest/v1`, or at the root in PostgREST's layout): parse, plan, render,
//! execute, respond.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use basalt_query::parse::{parse_request, Headers};
use basalt_query::plan::{plan_mutate, plan_read, Access};
use basalt_query::request::{Action, CountPref, MediaType, TxPref};
use basalt_query::Error as RestError;
use basalt_schema::Catalog;

use super::client_ip::ClientIp;
use super::identity::{identify, Identity};
use super::timing::Timing;
use super::{openapi, respond};
use crate::app::AppState;
use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::store::{DbContext, Origin, ReadResult, RequestInfo};

/// The data API's routes under `mount`. They are added flat rather than nested: a nested router
/// rebuilds every request's URI without its prefix.
pub fn routes(router: Router<AppState>, mount: &str) -> Router<AppState> {
    router
        .route(&format!("{mount}/rpc/{{function}}"), get(rpc).head(rpc).post(rpc).put(rpc_method).patch(rpc_method).delete(rpc_method))
        .route(&format!("{mount}/{{table}}"), get(handle).head(handle).post(handle).patch(handle).delete(handle).put(handle))
}

/// The root of the data API: the OpenAPI document (and 405 for writes, as PostgREST).
pub fn root() -> axum::routing::MethodRouter<AppState> {
    get(openapi::document).head(openapi::document).post(root_method).patch(root_method).delete(root_method).put(root_method)
}

async fn root_method(method: Method) -> Response {
    respond::error(RestError::new(405, "PGRST117", format!("Unsupported HTTP method: {method}")).into())
}

async fn rpc_method(method: Method) -> Response {
    respond::error(RestError::new(405, "PGRST101", format!("Cannot use the {method} method on RPC")).into())
}

/// Handlers take the request whole and borrow its method, query and headers: the separate
/// extractors would copy each of them (the header map with every header) per request.
async fn handle(State(app): State<AppState>, ClientIp(ip): ClientIp, Path(table): Path<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut timing = Timing::start(app.config.rest.server_timing);
    let query = parts.uri.query().unwrap_or_default();
    let result = run(&app, &parts.method, &table, query, &parts.headers, body, ip, &mut timing).await;
    finish(result, timing)
}

async fn rpc(State(app): State<AppState>, ClientIp(ip): ClientIp, Path(function): Path<String>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut timing = Timing::start(app.config.rest.server_timing);
    let query = parts.uri.query().unwrap_or_default();
    let result = call(&app, &parts.method, &function, query, &parts.headers, body, ip, &mut timing).await;
    finish(result, timing)
}

/// Errors in PostgREST's shape; `Server-Timing` on successes, as PostgREST sends it.
fn finish(result: ApiResult<Response>, timing: Timing) -> Response {
    match result {
        Ok(mut r) => {
            timing.apply(&mut r);
            r
        }
        Err(e) => respond::error(e),
    }
}

/// The schema a request addresses (`Accept-Profile` for reads, `Content-Profile` for writes),
/// its catalog, and whether responses name it (`Content-Profile`).
pub struct Profile {
    pub name: String,
    pub catalog: Arc<Catalog>,
    /// Echo `Content-Profile`: a profile was asked for, or several schemas are exposed.
    pub echo: bool,
}

pub fn profile(app: &AppState, method: &Method, headers: &HeaderMap) -> ApiResult<Profile> {
    let rest = &app.config.rest;
    let header = if matches!(*method, Method::GET | Method::HEAD) { "accept-profile" } else { "content-profile" };
    let asked = headers.get(header).and_then(|v| v.to_str().ok()).map(str::trim).filter(|p| !p.is_empty());
    let name = asked.unwrap_or_else(|| rest.default_schema());
    let not_exposed = || {
        RestError::new(406, "PGRST106", format!("Invalid schema: {name}"))
            .hint(format!("Only the following schemas are exposed: {}", rest.schemas.join(", ")))
    };
    if !rest.schemas.iter().any(|s| s == name) {
        return Err(not_exposed().into());
    }
    let catalog = app.catalog.schema(name).ok_or_else(not_exposed)?;
    Ok(Profile { name: name.to_string(), catalog, echo: asked.is_some() || rest.schemas.len() > 1 })
}

/// What the request's transaction is told: role, claims, request, search path, and how it ends.
#[allow(clippy::too_many_arguments)]
fn db_context(
    app: &AppState,
    ident: &Identity,
    profile: &Profile,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    rollback: bool,
    peer: IpAddr,
) -> ApiResult<DbContext> {
    let claims = ident.claims_json.clone();
    let rest = &app.config.rest;
    let pg = app.store.native_rls();
    Ok(DbContext {
        db_role: ident.db_role.clone(),
        claims,
        uid: ident.claims.sub.clone(),
        // Only PostgreSQL reads the request in SQL; SQLite requests skip building it.
        request: if pg { RequestInfo::new(method.as_str(), path, headers) } else { RequestInfo::default() },
        schema: (pg && profile.name != rest.default_schema()).then(|| profile.name.clone()),
        rollback,
        origin: if matches!(*method, Method::GET | Method::HEAD) { Origin::default() } else { origin(headers, peer) },
    })
}

/// Where a write comes from. The request id is the client's (or its proxy's) `x-request-id`
/// when it sent a short printable one, else a new UUID; responses echo it.
fn origin(headers: &HeaderMap, peer: IpAddr) -> Origin {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request_id = text("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Origin {
        ip: Some(peer.to_string()),
        user_agent: text("user-agent").map(|u| u.chars().take(512).collect()),
        request_id: Some(request_id),
    }
}

/// Echoes the request id a write was recorded under.
fn echo_request_id(res: &mut Response, ctx: &DbContext) -> ApiResult<()> {
    if let Some(id) = &ctx.origin.request_id {
        respond::set_header(res, "x-request-id", id)?;
    }
    Ok(())
}

/// How the transaction ends: `db-tx-end`, overridden by `Prefer: tx=` where allowed (and then
/// echoed in `Preference-Applied`).
fn tx_end(app: &AppState, asked: Option<TxPref>, applied: &mut Vec<String>) -> bool {
    let end = app.config.rest.tx_end;
    match asked {
        Some(t) if end.overridable() => {
            applied.push(if t == TxPref::Rollback { "tx=rollback" } else { "tx=commit" }.to_string());
            t == TxPref::Rollback
        }
        _ => end.rolls_back(),
    }
}

/// `/rpc/{function}`: arguments from the JSON body (POST) or the query string (GET).
#[allow(clippy::too_many_arguments)]
async fn call(
    app: &AppState,
    method: &Method,
    function: &str,
    query: &str,
    headers: &HeaderMap,
    body: Body,
    peer: IpAddr,
    timing: &mut Timing,
) -> ApiResult<Response> {
    let ident = identify(app, headers, query).await?;
    timing.mark("jwt");
    let profile = profile(app, method, headers)?;
    let bytes = to_bytes(body, app.config.max_body_bytes).await.map_err(|_| RestError::new(413, "PGRST413", "Payload Too Large"))?;
    let current = profile.catalog.clone();
    let args: serde_json::Value = if *method == Method::POST {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            serde_json::from_slice(&bytes).map_err(|e| RestError::bad_body("Empty or invalid json").details(e.to_string()))?
        }
    } else {
        // GET: arguments are the query keys the function takes; the rest shape the result.
        let takes = |k: &str| !k.is_empty() && current.functions.iter().any(|f| f.name == function && f.args.iter().any(|a| a.name == k));
        form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| takes(k))
            .map(|(k, v)| (k.into_owned(), serde_json::Value::from(v.into_owned())))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let mut prefer = basalt_query::parse::parse_prefer(headers.get("prefer").and_then(|v| v.to_str().ok()))?;
    timing.mark("parse");
    let plan = basalt_query::plan::plan_rpc(&current, function, &args)?;
    let rollback = tx_end(app, prefer.tx, &mut prefer.applied);
    let ctx = db_context(app, &ident, &profile, method, &format!("/rpc/{function}"), headers, rollback, peer)?;
    if let Some(result_catalog) = basalt_query::plan::result_catalog(&current, &plan.function) {
        return call_set(app, method, function, query, headers, &ident, plan, &result_catalog, ctx, &profile, timing).await;
    }
    let sql = app.store.dialect().rpc(&plan).ok_or_else(|| {
        RestError::new(404, "PGRST202", format!("Could not find the function {}.{function} in the schema cache", profile.name))
    })?;
    timing.mark("plan");
    let read_only = *method != Method::POST;
    let result = app.store.call(&sql, read_only, &ctx).await.map_err(|e| match e {
        ApiError::Rest(mut r) if r.code == "25006" => {
            r.status = 405;
            ApiError::Rest(r)
        }
        other => other,
    });
    let result = map_privileges(result, &ident)?;
    timing.mark("transaction");
    let void = plan.function.returns == basalt_schema::FunctionReturn::Void;
    let mut res = if void {
        axum::http::StatusCode::NO_CONTENT.into_response()
    } else {
        let mut res = Response::new(Body::from(if *method == Method::HEAD { String::new() } else { result.body }));
        res.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("application/json; charset=utf-8"));
        res
    };
    if let Some(applied) = respond::applied_header(&prefer.applied) {
        respond::set_header(&mut res, "preference-applied", &applied)?;
    }
    if profile.echo && !void {
        respond::set_header(&mut res, "content-profile", &profile.name)?;
    }
    respond::apply_settings(&mut res, &result.response)?;
    echo_request_id(&mut res, &ctx)?;
    timing.mark("response");
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
    ident: &Identity,
    call: basalt_query::plan::RpcPlan,
    catalog: &Catalog,
    ctx: DbContext,
    profile: &Profile,
    timing: &mut Timing,
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
        Headers { prefer: h("prefer"), accept: h("accept"), range: h("range"), content_type: None },
        b"",
    )?;
    if req.select.iter().any(basalt_query::request::SelectItem::has_aggregate) {
        return Err(RestError::new(400, "PGRST127", "Feature not implemented")
            .details("aggregate functions over a function's results are not supported yet")
            .into());
    }
    let access = Access { role: ident.role.name(), claims: &ident.claims_value, enforce: !app.store.native_rls() };
    let mut plan = plan_read(catalog, &req, access)?;
    plan.call = Some(Box::new(call));
    cap_rows(app, &mut plan);
    // Planned and estimated counts are for tables; a function's rows are counted exactly.
    let count = req.prefer.count.map(|_| CountPref::Exact);
    let sql = app.store.dialect().read(&plan, count);
    timing.mark("plan");
    let read_only = *method != Method::POST;
    // Function calls always run as the caller (read-only for GET).
    let result = map_privileges(app.store.read_as(sql, &ctx, read_only).await, ident)?;
    timing.mark("transaction");
    let mut applied = req.prefer.applied.clone();
    tx_end(app, req.prefer.tx, &mut applied);
    let res = respond::read(&req, &plan, result, head, &applied, profile.echo.then_some(profile.name.as_str()))?;
    timing.mark("response");
    Ok(res)
}

/// `db-max-rows`: a read returns at most that many rows, whatever `limit` asks for.
fn cap_rows(app: &AppState, plan: &mut basalt_query::plan::ReadPlan) {
    if let Some(max) = app.config.max_rows {
        plan.limit = Some(plan.limit.map_or(max, |l| l.min(max)));
    }
}

/// PostgreSQL answers 401 to anonymous callers and 403 to others for missing privileges (42501).
fn map_privileges<T>(r: ApiResult<T>, ident: &Identity) -> ApiResult<T> {
    r.map_err(|e| match e {
        ApiError::Rest(mut r) if r.code == "42501" => {
            r.status = if ident.anonymous || ident.role == Role::Anon { 401 } else { 403 };
            ApiError::Rest(r)
        }
        other => other,
    })
}

#[allow(clippy::too_many_arguments)]
async fn run(
    app: &AppState,
    method: &Method,
    table: &str,
    query: &str,
    headers: &HeaderMap,
    body: Body,
    peer: IpAddr,
    timing: &mut Timing,
) -> ApiResult<Response> {
    let ident = identify(app, headers, query).await?;
    timing.mark("jwt");
    let result = run_as(app, method, table, query, headers, body, &ident, peer, timing).await;
    map_privileges(result, &ident)
}

#[allow(clippy::too_many_arguments)]
async fn run_as(
    app: &AppState,
    method: &Method,
    table: &str,
    query: &str,
    headers: &HeaderMap,
    body: Body,
    ident: &Identity,
    peer: IpAddr,
    timing: &mut Timing,
) -> ApiResult<Response> {
    let profile = profile(app, method, headers)?;
    let access = Access { role: ident.role.name(), claims: &ident.claims_value, enforce: !app.store.native_rls() };
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
    let mut req = parse_request(
        method.as_str(),
        table,
        query,
        Headers { prefer: h("prefer"), accept: h("accept"), range: h("range"), content_type: h("content-type") },
        &bytes,
    )?;
    timing.mark("parse");
    if !app.config.rest.aggregates_enabled && req.select.iter().any(basalt_query::request::SelectItem::has_aggregate) {
        return Err(RestError::new(400, "PGRST123", "Use of aggregate functions is not allowed").into());
    }
    // max-affected bounds PATCH and DELETE only, so only they say it was applied.
    if !matches!(req.action, Action::Update | Action::Delete) && req.prefer.max_affected.take().is_some() {
        req.prefer.applied.retain(|a| !a.starts_with("max-affected="));
    }
    // A PUT is always an upsert on the primary key: `resolution` does not apply to it.
    if req.action == Action::Put && req.prefer.resolution.take().is_some() {
        req.prefer.applied.retain(|a| !a.starts_with("resolution="));
    }
    // A PUT is always an upsert on the primary key: `resolution` does not apply to it.
    if req.action == Action::Put && req.prefer.resolution.take().is_some() {
        req.prefer.applied.retain(|a| !a.starts_with("resolution="));
    }
    let rollback = tx_end(app, req.prefer.tx, &mut req.prefer.applied);
    let ctx = db_context(app, ident, &profile, method, &format!("/{table}"), headers, rollback, peer)?;
    let catalog = profile.catalog.as_ref();
    let echo = profile.echo.then_some(profile.name.as_str());
    match req.action {
        Action::Read { head } => {
            let mut plan = plan_read(catalog, &req, access)?;
            cap_rows(app, &mut plan);
            let sql = app.store.dialect().read(&plan, req.prefer.count);
            timing.mark("plan");
            let mut result = app.store.read(sql, &ctx).await?;
            timing.mark("transaction");
            result.total = total(req.prefer.count, &result, app.config.max_rows);
            let res = respond::read(&req, &plan, result, head, &req.prefer.applied, echo)?;
            timing.mark("response");
            Ok(res)
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
            // PostgREST bounds what PATCH and DELETE touch, not inserts.
            let bound = crate::store::RowBound { single: req.accept == MediaType::SingleObject, max_affected: req.prefer.max_affected };
            let sql = app.store.dialect().mutate(&plan);
            timing.mark("plan");
            let result = app.store.write(sql, bound, &ctx).await?;
            timing.mark("transaction");
            let mut res = respond::write(&req, &plan, result, echo)?;
            echo_request_id(&mut res, &ctx)?;
            timing.mark("response");
            Ok(res)
        }
    }
}

/// The total a read reports: exact; the planner's estimate (`planned`, where the backend has
/// one); or, for `estimated`, the exact count unless it passes `max_rows`, then the larger of
/// the two, as PostgREST.
fn total(pref: Option<CountPref>, r: &ReadResult, max_rows: Option<i64>) -> Option<i64> {
    match pref? {
        CountPref::Exact => r.total,
        CountPref::Planned => r.planned.or(r.total),
        CountPref::Estimated => match (r.total, r.planned) {
            (Some(exact), Some(planned)) if max_rows.is_none_or(|m| exact > m) => Some(exact.max(planned)),
            (exact, planned) => exact.or(planned),
        },
    }
}
