//! Application state and the router. The server takes a bound listener and a shutdown
//! future, so tests bind port 0 and stop cleanly.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use basalt_schema::Catalog;
use tokio::net::TcpListener;

use crate::auth::JwtKeys;
use crate::config::Config;
use crate::store::Store;

/// Everything a handler needs, behind one Arc.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub catalog: Arc<Catalog>,
    pub jwt: JwtKeys,
    pub anon_key: String,
    pub service_key: String,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config, store: Store, catalog: Catalog, secret: &str) -> Self {
        let jwt = JwtKeys::new(secret);
        let anon_key = jwt.project_key("anon");
        let service_key = jwt.project_key("service_role");
        AppState(Arc::new(Inner { config, store, catalog: Arc::new(catalog), jwt, anon_key, service_key }))
    }
}

pub fn build_router(state: AppState) -> Router {
    crate::http::router(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    axum::serve(listener, build_router(state)).with_graceful_shutdown(shutdown).await
}
