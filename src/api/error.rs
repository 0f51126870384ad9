//! The API's errors and the one place where they, and the store's errors,
//! become HTTP statuses and the error envelope:
//! `{"body": {"message": "...", "errors": [{"field", "message",
//! "reference_sid"}]}, "status": N}` (DESIGN.md, "REST API decisions").

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::model::FieldError;
use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body or a query argument cannot be accepted.
    #[error("{message}")]
    BadRequest {
        /// Summary.
        message: String,
        /// The field at fault, if one is.
        field: Option<String>,
        /// Details.
        detail: String,
    },
    /// 401: no or wrong credentials.
    #[error("authentication required")]
    Unauthorized,
    /// 403: the account lacks a permission for `field`.
    #[error("permission denied")]
    Forbidden {
        /// The field the permission guards.
        field: String,
        /// Why.
        detail: String,
    },
    /// 404: no such object for this account, or no such route.
    #[error("no item error")]
    NotFound(String),
    /// 405: the route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: a data rule would break (no free redirect DID, duplicates).
    #[error("conflict")]
    Conflict {
        /// The field at fault.
        field: String,
        /// What the conflict is.
        detail: String,
    },
    /// 413: the body is over the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 415: the body is not JSON.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 503: the database cannot be reached right now.
    #[error("service unavailable")]
    Unavailable,
    /// 500: anything else; details go to the log, not to the client.
    #[error("internal server error")]
    Internal,
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::BadRequest {
            message: "invalid request".into(),
            field: Some(field.into()),
            detail: detail.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> Value {
        let entry = |field: Option<&str>, message: &str| json!([{"field": field, "message": message, "reference_sid": null}]);
        let (message, errors) = match self {
            ApiError::BadRequest {
                message,
                field,
                detail,
            } => (message.clone(), entry(field.as_deref(), detail)),
            ApiError::Unauthorized => (
                "authentication required".into(),
                entry(Some("cause"), "authentication required"),
            ),
            ApiError::Forbidden { field, detail } => {
                ("permission denied".into(), entry(Some(field), detail))
            }
            ApiError::NotFound(what) => ("no item error".into(), entry(None, what)),
            ApiError::MethodNotAllowed => (
                "method not allowed".into(),
                entry(Some("method"), "this route does not take that method"),
            ),
            ApiError::Conflict { field, detail } => ("conflict".into(), entry(Some(field), detail)),
            ApiError::PayloadTooLarge => (
                "request body too large".into(),
                entry(Some("body"), "the body may be at most 1 MiB"),
            ),
            ApiError::UnsupportedMediaType => (
                "unsupported media type".into(),
                entry(Some("Content-Type"), "send the body as application/json"),
            ),
            ApiError::Unavailable => (
                "service unavailable".into(),
                entry(
                    Some("database"),
                    "the database cannot be reached; try again",
                ),
            ),
            ApiError::Internal => (
                "internal server error".into(),
                entry(None, "internal server error"),
            ),
        };
        json!({"body": {"message": message, "errors": errors}, "status": self.status().as_u16()})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut res = (status, axum::Json(self.body())).into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"mediator\""),
            );
        }
        res
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::field(e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                ApiError::Unavailable
            }
            StoreError::Conflict { field, message } => ApiError::Conflict {
                field,
                detail: message,
            },
            StoreError::NotFound => ApiError::NotFound("cannot find item by SID".into()),
            StoreError::BadQuery { field, message } => ApiError::BadRequest {
                message: "invalid query".into(),
                field: Some(field),
                detail: message,
            },
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::Internal
            }
        }
    }
}
