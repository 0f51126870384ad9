//! The Binding object (reference, "Binding Object") and the rules for
//! creating and changing one.

use serde_json::{Map, Value, json};

use super::attributes::{self, Owner};
use super::input::{Body, Given};
use super::phone::NumberInfo;
use super::{FieldError, format_time, remaining_secs};

/// `maximum_ttl` when the body gives none, in seconds.
pub const DEFAULT_MAXIMUM_TTL: i64 = 3600;
/// `wait_origination_did_ttl` when the body gives none, in seconds.
pub const DEFAULT_WAIT_TTL: i64 = 300;
/// Longest TTL accepted, in seconds (ten years).
pub const MAX_TTL: i64 = 315_360_000;
/// Characters `dtmf` may hold: RFC 4733 events 0-9, *, #, A-D, and `,` for
/// a pause of 0.5 s.
pub const DTMF_CHARS: &str = "0123456789*#ABCDabcd,";

/// A binding as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Secure ID.
    pub binding_sid: String,
    /// Owner.
    pub account_sid: String,
    /// Friendly name, `N/A` by default.
    pub name: String,
    /// Where calls go, E.164 digits.
    pub destination_did: String,
    /// The only caller this binding serves, if set.
    pub origination_did: Option<String>,
    /// The account's DID callers dial.
    pub redirect_did: String,
    /// Digits sent to the destination after it answers.
    pub dtmf: Option<String>,
    /// Built-in and custom attributes.
    pub attributes: Map<String, Value>,
    /// Creation time, ms since the epoch.
    pub date_created: i64,
    /// When `maximum_ttl` runs out, ms since the epoch; `None`: never.
    pub max_expires_at: Option<i64>,
    /// When `wait_origination_did_ttl` runs out, ms since the epoch; `None`:
    /// waiting is disabled.
    pub wait_expires_at: Option<i64>,
    /// Formats of `redirect_did` from the DID table.
    pub redirect_did_info: NumberInfo,
}

impl Binding {
    /// Whether the binding is live at `now_ms` (not expired by either TTL).
    pub fn is_live(&self, now_ms: i64) -> bool {
        let max_ok = self.max_expires_at.is_none_or(|t| t > now_ms);
        let wait_ok =
            self.origination_did.is_some() || self.wait_expires_at.is_none_or(|t| t > now_ms);
        max_ok && wait_ok
    }

    /// The API's JSON form at `now_ms`: TTLs read back as seconds remaining.
    pub fn to_json(&self, now_ms: i64) -> Value {
        let info = &self.redirect_did_info;
        json!({
            "account_sid": self.account_sid,
            "attributes": self.attributes,
            "binding_sid": self.binding_sid,
            "date_created": format_time(self.date_created),
            "destination_did": self.destination_did,
            "dtmf": self.dtmf,
            "maximum_ttl": remaining_secs(self.max_expires_at, now_ms),
            "name": self.name,
            "origination_did": self.origination_did,
            "redirect_did": self.redirect_did,
            "redirect_did_info": {
                "country_code": info.country_code,
                "e164_format": format!("+{}", info.phonenumber),
                "in_country_format": info.in_country_format,
                "international_format": info.international_format,
                "phonenumber": info.phonenumber,
            },
            "wait_origination_did_ttl": remaining_secs(self.wait_expires_at, now_ms),
        })
    }
}

/// How a request treats an existing binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// POST: a new binding.
    Create,
    /// PATCH: change what the body names; `replace_nested` is
    /// `nested_objects=replace`.
    Patch {
        /// Replace `attributes` whole instead of merging by key.
        replace_nested: bool,
    },
    /// PUT: the body is the whole object.
    Put,
}

/// A TTL after a write: unchanged, or restarted with this many seconds
/// (`-1`: never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Keep this deadline (ms since the epoch; `None`: never).
    Keep(Option<i64>),
    /// Restart the count at this many seconds from now.
    Restart(i64),
}

impl Ttl {
    /// The deadline in ms since the epoch, given the time of the write.
    pub fn deadline(self, now_ms: i64) -> Option<i64> {
        match self {
            Ttl::Keep(d) => d,
            Ttl::Restart(-1) => None,
            Ttl::Restart(secs) => Some(now_ms + secs * 1000),
        }
    }
}

