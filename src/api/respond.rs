//! The response envelope `{"body": ..., "status": N}` and list pages with
//! `count`, `has_more`, `items`, `limit`, `offset`, `pagination` and
//! `total` (reference, "Pagination Response").

use axum::Json;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::params::{FieldFilter, Params};
use crate::store::list::{Cursor, ListQuery, Page};

/// 200 with `body` in the envelope.
pub fn ok(body: Value) -> Response {
    (StatusCode::OK, Json(json!({"body": body, "status": 200}))).into_response()
}

/// 204 with no body (DELETE).
pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Where pagination links point: `api.public_url`, or `http://` and the
/// request's `Host`.
pub fn base_url(public_url: &str, headers: &HeaderMap) -> String {
    if !public_url.is_empty() {
        return public_url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn link(base: &str, uri: &Uri, params: &Params, set: &[(&str, String)]) -> String {
    let drop = ["offset", "after", "before"];
    let mut pairs: Vec<(String, String)> = params
        .pairs()
        .iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .cloned()
        .collect();
    for (k, v) in set {
        pairs.push((k.to_string(), v.clone()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    format!("{base}{}?{query}", uri.path())
}

/// What a list request asked for, to render its page.
pub struct ListCtx<'a> {
    /// The parsed list query.
    pub q: &'a ListQuery,
    /// All query arguments, to rebuild links.
    pub params: &'a Params,
    /// `include_fields` / `exclude_fields`.
    pub fields: &'a FieldFilter,
    /// Base URL of links.
    pub base: String,
    /// The request URI (its path).
    pub uri: &'a Uri,
}

/// A list page in the envelope, with working `next`/`previous` links.
/// `sid_of` reads an item's SID for cursor links.
pub fn page<T>(
    page: Page<T>,
    ctx: &ListCtx<'_>,
    render: impl Fn(&T) -> Value,
    sid_of: impl Fn(&T) -> String,
) -> Response {
    let (q, params, fields, base, uri) =
        (ctx.q, ctx.params, ctx.fields, ctx.base.as_str(), ctx.uri);
    let count = page.items.len();
    let first = page.items.first().map(&sid_of);
    let last = page.items.last().map(&sid_of);
    let items: Vec<Value> = page.items.iter().map(|i| fields.apply(render(i))).collect();
    let mut pagination = Map::new();
    let limit = q.limit.to_string();
    match &q.cursor {
        None => {
            if page.has_more {
                let next = (q.offset + q.limit).to_string();
                pagination.insert(
                    "next".into(),
                    json!(link(
                        base,
                        uri,
                        params,
                        &[("limit", limit.clone()), ("offset", next)]
                    )),
                );
            }
            if q.offset > 0 {
                let prev = (q.offset - q.limit).max(0).to_string();
                pagination.insert(
                    "previous".into(),
                    json!(link(
                        base,
                        uri,
                        params,
                        &[("limit", limit.clone()), ("offset", prev)]
                    )),
                );
            }
        }
        Some(Cursor::After(_)) => {
            if let (true, Some(l)) = (page.has_more, &last) {
                pagination.insert(
                    "next".into(),
                    json!(link(base, uri, params, &[("after", l.clone())])),
                );
            }
            if let Some(f) = &first {
                pagination.insert(
                    "previous".into(),
                    json!(link(base, uri, params, &[("before", f.clone())])),
                );
            }
        }
        Some(Cursor::Before(_)) => {
            if let (true, Some(f)) = (page.has_more, &first) {
                pagination.insert(
                    "previous".into(),
                    json!(link(base, uri, params, &[("before", f.clone())])),
                );
            }
            if let Some(l) = &last {
                pagination.insert(
                    "next".into(),
                    json!(link(base, uri, params, &[("after", l.clone())])),
                );
            }
        }
    }
    ok(json!({
        "count": count,
        "has_more": page.has_more,
        "items": items,
        "limit": q.limit,
        "offset": q.offset,
        "pagination": pagination,
        "total": page.total,
    }))
}
