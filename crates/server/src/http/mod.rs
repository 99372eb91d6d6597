//! HTTP: one router per API, merged here. axum stays in this folder.

mod audit;
mod auth;
pub mod client_ip;
mod identity;

pub use identity::IdentityCache;
mod openapi;
mod respond;
mod rest;
mod timing;

use axum::http::{header, HeaderName, Method};
use axum::routing::get;
use axum::Router;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::app::AppState;

pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PATCH, Method::PUT, Method::DELETE, Method::OPTIONS])
        .allow_headers(AllowHeaders::mirror_request())
        .allow_credentials(true)
        .expose_headers([
            header::CONTENT_RANGE,
            HeaderName::from_static("content-profile"),
            HeaderName::from_static("preference-applied"),
            header::LOCATION,
            HeaderName::from_static("range-unit"),
            HeaderName::from_static("server-timing"),
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(std::time::Duration::from_secs(86400));
    // The data API at its mount: `/rest/v1` (Supabase) or the root (PostgREST).
    let mount = state.config.rest.mount.clone();
    let router = Router::new().route("/health", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }));
    let router = if mount.is_empty() {
        router.route("/", rest::root())
    } else {
        router.route(&format!("{mount}/"), rest::root()).route(&mount, rest::root())
    };
    let router = rest::routes(router, &mount);
    router.nest("/auth/v1", auth::router()).nest("/audit/v1", audit::router()).layer(cors).with_state(state)
}