/// The desired state of a binding after a create, PATCH or PUT, before the
/// store checks the redirect DID.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingDraft {
    /// Friendly name.
    pub name: String,
    /// Destination, E.164 digits.
    pub destination_did: String,
    /// Caller this binding is limited to.
    pub origination_did: Option<String>,
    /// Redirect DID; `None`: the store picks one.
    pub redirect_did: Option<String>,
    /// DTMF digits.
    pub dtmf: Option<String>,
    /// Attributes after the merge.
    pub attributes: Map<String, Value>,
    /// `maximum_ttl` after the write.
    pub maximum_ttl: Ttl,
    /// `wait_origination_did_ttl` after the write.
    pub wait_origination_did_ttl: Ttl,
    /// Whether the body set `hide_origination_did` away from its default
    /// (false): needs the account permission.
    pub flips_hide_default: bool,
}

fn ttl(field: &str, given: Given<i64>) -> Result<Option<i64>, FieldError> {
    match given {
        Given::Absent => Ok(None),
        Given::Null => Err(FieldError::new(
            field,
            "must be -1 or a number of seconds, not null",
        )),
        Given::Value(v) if v == -1 || (1..=MAX_TTL).contains(&v) => Ok(Some(v)),
        Given::Value(_) => Err(FieldError::new(
            field,
            format!("must be -1 (never) or 1 to {MAX_TTL} seconds"),
        )),
    }
}

/// Checks a `dtmf` value.
pub fn validate_dtmf(s: &str) -> Result<(), FieldError> {
    if s.len() > 256 {
        return Err(FieldError::new("dtmf", "at most 256 characters"));
    }
    match s.chars().find(|c| !DTMF_CHARS.contains(*c)) {
        None => Ok(()),
        Some(c) => Err(FieldError::new(
            "dtmf",
            format!("`{c}` is not a DTMF digit: use 0-9, *, #, A-D and `,` for a 0.5 s pause"),
        )),
    }
}

