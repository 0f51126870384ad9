//! The Call object: a call detail record as the calls API lists it and as
//! a callback delivers it (an extension of the Mediator API, see
//! `docs/api.md`, "Calls").

use serde_json::{Map, Value, json};

use super::format_time;

/// A call detail record as stored, with the DTMF and attributes of the
/// binding (or dialout) it followed, copied when the record was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The record's secure ID; stable across callback retries.
    pub call_sid: String,
    /// The account the call belongs to (the binding's, else the redirect
    /// DID's owner).
    pub account_sid: Option<String>,
    /// The binding or dialout the call followed, if any.
    pub reference_sid: Option<String>,
    /// `binding` or `dialout`.
    pub kind: String,
    /// `inbound` (a masked call to a redirect DID) or `outbound`.
    pub direction: String,
    /// The caller's number, E.164 digits (empty when unknown).
    pub number_src: String,
    /// The destination's number (empty when the call was not routed).
    pub number_dst: String,
    /// The redirect DID.
    pub number_redirect: String,
    /// When the INVITE arrived, ms since the epoch.
    pub date_start: i64,
    /// When the destination answered, ms since the epoch.
    pub date_talk: Option<i64>,
    /// When the call ended, ms since the epoch.
    pub date_stop: i64,
    /// Talk time in whole seconds (0 when not answered).
    pub duration: i64,
    /// The DTMF digits of the binding or dialout.
    pub dtmf: Option<String>,
    /// The final SIP status sent to the caller (200 for answered calls).
    pub sip_status: u16,
    /// `caller`, `callee` or `system`, when known.
    pub hangup_side: Option<String>,
    /// The binding's or dialout's attributes at the end of the call.
    pub attributes: Map<String, Value>,
    /// The dialout this leg belongs to (`type` `dialout`), else `None`.
    pub dialout_sid: Option<String>,
    /// How the dialout ended (`connected`, `stage_one_busy`, ..., `missed`;
    /// see `docs/dialouts.md`), on every leg of a dialout; `None` for
    /// binding calls.
    pub outcome: Option<String>,
}

impl Call {
    /// The JSON object of the calls API and of callbacks. Times are RFC 3339
    /// UTC with milliseconds; `date_talk` is null for a call never answered.
    pub fn to_json(&self) -> Value {
        json!({
            "account_sid": self.account_sid,
            "attributes": self.attributes,
            "call_sid": self.call_sid,
            "date_start": format_time(self.date_start),
            "date_stop": format_time(self.date_stop),
            "date_talk": self.date_talk.map(format_time),
            "dialout_sid": self.dialout_sid,
            "direction": self.direction,
            "dtmf": self.dtmf,
            "duration": self.duration,
            "hangup_side": self.hangup_side,
            "number_dst": self.number_dst,
            "number_redirect": self.number_redirect,
            "number_src": self.number_src,
            "outcome": self.outcome,
            "reference_sid": self.reference_sid,
            "sip_status": self.sip_status,
            "type": self.kind,
        })
    }
}

/// Fields of the Call object, for field filtering.
pub const FIELDS: &[&str] = &[
    "account_sid",
    "attributes",
    "call_sid",
    "date_start",
    "date_stop",
    "date_talk",
    "dialout_sid",
    "direction",
    "dtmf",
    "duration",
    "hangup_side",
    "number_dst",
    "number_redirect",
    "number_src",
    "outcome",
    "reference_sid",
    "sip_status",
    "type",
];
