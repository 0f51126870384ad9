//! Handlers of every route under `/mediator/v1` (reference, "API
//! Reference"): accounts, DIDs, bindings and dialouts.

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;

use super::AppState;
use super::auth::Caller;
use super::body::JsonBody;
use super::error::ApiError;
use super::params::Params;
use super::respond::{self, ListCtx, base_url, no_content, ok};
use crate::model::account::Account;
use crate::model::binding::{self, Binding, Mode};
use crate::model::dialout::{self, Dialout};
use crate::model::did::Did;
use crate::model::now_ms;
use crate::store::bindings::CreateOptions;

/// Fields of the Account object, for field filtering.
pub const ACCOUNT_FIELDS: &[&str] = &["account_sid", "date_created", "login", "name"];
/// Fields of the DID object.
pub const DID_FIELDS: &[&str] = &[
    "account_sid",
    "country_code",
    "did_sid",
    "in_country_format",
    "international_format",
    "phonenumber",
];
/// Fields of the Binding object.
pub const BINDING_FIELDS: &[&str] = &[
    "account_sid",
    "attributes",
    "binding_sid",
    "date_created",
    "destination_did",
    "dtmf",
    "maximum_ttl",
    "name",
    "origination_did",
    "redirect_did",
    "redirect_did_info",
    "wait_origination_did_ttl",
];
/// Fields of the Dialout object.
pub const DIALOUT_FIELDS: &[&str] = &[
    "account_sid",
    "attributes",
    "date_created",
    "delay",
    "dialout_sid",
    "redirect_did",
    "stage_one_destination_did",
    "stage_two_destination_did",
];

/// The permission that lets an account flip `hide_origination_did` from its
/// default (reference: "please email support").
pub const HIDE_PERMISSION: &str = "hide_origination_did";

fn not_found(what: &str) -> ApiError {
    ApiError::NotFound(format!("cannot find {what}"))
}

fn map_nf(what: &'static str) -> impl Fn(crate::store::StoreError) -> ApiError {
    move |e| match e {
        crate::store::StoreError::NotFound => not_found(what),
        other => other.into(),
    }
}

fn check_hide_permission(account: &Account, flips: bool) -> Result<(), ApiError> {
    if flips && !account.has_permission(HIDE_PERMISSION) {
        return Err(ApiError::Forbidden {
            field: "attributes.hide_origination_did".into(),
            detail: "changing hide_origination_did from its default needs the account permission hide_origination_did".into(),
        });
    }
    Ok(())
}

/// A list request's parts.
struct ListReq {
    params: Params,
    headers: HeaderMap,
    uri: axum::http::Uri,
}

async fn list_response<T>(
    st: &AppState,
    req: ListReq,
    known: &[&str],
    fetch: impl AsyncFnOnce(
        &crate::store::list::ListQuery,
    ) -> Result<crate::store::list::Page<T>, crate::store::StoreError>,
    render: impl Fn(&T) -> serde_json::Value,
    sid_of: impl Fn(&T) -> String,
) -> Result<Response, ApiError> {
    let q = req.params.list_query()?;
    let fields = req.params.field_filter(known)?;
    let page = fetch(&q).await?;
    let ctx = ListCtx {
        q: &q,
        params: &req.params,
        fields: &fields,
        base: base_url(&st.public_url, &req.headers),
        uri: &req.uri,
    };
    Ok(respond::page(page, &ctx, render, sid_of))
}

fn one(params: &Params, known: &[&str], value: serde_json::Value) -> Result<Response, ApiError> {
    Ok(ok(params.field_filter(known)?.apply(value)))
}

// ----- accounts -----

/// GET /accounts
pub async fn list_accounts(
    State(st): State<AppState>,
    Caller(acc): Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let req = ListReq {
        params: Params::parse(raw.as_deref())?,
        headers,
        uri,
    };
    let store = st.store.clone();
    list_response(
        &st,
        req,
        ACCOUNT_FIELDS,
        async |q| store.list_accounts(&acc.account_sid, q).await,
        Account::to_json,
        |a| a.account_sid.clone(),
    )
    .await
}

/// GET /accounts/{account_sid}
pub async fn get_account(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let a = st
        .store
        .get_account(&acc.account_sid, &sid)
        .await
        .map_err(map_nf("account"))?;
    one(&params, ACCOUNT_FIELDS, a.to_json())
}

