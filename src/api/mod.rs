//! The REST side: every route of the Mediator API under `/mediator/v1`
//! with HTTP Basic auth, the envelope, pagination, filters, field filtering
//! and PATCH merge (reference, "Using the REST API" and "API Reference").

pub mod auth;
pub mod body;
pub mod error;
pub mod openapi;
pub mod params;
pub mod resources;
pub mod respond;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use tower_http::cors::CorsLayer;

use crate::store::Store;
use auth::Authenticator;
use error::ApiError;
use resources as r;

/// Base path of every route.
pub const BASE: &str = "/mediator/v1";

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Credential checks and their cache.
    pub auth: Authenticator,
    /// `api.public_url`, for pagination links.
    pub public_url: String,
    /// Whether SIP is listening (set once SIP started, cleared when it
    /// stops), for `/readyz`.
    pub sip_ready: Arc<AtomicBool>,
}

impl AppState {
    /// State over `store`; verified credentials are cached for
    /// `auth_cache_secs` seconds.
    pub fn new(store: Store, public_url: String, auth_cache_secs: u64) -> Self {
        Self {
            auth: Authenticator::new(store.clone(), Duration::from_secs(auth_cache_secs)),
            store,
            public_url,
            sip_ready: Arc::new(AtomicBool::new(false)),
        }
    }
}

async fn no_route() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn wrong_method() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `GET /healthz`: 200 while the process runs.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the store answers and SIP is listening, else
/// 503 saying which is not.
async fn readyz(
    axum::extract::State(st): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, String) {
    let store = st.store.ping().await.is_ok();
    let sip = st.sip_ready.load(Ordering::SeqCst);
    let code = if store && sip {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok| if ok { "ok" } else { "down" };
    (code, format!("store {}\nsip {}\n", word(store), word(sip)))
}

/// `GET /metrics`: the Prometheus text format (version 0.0.4).
async fn metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
}

/// `/metrics`, `/healthz` and `/readyz` alone, for the separate listener
/// of `[metrics] listen`.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The API's router.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/accounts", get(r::list_accounts))
        .route("/accounts/{sid}", get(r::get_account))
        .route("/dids", get(r::list_dids))
        .route("/dids/{sid}", get(r::get_did))
        .route("/bindings", get(r::list_bindings).post(r::create_binding))
        .route(
            "/bindings/{sid}",
            get(r::get_binding)
                .patch(r::patch_binding)
                .put(r::put_binding)
                .delete(r::delete_binding),
        )
        .route("/dialouts", get(r::list_dialouts).post(r::create_dialout))
        .route(
            "/dialouts/{sid}",
            get(r::get_dialout)
                .patch(r::patch_dialout)
                .put(r::put_dialout)
                .delete(r::delete_dialout),
        )
        .route("/calls", get(r::list_calls))
        .route("/calls/{sid}", get(r::get_call))
        .route("/openapi.json", get(openapi::serve))
        .route_layer(axum::middleware::from_fn(crate::metrics::track_api));
    Router::new()
        .nest(BASE, v1)
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .layer(CorsLayer::permissive())
        .with_state(state)
}
