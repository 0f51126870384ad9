//! Caller-ID rules for the B leg.
//!
//! * default: the caller's number (From and P-Asserted-Identity);
//! * `hide_origination_did`: the redirect DID, no P-Asserted-Identity;
//! * anonymous caller (`anonymous` user, `Privacy: id` (RFC 3323 §4.2) or no
//!   usable number) with `fix_anonymous_cid`: the redirect DID, no PAI;
//!   without it: the anonymous URI of RFC 3323 §4.1.1.3 with `Privacy: id`
//!   and the asserted number in PAI for the trusted trunk (RFC 3325 §7);
//! * `cnam`, when set, is the display name.

use rsipstack::sip::{Request, prelude::HeadersExt};

use super::router::CallRoute;
use crate::sip::message::{header_values, privacy_id};
use crate::sip::number::{header_number, is_anonymous_value};

/// Who is calling, as read from A's INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// E.164 digits from P-Asserted-Identity, else From.
    pub number: Option<String>,
    /// The caller withheld their identity or has no usable number.
    pub anonymous: bool,
}

/// Reads the caller from an INVITE.
pub fn caller_of(req: &Request) -> Caller {
    let from = req
        .from_header()
        .map(|f| f.value().to_string())
        .unwrap_or_default();
    let pai = header_values(req, "P-Asserted-Identity")
        .iter()
        .find_map(|v| header_number(v));
    let number = pai.or_else(|| header_number(&from));
    let anonymous = is_anonymous_value(&from) || privacy_id(req) || number.is_none();
    Caller { number, anonymous }
}

/// The identity we present on the B leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented {
    /// User part of the From URI; `None` = the anonymous URI.
    pub from_user: Option<String>,
    /// Display name (unquoted).
    pub display: Option<String>,
    /// Number asserted in P-Asserted-Identity, if any.
    pub pai: Option<String>,
    /// Send `Privacy: id`.
    pub privacy: bool,
}

/// Applies the binding's caller-ID rules.
pub fn present(route: &CallRoute, caller: &Caller) -> Presented {
    let display = route
        .cnam
        .as_ref()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if route.hide_origination_did || (caller.anonymous && route.fix_anonymous_cid) {
        return Presented {
            from_user: Some(route.redirect_did.clone()),
            display,
            pai: None,
            privacy: false,
        };
    }
    if caller.anonymous {
        return Presented {
            from_user: None,
            display: display.or_else(|| Some("Anonymous".into())),
            pai: caller.number.clone(),
            privacy: true,
        };
    }
    Presented {
        from_user: caller.number.clone(),
        display,
        pai: caller.number.clone(),
        privacy: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(hide: bool, fix: bool) -> CallRoute {
        CallRoute {
            binding_sid: "b".into(),
            redirect_did: "100".into(),
            destination_did: "200".into(),
            hide_origination_did: hide,
            fix_anonymous_cid: fix,
            cnam: Some("Masked".into()),
            sip_headers: vec![],
            media: Default::default(),
        }
    }
    const KNOWN: Caller = Caller {
        number: None,
        anonymous: false,
    };

    #[test]
    fn rules() {
        let known = Caller {
            number: Some("300".into()),
            ..KNOWN
        };
        let p = present(&route(false, false), &known);
        assert_eq!(
            (p.from_user.as_deref(), p.pai.as_deref()),
            (Some("300"), Some("300"))
        );
        assert_eq!(p.display.as_deref(), Some("Masked"));
        let p = present(&route(true, false), &known);
        assert_eq!((p.from_user.as_deref(), p.pai), (Some("100"), None));
        let anon = Caller {
            number: None,
            anonymous: true,
        };
        let p = present(&route(false, true), &anon);
        assert_eq!(p.from_user.as_deref(), Some("100"));
        let p = present(&route(false, false), &anon);
        assert_eq!((p.from_user, p.privacy), (None, true));
    }

    #[test]
    fn reads_caller() {
        let raw = "INVITE sip:100@h SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
From: \"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1\r\nTo: <sip:100@h>\r\nCall-ID: c\r\n\
CSeq: 1 INVITE\r\nP-Asserted-Identity: <tel:+15550100001>\r\nPrivacy: id\r\nContent-Length: 0\r\n\r\n";
        let req = Request::try_from(raw).expect("parse");
        let c = caller_of(&req);
        assert_eq!(c.number.as_deref(), Some("15550100001"));
        assert!(c.anonymous);
    }

    #[test]
    fn request_uri_numbers_survive_rsipstack_round_trip() {
        for (ruri, want) in [
            ("tel:+15162065337", "15162065337"),
            ("sip:+15162065337@192.0.2.1;user=phone", "15162065337"),
            ("sip:15162065337@192.0.2.1:5060", "15162065337"),
        ] {
            let raw = format!(
                "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
From: <tel:5550100001;phone-context=+1>;tag=1\r\nTo: <{ruri}>\r\nCall-ID: c\r\n\
CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
            );
            let req = Request::try_from(raw.as_str()).expect("parse");
            let got = crate::sip::number::uri_number(&req.uri.to_string());
            assert_eq!(got.as_deref(), Some(want), "{ruri} -> {}", req.uri);
            let c = caller_of(&req);
            assert_eq!(c.number.as_deref(), Some("15550100001"));
            assert!(!c.anonymous);
        }
    }
}