/// Reads a request body into the desired binding state.
///
/// `current` is the binding being changed (PATCH, PUT) and its JSON form
/// (for read-only fields). Errors name the first field at fault.
pub fn draft_from_body(
    body: Value,
    mode: Mode,
    current: Option<(&Binding, &Map<String, Value>)>,
) -> Result<BindingDraft, FieldError> {
    let mut b = Body::new(body, current.map(|(_, j)| j))?;
    for ro in [
        "account_sid",
        "binding_sid",
        "date_created",
        "redirect_did_info",
    ] {
        b.read_only(ro)?;
    }
    let name = b.string("name", 255)?;
    let destination = b.phone("destination_did")?;
    let origination = b.phone("origination_did")?;
    let redirect = b.phone("redirect_did")?;
    let dtmf = b.string("dtmf", 256)?;
    let max_ttl = ttl("maximum_ttl", b.integer("maximum_ttl")?)?;
    let wait_ttl = ttl(
        "wait_origination_did_ttl",
        b.integer("wait_origination_did_ttl")?,
    )?;
    let attrs = match b.object("attributes") {
        Given::Absent => None,
        Given::Null => Some(Map::new()),
        Given::Value(v) => Some(attributes::validate(Owner::Binding, &v)?),
    };
    b.finish()?;

    if let Given::Value(d) = &dtmf {
        validate_dtmf(d)?;
    }
    let flips_hide_default = attrs
        .as_ref()
        .is_some_and(|a| a.get("hide_origination_did").is_some_and(|v| v == "true"));

    let existing = match (mode, current) {
        (Mode::Patch { .. }, Some((cur, _))) => Some(cur),
        _ => None,
    };
    let destination_did = match (destination, existing) {
        (Given::Value(d), _) => d,
        (Given::Absent, Some(cur)) => cur.destination_did.clone(),
        (Given::Null, _) => {
            return Err(FieldError::new(
                "destination_did",
                "is required and cannot be null",
            ));
        }
        (Given::Absent, None) => return Err(FieldError::new("destination_did", "is required")),
    };
    let name = match (name, existing) {
        (Given::Value(n), _) if !n.trim().is_empty() => n,
        (Given::Absent, Some(cur)) => cur.name.clone(),
        _ => "N/A".to_string(),
    };
    let origination_did = match (origination, existing) {
        (Given::Value(o), _) => Some(o),
        (Given::Null, _) => None,
        (Given::Absent, Some(cur)) => cur.origination_did.clone(),
        (Given::Absent, None) => None,
    };
    let redirect_did = match (redirect, current) {
        (Given::Value(r), _) => Some(r),
        (Given::Null, _) => {
            return Err(FieldError::new(
                "redirect_did",
                "cannot be null; leave it out to have one picked",
            ));
        }
        // PATCH and PUT keep the number callers already know.
        (Given::Absent, Some((cur, _))) if mode != Mode::Create => Some(cur.redirect_did.clone()),
        (Given::Absent, _) => None,
    };
    let dtmf = match (dtmf, existing) {
        (Given::Value(d), _) if !d.is_empty() => Some(d),
        (Given::Value(_), _) | (Given::Null, _) => None,
        (Given::Absent, Some(cur)) => cur.dtmf.clone(),
        (Given::Absent, None) => None,
    };
    let attributes = match (attrs, existing, mode) {
        (Some(a), Some(cur), Mode::Patch { replace_nested }) => {
            attributes::merge(&cur.attributes, &a, replace_nested)
        }
        (Some(a), _, _) => attributes::merge(&Map::new(), &a, true),
        (None, Some(cur), _) => cur.attributes.clone(),
        (None, None, _) => Map::new(),
    };
    let maximum_ttl = match (max_ttl, existing) {
        (Some(s), _) => Ttl::Restart(s),
        (None, Some(cur)) => Ttl::Keep(cur.max_expires_at),
        (None, None) => Ttl::Restart(DEFAULT_MAXIMUM_TTL),
    };
    let wait_origination_did_ttl = match (wait_ttl, existing) {
        (Some(s), _) => Ttl::Restart(s),
        (None, Some(cur)) => Ttl::Keep(cur.wait_expires_at),
        (None, None) => Ttl::Restart(DEFAULT_WAIT_TTL),
    };
    Ok(BindingDraft {
        name,
        destination_did,
        origination_did,
        redirect_did,
        dtmf,
        attributes,
        maximum_ttl,
        wait_origination_did_ttl,
        flips_hide_default,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Binding {
        Binding {
            binding_sid: "b1".into(),
            account_sid: "a1".into(),
            name: "N/A".into(),
            destination_did: "15162065338".into(),
            origination_did: None,
            redirect_did: "15162065337".into(),
            dtmf: None,
            attributes: json!({"ringback": "moh", "k": "v"})
                .as_object()
                .unwrap()
                .clone(),
            date_created: 1000,
            max_expires_at: Some(3_601_000),
            wait_expires_at: None,
            redirect_did_info: NumberInfo {
                country_code: "USA".into(),
                in_country_format: "(516) 206-5337".into(),
                international_format: "+1 516-206-5337".into(),
                phonenumber: "15162065337".into(),
            },
        }
    }

    #[test]
    fn create_applies_defaults() {
        let d = draft_from_body(
            json!({"destination_did": "+15162065338"}),
            Mode::Create,
            None,
        )
        .unwrap();
        assert_eq!(d.name, "N/A");
        assert_eq!(d.destination_did, "15162065338");
        assert_eq!(d.redirect_did, None);
        assert_eq!(d.maximum_ttl, Ttl::Restart(3600));
        assert_eq!(d.wait_origination_did_ttl, Ttl::Restart(300));
    }

    #[test]
    fn create_requires_destination() {
        let e = draft_from_body(json!({"name": "x"}), Mode::Create, None).unwrap_err();
        assert_eq!(e.field, "destination_did");
    }

    #[test]
    fn patch_keeps_what_it_does_not_name_and_merges_attributes() {
        let cur = sample();
        let j = cur.to_json(1000).as_object().unwrap().clone();
        let d = draft_from_body(
            json!({"maximum_ttl": "1800", "attributes": {"k": null, "cnam": "ACME"}}),
            Mode::Patch {
                replace_nested: false,
            },
            Some((&cur, &j)),
        )
        .unwrap();
        assert_eq!(d.destination_did, cur.destination_did);
        assert_eq!(d.maximum_ttl, Ttl::Restart(1800));
        assert_eq!(d.wait_origination_did_ttl, Ttl::Keep(None));
        assert_eq!(
            Value::Object(d.attributes),
            json!({"ringback": "moh", "cnam": "ACME"})
        );
    }

    #[test]
    fn bad_dtmf_and_ttl_are_named() {
        let e = draft_from_body(
            json!({"destination_did": "15162065338", "dtmf": "12x"}),
            Mode::Create,
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "dtmf");
        let e = draft_from_body(
            json!({"destination_did": "15162065338", "maximum_ttl": 0}),
            Mode::Create,
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "maximum_ttl");
    }

    #[test]
    fn liveness_follows_both_ttls() {
        let mut b = sample();
        assert!(b.is_live(2000));
        assert!(!b.is_live(3_601_000));
        b.wait_expires_at = Some(5000);
        assert!(!b.is_live(5000));
        b.origination_did = Some("15162065339".into());
        assert!(b.is_live(5000));
    }
}
