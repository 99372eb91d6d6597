//! HTTP: one router per API, merged here. axum stays in this folder.

mod auth;
mod identity;
mod openapi;
mod respond;
mod rest;

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
        ])
        .max_age(std::time::Duration::from_secs(86400));
    Router::new()
        .route("/health", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route("/rest/v1/", get(openapi::document))
        .nest("/rest/v1", rest::router())
        .nest("/auth/v1", auth::router())
        .layer(cors)
        .with_state(state)
}
