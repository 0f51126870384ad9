//! The adapter between call control and the store: [`StoreRouter`]
//! implements [`CallRouter`] with the store's binding lookup and call
//! detail records.

use async_trait::async_trait;

use crate::call::router::{
    CallMedia, CallRecord, CallRoute, CallRouter, DialoutRecord, Ringback, RouterError,
};
use crate::model::attributes::flag;
use crate::model::binding::Binding;
use crate::model::dialout::Dialout;
use crate::model::now_ms;
use crate::store::calls::CallDetail;
use crate::store::{Store, StoreError};

/// Routes inbound calls by the bindings in the store.
#[derive(Clone)]
pub struct StoreRouter {
    store: Store,
}

impl StoreRouter {
    /// A router over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

fn router_error(e: StoreError) -> RouterError {
    match e {
        StoreError::Unavailable(m) => RouterError::Unavailable(m),
        other => RouterError::Other(other.to_string()),
    }
}

/// What call control needs of a binding: numbers, caller-ID switches,
/// CNAM and the `sip_header_X-*` attributes as headers.
pub fn route_of(b: &Binding) -> CallRoute {
    route_from(
        &b.binding_sid,
        &b.redirect_did,
        &b.destination_did,
        &b.attributes,
        false,
    )
    .with_dtmf(b.dtmf.clone().filter(|d| !d.is_empty()))
}

/// A route from a binding's or dialout's fields; `hide_default` is
/// `hide_origination_did` when the attribute is not set.
fn route_from(
    sid: &str,
    redirect_did: &str,
    destination_did: &str,
    attributes: &serde_json::Map<String, serde_json::Value>,
    hide_default: bool,
) -> CallRoute {
    let sip_headers = attributes
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("sip_header_")?;
            Some((name.to_string(), v.as_str()?.to_string()))
        })
        .collect();
    CallRoute {
        binding_sid: sid.to_string(),
        redirect_did: redirect_did.to_string(),
        destination_did: destination_did.to_string(),
        hide_origination_did: flag(attributes, "hide_origination_did", hide_default),
        fix_anonymous_cid: flag(attributes, "fix_anonymous_cid", false),
        cnam: attributes
            .get("cnam")
            .and_then(|v| v.as_str())
            .map(str::to_string),
        sip_headers,
        media: CallMedia {
            announce: attributes
                .get("announce")
                .and_then(|v| v.as_str())
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string),
            ringback: Ringback::parse(attributes.get("ringback").and_then(|v| v.as_str())),
            dtmf: None,
        },
    }
}

/// The route of one dialout stage (issue 6): `to` is called from the
/// dialout's redirect DID with its caller-ID switch (`hide_origination_did`,
/// true unless set to false for dialouts), `cnam`, `sip_header_X-*`
/// attributes, `announce` and `ringback`. `dtmf` is not a dialout attribute
/// and is never sent.
pub fn dialout_route(d: &Dialout, to: &str) -> CallRoute {
    route_from(&d.dialout_sid, &d.redirect_did, to, &d.attributes, true)
}

#[async_trait]
impl CallRouter for StoreRouter {
    async fn route(
        &self,
        redirect_did: &str,
        caller: Option<&str>,
    ) -> Result<Option<CallRoute>, RouterError> {
        let found = self
            .store
            .route_inbound(redirect_did, caller, now_ms())
            .await
            .map_err(router_error)?;
        Ok(found.as_ref().map(route_of))
    }

    async fn record_call(&self, r: CallRecord) -> Result<(), RouterError> {
        crate::metrics::call_recorded(r.sip_status);
        let sid = r.call_sid.clone();
        let detail = detail_of(r, "binding", "inbound");
        self.store
            .insert_call_as(&sid, &detail)
            .await
            .map_err(router_error)
    }

    /// Stores each leg's record with the dialout's SID and outcome and
    /// removes the dialout, in one transaction
    /// ([`Store::finish_dialout`]).
    async fn finish_dialout(&self, r: DialoutRecord) -> Result<(), RouterError> {
        let legs: Vec<(String, CallDetail)> = r
            .legs
            .into_iter()
            .map(|l| {
                crate::metrics::call_recorded(l.sip_status);
                let sid = l.call_sid.clone();
                (sid, detail_of(l, "dialout", "outbound"))
            })
            .collect();
        self.store
            .finish_dialout(&r.dialout_sid, &r.account_sid, r.outcome.as_str(), &legs)
            .await
            .map_err(router_error)?;
        // Counted once recorded: an unrecorded one is counted by the stale
        // cleanup that records it later.
        crate::metrics::dialout_ended(r.outcome.as_str());
        Ok(())
    }
}

/// The stored shape of a call's record.
fn detail_of(r: CallRecord, kind: &str, direction: &str) -> CallDetail {
    CallDetail {
        binding_sid: r.binding_sid,
        kind: kind.into(),
        direction: direction.into(),
        number_src: r.number_src,
        number_dst: r.number_dst,
        number_redirect: r.number_redirect,
        date_start: r.date_start.timestamp_millis(),
        date_answer: r.date_answer.map(|t| t.timestamp_millis()),
        date_stop: r.date_stop.timestamp_millis(),
        duration: r.duration_secs,
        sip_status: r.sip_status,
        hangup_side: r.hangup_side,
    }
}
