//! The Dialout object (reference, "Dialout Object") and the rules for
//! creating and changing one.

use serde_json::{Map, Value, json};

use super::attributes::{self, Owner};
use super::binding::MAX_TTL;
use super::input::{Body, Given};
use super::{FieldError, format_time, remaining_secs};

/// A scheduled dialout as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Dialout {
    /// Secure ID.
    pub dialout_sid: String,
    /// Owner.
    pub account_sid: String,
    /// The account's DID both parties see.
    pub redirect_did: String,
    /// Called first.
    pub stage_one_destination_did: String,
    /// Called once stage one has answered.
    pub stage_two_destination_did: String,
    /// Built-in and custom attributes.
    pub attributes: Map<String, Value>,
    /// Creation time, ms since the epoch.
    pub date_created: i64,
    /// When the dialout fires, ms since the epoch.
    pub fire_at: i64,
}

impl Dialout {
    /// The API's JSON form at `now_ms`: `delay` reads back as seconds
    /// remaining.
    pub fn to_json(&self, now_ms: i64) -> Value {
        json!({
            "account_sid": self.account_sid,
            "attributes": self.attributes,
            "date_created": format_time(self.date_created),
            "delay": remaining_secs(Some(self.fire_at), now_ms),
            "dialout_sid": self.dialout_sid,
            "redirect_did": self.redirect_did,
            "stage_one_destination_did": self.stage_one_destination_did,
            "stage_two_destination_did": self.stage_two_destination_did,
        })
    }
}

/// The desired state of a dialout after a create, PATCH or PUT.
#[derive(Debug, Clone, PartialEq)]
pub struct DialoutDraft {
    /// Redirect DID; `None`: the store picks one.
    pub redirect_did: Option<String>,
    /// First party.
    pub stage_one_destination_did: String,
    /// Second party.
    pub stage_two_destination_did: String,
    /// Attributes after the merge (with `hide_origination_did` defaulted to
    /// `"true"`).
    pub attributes: Map<String, Value>,
    /// Seconds until it fires, when the write restarts the count; `None`:
    /// keep the current time.
    pub delay: Option<i64>,
    /// Whether the body set `hide_origination_did` away from its default
    /// (true): needs the account permission.
    pub flips_hide_default: bool,
}

/// Reads a request body into the desired dialout state; `mode` as for
/// bindings ([`super::binding::Mode`]).
pub fn draft_from_body(
    body: Value,
    mode: super::binding::Mode,
    current: Option<(&Dialout, &Map<String, Value>)>,
) -> Result<DialoutDraft, FieldError> {
    use super::binding::Mode;
    let mut b = Body::new(body, current.map(|(_, j)| j))?;
    for ro in ["account_sid", "dialout_sid", "date_created"] {
        b.read_only(ro)?;
    }
    let redirect = b.phone("redirect_did")?;
    let one = b.phone("stage_one_destination_did")?;
    let two = b.phone("stage_two_destination_did")?;
    let delay = match b.integer("delay")? {
        Given::Absent => None,
        Given::Null => {
            return Err(FieldError::new(
                "delay",
                "must be a number of seconds, not null",
            ));
        }
        Given::Value(v) if (0..=MAX_TTL).contains(&v) => Some(v),
        Given::Value(_) => {
            return Err(FieldError::new(
                "delay",
                format!("must be 0 to {MAX_TTL} seconds"),
            ));
        }
    };
    let attrs = match b.object("attributes") {
        Given::Absent => None,
        Given::Null => Some(Map::new()),
        Given::Value(v) => Some(attributes::validate(Owner::Dialout, &v)?),
    };
    b.finish()?;

    let flips_hide_default = attrs
        .as_ref()
        .is_some_and(|a| a.get("hide_origination_did").is_some_and(|v| v == "false"));
    let existing = match (mode, current) {
        (Mode::Patch { .. }, Some((cur, _))) => Some(cur),
        _ => None,
    };
    let required = |given: Given<String>, field: &str, cur: Option<&String>| match (given, cur) {
        (Given::Value(v), _) => Ok(v),
        (Given::Absent, Some(c)) => Ok(c.clone()),
        (Given::Null, _) => Err(FieldError::new(field, "is required and cannot be null")),
        (Given::Absent, None) => Err(FieldError::new(field, "is required")),
    };
    let stage_one_destination_did = required(
        one,
        "stage_one_destination_did",
        existing.map(|c| &c.stage_one_destination_did),
    )?;
    let stage_two_destination_did = required(
        two,
        "stage_two_destination_did",
        existing.map(|c| &c.stage_two_destination_did),
    )?;
    if stage_one_destination_did == stage_two_destination_did {
        return Err(FieldError::new(
            "stage_two_destination_did",
            "must differ from stage_one_destination_did",
        ));
    }
    let redirect_did = match (redirect, current) {
        (Given::Value(r), _) => Some(r),
        (Given::Null, _) => {
            return Err(FieldError::new(
                "redirect_did",
                "cannot be null; leave it out to have one picked",
            ));
        }
        (Given::Absent, Some((cur, _))) if mode != Mode::Create => Some(cur.redirect_did.clone()),
        (Given::Absent, _) => None,
    };
    let mut attributes = match (attrs, existing, mode) {
        (Some(a), Some(cur), Mode::Patch { replace_nested }) => {
            attributes::merge(&cur.attributes, &a, replace_nested)
        }
        (Some(a), _, _) => attributes::merge(&Map::new(), &a, true),
        (None, Some(cur), _) => cur.attributes.clone(),
        (None, None, _) => Map::new(),
    };
    attributes
        .entry("hide_origination_did")
        .or_insert_with(|| Value::String("true".into()));
    let delay = match (delay, existing) {
        (Some(d), _) => Some(d),
        (None, Some(_)) => None,
        (None, None) => Some(0),
    };
    Ok(DialoutDraft {
        redirect_did,
        stage_one_destination_did,
        stage_two_destination_did,
        attributes,
        delay,
        flips_hide_default,
    })
}

#[cfg(test)]
mod tests {
    use super::super::binding::Mode;
    use super::*;

    #[test]
    fn create_defaults_hide_to_true_and_delay_to_zero() {
        let d = draft_from_body(
            json!({"stage_one_destination_did": "15162065339", "stage_two_destination_did": "15162065338", "attributes": {"ringback": "false"}}),
            Mode::Create,
            None,
        )
        .unwrap();
        assert_eq!(d.attributes["hide_origination_did"], json!("true"));
        assert_eq!(d.delay, Some(0));
        assert!(!d.flips_hide_default);
    }

    #[test]
    fn flipping_hide_is_noticed_and_fields_are_named() {
        let d = draft_from_body(
            json!({"stage_one_destination_did": "15162065339", "stage_two_destination_did": "15162065338", "attributes": {"hide_origination_did": false}}),
            Mode::Create,
            None,
        )
        .unwrap();
        assert!(d.flips_hide_default);
        let e = draft_from_body(
            json!({"stage_one_destination_did": "15162065339"}),
            Mode::Create,
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "stage_two_destination_did");
        let e = draft_from_body(
            json!({"stage_one_destination_did": "15162065339", "stage_two_destination_did": "15162065338", "delay": "soon"}),
            Mode::Create,
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "delay");
    }
}