// ----- DIDs -----

/// GET /dids
pub async fn list_dids(
    State(st): State<AppState>,
    Caller(acc): Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let req = ListReq {
        params: Params::parse(raw.as_deref())?,
        headers,
        uri,
    };
    let store = st.store.clone();
    list_response(
        &st,
        req,
        DID_FIELDS,
        async |q| store.list_dids(&acc.account_sid, q).await,
        Did::to_json,
        |d| d.did_sid.clone(),
    )
    .await
}

/// GET /dids/{did_sid}
pub async fn get_did(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let d = st
        .store
        .get_did(&acc.account_sid, &sid)
        .await
        .map_err(map_nf("did"))?;
    one(&params, DID_FIELDS, d.to_json())
}

// ----- bindings -----

/// GET /bindings
pub async fn list_bindings(
    State(st): State<AppState>,
    Caller(acc): Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let req = ListReq {
        params: Params::parse(raw.as_deref())?,
        headers,
        uri,
    };
    let store = st.store.clone();
    let now = now_ms();
    list_response(
        &st,
        req,
        BINDING_FIELDS,
        async |q| store.list_bindings(&acc.account_sid, now, q).await,
        |b: &Binding| b.to_json(now),
        |b| b.binding_sid.clone(),
    )
    .await
}

/// POST /bindings
pub async fn create_binding(
    State(st): State<AppState>,
    Caller(acc): Caller,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let fields = params.field_filter(BINDING_FIELDS)?;
    let opts = CreateOptions {
        reuse: params.flag("reuse")?,
        fallback_country: params.fallback_country()?,
    };
    let draft = binding::draft_from_body(body, Mode::Create, None)?;
    check_hide_permission(&acc, draft.flips_hide_default)?;
    let b = st
        .store
        .create_binding(&acc.account_sid, &draft, &opts)
        .await?;
    Ok(ok(fields.apply(b.to_json(now_ms()))))
}

/// GET /bindings/{binding_sid}
pub async fn get_binding(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let fields = params.field_filter(BINDING_FIELDS)?;
    let b = st
        .store
        .get_binding(&acc.account_sid, &sid)
        .await
        .map_err(map_nf("binding"))?;
    Ok(ok(fields.apply(b.to_json(now_ms()))))
}

async fn change_binding(
    st: AppState,
    acc: &Account,
    sid: &str,
    raw: Option<String>,
    body: serde_json::Value,
    put: bool,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let fields = params.field_filter(BINDING_FIELDS)?;
    let mode = if put {
        Mode::Put
    } else {
        Mode::Patch {
            replace_nested: params.replace_nested()?,
        }
    };
    let cur = st
        .store
        .get_binding(&acc.account_sid, sid)
        .await
        .map_err(map_nf("binding"))?;
    let cur_json = cur.to_json(now_ms());
    let cur_map = cur_json.as_object().cloned().unwrap_or_default();
    let draft = binding::draft_from_body(body, mode, Some((&cur, &cur_map)))?;
    check_hide_permission(acc, draft.flips_hide_default && !binding_hides(&cur))?;
    let b = st
        .store
        .update_binding(&acc.account_sid, sid, &draft)
        .await
        .map_err(map_nf("binding"))?;
    Ok(ok(fields.apply(b.to_json(now_ms()))))
}

fn binding_hides(b: &Binding) -> bool {
    crate::model::attributes::flag(&b.attributes, "hide_origination_did", false)
}

/// PATCH /bindings/{binding_sid}
pub async fn patch_binding(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    change_binding(st, &acc, &sid, raw, body, false).await
}

/// PUT /bindings/{binding_sid}
pub async fn put_binding(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    change_binding(st, &acc, &sid, raw, body, true).await
}

/// DELETE /bindings/{binding_sid}
pub async fn delete_binding(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
) -> Result<Response, ApiError> {
    st.store
        .delete_binding(&acc.account_sid, &sid)
        .await
        .map_err(map_nf("binding"))?;
    Ok(no_content())
}

// ----- dialouts -----

