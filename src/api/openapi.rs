//! The OpenAPI 3.1 document of the API, kept in `docs/openapi.json` and
//! served at `/mediator/v1/openapi.json`.

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// GET /mediator/v1/openapi.json (no authentication).
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
