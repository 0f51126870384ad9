//! Retries of an INVITE we send to the trunk after a final failure
//! response: a 3xx is followed to its Contacts (RFC 3261 §8.1.3.4), a
//! 401/407 answered with digest credentials (§22.2), a 422 retried with the
//! larger interval (RFC 4028 §7.4). [`Retries::next`] decides; the retried
//! INVITE itself is built by [`super::legs::retry_invite`]. Used by the B
//! leg of binding calls; the state lives with the leg, so other outbound
//! legs can use it the same way.

use rsipstack::sip::{Header, Request, Response, Uri};
use tracing::{info, warn};

use super::legs::redirect_targets;
use crate::sip::ValidSipConfig;
use crate::sip::digest::{Challenge, DigestInput};
use crate::sip::message::{code_of, header_values};

/// How many times one leg answers a 422 (RFC 4028 §7.4); each retry must
/// also ask for a larger interval than the one before.
pub const MAX_422_RETRIES: u32 = 2;

/// How many times a challenge marked `stale=true` is answered again after
/// our credentials (RFC 2617 §3.2.1: the nonce was old, the credentials
/// good).
pub const MAX_STALE_RETRIES: u32 = 1;

/// What to do after a final failure response.
#[derive(Debug, PartialEq)]
pub enum Retry {
    /// Send the INVITE again (to the trunk), with this Request-URI if any
    /// and these headers replacing their namesakes.
    Again(Option<Uri>, Vec<Header>),
    /// Give up: the caller gets `map_b_failure` of the response's code.
    Fail,
}

/// One outbound INVITE's retries: what is left to try and what was used.
#[derive(Debug, Default)]
pub struct Retries {
    /// Redirect targets not tried yet, in the order they will be tried.
    targets: Vec<Uri>,
    /// Request-URIs already tried (a target is never tried twice).
    tried: Vec<String>,
    /// Redirect targets tried (bounded by `sip.max_redirects`).
    redirects: u32,
    /// Whether we answered a 401 / a 407 with credentials.
    answered_401: bool,
    answered_407: bool,
    /// Challenges answered again because they were `stale=true`.
    stale: u32,
    /// 422s answered.
    after_422: u32,
    /// The Session-Expires of the current INVITE, seconds.
    session_expires: u32,
}

impl Retries {
    /// No retry yet; the first INVITE asked for `session_expires` seconds.
    pub fn new(session_expires: u32) -> Self {
        Retries {
            session_expires,
            ..Retries::default()
        }
    }

    /// The Session-Expires the current INVITE asked for (larger after a 422).
    pub fn session_expires(&self) -> u32 {
        self.session_expires
    }

    /// Decides whether the final failure `resp` to `invite` is retried, and
    /// records the retry. Bounded: redirects by `sip.max_redirects`, each
    /// challenge kind answered once (plus [`MAX_STALE_RETRIES`]), 422 at most
    /// [`MAX_422_RETRIES`] times and only for a larger Min-SE.
    pub fn next(&mut self, cfg: &ValidSipConfig, invite: &Request, resp: &Response) -> Retry {
        let code = code_of(resp);
        match code {
            401 | 407 => self.challenge(cfg, invite, resp, code),
            422 => self.too_small(resp),
            300..=599 => self.redirect(cfg, resp, code),
            _ => Retry::Fail,
        }
    }

    fn challenge(
        &mut self,
        cfg: &ValidSipConfig,
        invite: &Request,
        resp: &Response,
        code: u16,
    ) -> Retry {
        let Some(creds) = cfg.trunk_credentials.as_ref() else {
            info!(
                status = code,
                "trunk challenge, but no sip.trunk_username configured"
            );
            return Retry::Fail;
        };
        let (challenge_name, answered) = if code == 401 {
            ("WWW-Authenticate", &mut self.answered_401)
        } else {
            ("Proxy-Authenticate", &mut self.answered_407)
        };
        let values = header_values(resp, challenge_name);
        let challenge = match Challenge::pick(values.iter().map(String::as_str)) {
            Ok(c) => c,
            Err(e) => {
                warn!(status = code, error = %e, "trunk challenge cannot be answered");
                return Retry::Fail;
            }
        };
        if *answered {
            if !challenge.stale || self.stale >= MAX_STALE_RETRIES {
                info!(status = code, "trunk refused our credentials");
                return Retry::Fail;
            }
            self.stale += 1;
        }
        *answered = true;
        let uri = invite.uri.to_string();
        let value = challenge.authorization(&DigestInput {
            username: &creds.username,
            password: creds.password.expose(),
            method: "INVITE",
            uri: &uri,
            body: &invite.body,
        });
        info!(status = code, realm = %challenge.realm, algorithm = challenge.algorithm.token(), "answering the trunk's challenge");
        let header = if code == 401 {
            Header::Authorization(value.into())
        } else {
            Header::ProxyAuthorization(value.into())
        };
        Retry::Again(None, vec![header])
    }