/// GET /dialouts
pub async fn list_dialouts(
    State(st): State<AppState>,
    Caller(acc): Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let req = ListReq {
        params: Params::parse(raw.as_deref())?,
        headers,
        uri,
    };
    let store = st.store.clone();
    let now = now_ms();
    list_response(
        &st,
        req,
        DIALOUT_FIELDS,
        async |q| store.list_dialouts(&acc.account_sid, now, q).await,
        |d: &Dialout| d.to_json(now),
        |d| d.dialout_sid.clone(),
    )
    .await
}

/// POST /dialouts
pub async fn create_dialout(
    State(st): State<AppState>,
    Caller(acc): Caller,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let fields = params.field_filter(DIALOUT_FIELDS)?;
    let fallback = params.fallback_country()?;
    let draft = dialout::draft_from_body(body, Mode::Create, None)?;
    check_hide_permission(&acc, draft.flips_hide_default)?;
    let d = st
        .store
        .create_dialout(&acc.account_sid, &draft, fallback.as_deref())
        .await?;
    Ok(ok(fields.apply(d.to_json(now_ms()))))
}

/// GET /dialouts/{dialout_sid}
pub async fn get_dialout(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let fields = params.field_filter(DIALOUT_FIELDS)?;
    let d = st
        .store
        .get_dialout(&acc.account_sid, &sid)
        .await
        .map_err(map_nf("dialout"))?;
    Ok(ok(fields.apply(d.to_json(now_ms()))))
}

async fn change_dialout(
    st: AppState,
    acc: &Account,
    sid: &str,
    raw: Option<String>,
    body: serde_json::Value,
    put: bool,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let fields = params.field_filter(DIALOUT_FIELDS)?;
    let mode = if put {
        Mode::Put
    } else {
        Mode::Patch {
            replace_nested: params.replace_nested()?,
        }
    };
    let cur = st
        .store
        .dialout_to_change(&acc.account_sid, sid)
        .await
        .map_err(map_nf("dialout"))?;
    let cur_json = cur.to_json(now_ms());
    let cur_map = cur_json.as_object().cloned().unwrap_or_default();
    let draft = dialout::draft_from_body(body, mode, Some((&cur, &cur_map)))?;
    let already_shown =
        !crate::model::attributes::flag(&cur.attributes, "hide_origination_did", true);
    check_hide_permission(acc, draft.flips_hide_default && !already_shown)?;
    let d = st
        .store
        .update_dialout(&acc.account_sid, sid, &draft)
        .await
        .map_err(map_nf("dialout"))?;
    Ok(ok(fields.apply(d.to_json(now_ms()))))
}

/// PATCH /dialouts/{dialout_sid}
pub async fn patch_dialout(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    change_dialout(st, &acc, &sid, raw, body, false).await
}

/// PUT /dialouts/{dialout_sid}
pub async fn put_dialout(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
    RawQuery(raw): RawQuery,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    change_dialout(st, &acc, &sid, raw, body, true).await
}

/// DELETE /dialouts/{dialout_sid}
pub async fn delete_dialout(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
) -> Result<Response, ApiError> {
    st.store
        .delete_dialout(&acc.account_sid, &sid)
        .await
        .map_err(map_nf("dialout"))?;
    Ok(no_content())
}

// ----- calls (an extension: docs/api.md, "Calls") -----

/// GET /calls: the account's call detail records, by `date_stop` unless
/// `order` says otherwise.
pub async fn list_calls(
    State(st): State<AppState>,
    Caller(acc): Caller,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Result<Response, ApiError> {
    let req = ListReq {
        params: Params::parse(raw.as_deref())?,
        headers,
        uri,
    };
    let store = st.store.clone();
    list_response(
        &st,
        req,
        crate::model::call::FIELDS,
        async |q| {
            let mut q = q.clone();
            if q.order.is_none() {
                q.order = Some(("date_stop".into(), false));
            }
            store.list_calls(&acc.account_sid, &q).await
        },
        crate::model::call::Call::to_json,
        |c| c.call_sid.clone(),
    )
    .await
}

/// GET /calls/{call_sid}
pub async fn get_call(
    State(st): State<AppState>,
    Caller(acc): Caller,
    Path(sid): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(raw.as_deref())?;
    let c = st
        .store
        .get_call(&acc.account_sid, &sid)
        .await
        .map_err(map_nf("call"))?;
    one(&params, crate::model::call::FIELDS, c.to_json())
}
