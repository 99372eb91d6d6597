//! Application state and the router. The server takes a bound listener and a shutdown
//! future, so tests bind port 0 and stop cleanly.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use basalt_schema::Catalog;
use tokio::net::TcpListener;

use crate::auth::claim_path::ClaimPath;
use crate::auth::mailer::Mailer;
use crate::auth::ratelimit::Limits;
use crate::auth::service::AuthService;
use crate::auth::JwtKeys;
use crate::catalog::SharedCatalog;
use crate::config::Config;
use crate::store::Store;

/// Everything a handler needs, behind one Arc.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub store: Store,
    pub catalog: Arc<SharedCatalog>,
    pub jwt: Arc<JwtKeys>,
    pub auth: AuthService,
    pub anon_key: String,
    pub service_key: String,
    /// Where the role sits in a token's claims (`jwt-role-claim-key`).
    pub role_claim: ClaimPath,
    pub identities: crate::http::IdentityCache,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// `catalogs`: one per exposed schema. A configured secret may be base64; a generated one is not.
    pub fn new(config: Config, store: Store, catalogs: Vec<Catalog>, secret: &str, base_url: String) -> anyhow::Result<Self> {
        let key = crate::config::secret_bytes(secret, config.rest.jwt_secret_is_base64 && config.jwt_secret.is_some())?;
        let jwt = Arc::new(JwtKeys::new(&key, config.rest.jwt_aud.clone()));
        let role_claim = ClaimPath::parse(&config.rest.jwt_role_claim_key).map_err(|e| anyhow::anyhow!("jwt-role-claim-key: {e}"))?;
        let anon_key = jwt.project_key("anon");
        let service_key = jwt.project_key("service_role");
        let catalog = Arc::new(SharedCatalog::new(catalogs));
        crate::auth::service::start_hashers();
        let auth = AuthService {
            store: store.clone(),
            jwt: jwt.clone(),
            settings: config.auth.clone(),
            mailer: Mailer::new(&config.data_dir, config.auth.smtp.as_ref())?,
            limits: Limits::new(config.auth.rate_limit_ip_per_minute, config.auth.rate_limit_email_per_minute),
            base_url,
            catalog: catalog.clone(),
        };
        Ok(AppState(Arc::new(Inner {
            config,
            store,
            catalog,
            jwt,
            auth,
            anon_key,
            service_key,
            role_claim,
            identities: Default::default(),
        })))
    }
}

pub fn build_router(state: AppState) -> Router {
    crate::http::router(state)
}

/// Serves until `shutdown` resolves.
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let app = build_router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