    fn too_small(&mut self, resp: &Response) -> Retry {
        let asked = self.session_expires;
        match super::session_timer::after_422(resp, asked) {
            Some(larger) if self.after_422 < MAX_422_RETRIES => {
                self.after_422 += 1;
                self.session_expires = larger;
                info!(
                    asked,
                    min_se = larger,
                    "422 from the trunk: retrying with its Min-SE"
                );
                Retry::Again(
                    None,
                    vec![
                        Header::Other("Session-Expires".into(), larger.to_string()),
                        Header::Other("Min-SE".into(), larger.to_string()),
                    ],
                )
            }
            _ => {
                info!(asked, "422 from the trunk without a larger Min-SE");
                Retry::Fail
            }
        }
    }

    /// 300-302: their Contacts become targets; another failure after a
    /// redirect: the next target.
    fn redirect(&mut self, cfg: &ValidSipConfig, resp: &Response, code: u16) -> Retry {
        if (300..=302).contains(&code) {
            // A newer redirect's Contacts go before the older ones left.
            let mut fresh: Vec<Uri> = redirect_targets(resp)
                .into_iter()
                .filter(|u| {
                    let s = u.to_string();
                    !self.tried.contains(&s) && !self.targets.iter().any(|t| t.to_string() == s)
                })
                .collect();
            fresh.append(&mut self.targets);
            self.targets = fresh;
        } else if code < 400 || self.redirects == 0 {
            // 305, 380 and others are not followed; a failure of the first
            // Request-URI is the callee's answer.
            return Retry::Fail;
        }
        if self.targets.is_empty() {
            return Retry::Fail;
        }
        if self.redirects >= cfg.max_redirects {
            info!(
                status = code,
                max = cfg.max_redirects,
                "redirect limit reached"
            );
            return Retry::Fail;
        }
        let next = self.targets.remove(0);
        self.redirects += 1;
        self.tried.push(next.to_string());
        // A new target may challenge again.
        self.answered_401 = false;
        self.answered_407 = false;
        info!(status = code, target = %next, "following the redirect");
        Retry::Again(Some(next), vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::config::{Secret, SipConfig};

    fn cfg(max_redirects: u32, creds: bool) -> ValidSipConfig {
        SipConfig {
            listen: vec!["udp:127.0.0.1:5060".into()],
            max_redirects,
            trunk_username: if creds { "u".into() } else { String::new() },
            trunk_password: Secret::new(if creds { "p" } else { "" }),
            ..SipConfig::default()
        }
        .validate()
        .expect("config")
    }

    fn invite() -> Request {
        Request::try_from(
            "INVITE sip:200@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa\r\n\
From: <sip:300@h>;tag=f\r\nTo: <sip:200@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("invite")
    }

    fn resp(status: &str, headers: &str) -> Response {
        Response::try_from(format!(
            "SIP/2.0 {status}\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa\r\n\
From: <sip:300@h>;tag=f\r\nTo: <sip:200@h>;tag=t\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{headers}Content-Length: 0\r\n\r\n"
        ).as_str())
        .expect("response")
    }

    fn target(r: Retry) -> String {
        match r {
            Retry::Again(Some(u), _) => u.to_string(),
            other => panic!("expected a redirect, got {other:?}"),
        }
    }

    #[test]
    fn redirects_in_q_order_up_to_the_limit() {
        let (c, inv) = (cfg(2, false), invite());
        let mut r = Retries::new(1800);
        let three = resp(
            "302 Moved",
            "Contact: <sip:a@192.0.2.1>;q=0.2, <sip:b@192.0.2.2>;q=0.7\r\n",
        );
        assert_eq!(target(r.next(&c, &inv, &three)), "sip:b@192.0.2.2");
        // The target fails: the next one.
        assert_eq!(
            target(r.next(&c, &inv, &resp("486 Busy", ""))),
            "sip:a@192.0.2.1"
        );
        // Limit (2) reached.
        let more = resp("302 Moved", "Contact: <sip:c@192.0.2.3>\r\n");
        assert_eq!(r.next(&c, &inv, &more), Retry::Fail);
    }

    #[test]
    fn redirects_off_6xx_and_first_failure_are_final() {
        let inv = invite();
        let three = resp(
            "302 Moved",
            "Contact: <sip:a@192.0.2.1>, <sip:b@192.0.2.2>\r\n",
        );
        assert_eq!(
            Retries::new(1800).next(&cfg(0, false), &inv, &three),
            Retry::Fail
        );
        let c = cfg(3, false);
        assert_eq!(
            Retries::new(1800).next(&c, &inv, &resp("486 Busy", "")),
            Retry::Fail
        );
        let mut r = Retries::new(1800);
        assert_eq!(target(r.next(&c, &inv, &three)), "sip:a@192.0.2.1");
        assert_eq!(
            r.next(&c, &inv, &resp("600 Busy Everywhere", "")),
            Retry::Fail
        );
        // No usable Contact, and 305 is not followed.
        let mut r = Retries::new(1800);
        let mail = resp("302 Moved", "Contact: <mailto:x@y>\r\n");
        assert_eq!(r.next(&c, &inv, &mail), Retry::Fail);
        let proxy = resp("305 Use Proxy", "Contact: <sip:p@192.0.2.9>\r\n");
        assert_eq!(Retries::new(1800).next(&c, &inv, &proxy), Retry::Fail);
        // A Contact already tried is not tried again.
        let mut r = Retries::new(1800);
        let one = resp("302 Moved", "Contact: <sip:a@192.0.2.1>\r\n");
        assert_eq!(target(r.next(&c, &inv, &one)), "sip:a@192.0.2.1");
        assert_eq!(r.next(&c, &inv, &one), Retry::Fail);
    }

    #[test]
    fn challenges_answered_once_each() {
        let inv = invite();
        let www = resp(
            "401 Unauthorized",
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"n1\", qop=\"auth\"\r\n",
        );
        let proxy = resp(
            "407 Proxy Authentication Required",
            "Proxy-Authenticate: Digest realm=\"r\", nonce=\"n2\", algorithm=SHA-256\r\n",
        );
        assert_eq!(
            Retries::new(1800).next(&cfg(3, false), &inv, &www),
            Retry::Fail
        );
        let c = cfg(3, true);
        let mut r = Retries::new(1800);
        match r.next(&c, &inv, &proxy) {
            Retry::Again(None, h) => {
                assert!(matches!(&h[..], [Header::ProxyAuthorization(_)]));
                let v = h[0].value().to_string();
                assert!(
                    v.contains("algorithm=SHA-256") && v.contains("nonce=\"n2\""),
                    "{v}"
                );
                assert!(!v.contains("\"p\""), "no password on the wire: {v}");
            }
            other => panic!("{other:?}"),
        }
        match r.next(&c, &inv, &www) {
            Retry::Again(None, h) => assert!(matches!(&h[..], [Header::Authorization(_)])),
            other => panic!("{other:?}"),
        }
        // A second 401: our credentials were refused.
        assert_eq!(r.next(&c, &inv, &www), Retry::Fail);
        // stale=true: answered once more, not twice.
        let stale = resp(
            "401 Unauthorized",
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"n3\", stale=true\r\n",
        );
        let mut r = Retries::new(1800);
        assert!(matches!(r.next(&c, &inv, &www), Retry::Again(..)));
        assert!(matches!(r.next(&c, &inv, &stale), Retry::Again(..)));
        assert_eq!(r.next(&c, &inv, &stale), Retry::Fail);
        // A challenge we cannot answer.
        let basic = resp(
            "401 Unauthorized",
            "WWW-Authenticate: Basic realm=\"r\"\r\n",
        );
        assert_eq!(Retries::new(1800).next(&c, &inv, &basic), Retry::Fail);
    }

    #[test]
    fn a_422_is_retried_with_a_larger_interval_only() {
        let (c, inv) = (cfg(3, false), invite());
        let mut r = Retries::new(1800);
        match r.next(
            &c,
            &inv,
            &resp("422 Session Interval Too Small", "Min-SE: 3600\r\n"),
        ) {
            Retry::Again(None, h) => {
                let s: Vec<String> = h.iter().map(|h| h.to_string()).collect();
                assert_eq!(s, ["Session-Expires: 3600", "Min-SE: 3600"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.session_expires(), 3600);
        let same = resp("422 Session Interval Too Small", "Min-SE: 3600\r\n");
        assert_eq!(r.next(&c, &inv, &same), Retry::Fail);
        let larger = resp("422 Session Interval Too Small", "Min-SE: 7200\r\n");
        assert!(matches!(r.next(&c, &inv, &larger), Retry::Again(..)));
        let largest = resp("422 Session Interval Too Small", "Min-SE: 9000\r\n");
        assert_eq!(r.next(&c, &inv, &largest), Retry::Fail, "at most two");
        let none = resp("422 Session Interval Too Small", "");
        assert_eq!(Retries::new(1800).next(&c, &inv, &none), Retry::Fail);
    }
}
