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
}

impl AppState {
    /// State over `store`; verified credentials are cached for
    /// `auth_cache_secs` seconds.
    pub fn new(store: Store, public_url: String, auth_cache_secs: u64) -> Self {
        Self {
            auth: Authenticator::new(store.clone(), Duration::from_secs(auth_cache_secs)),
            store,
            public_url,
        }
    }
}

async fn no_route() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn wrong_method() -> ApiError {
    ApiError::MethodNotAllowed
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
        .route("/openapi.json", get(openapi::serve));
    Router::new()
        .nest(BASE, v1)
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
        .layer(CorsLayer::permissive())
        .with_state(state)
}
