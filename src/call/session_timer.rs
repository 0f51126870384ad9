//! RFC 4028 session timers, per leg. Mediator terminates the extension on
//! each leg on its own (as a B2BUA it is the UAS of A's dialog and the UAC
//! of B's): it negotiates an interval and a refresher with each party, sends
//! the refreshes it owes, and ends the call on both legs when a refresh it
//! expects does not come or one it sends fails.
//!
//! This module holds the negotiation rules; the call (`binding.rs`) runs
//! the timers.

use std::time::Duration;

use rsipstack::sip::Header;
use rsipstack::sip::prelude::HeadersExt;

use crate::sip::message::header_value;

/// The smallest Session-Expires and Min-SE RFC 4028 allows, in seconds
/// (§4, §5).
pub const RFC_MIN_SE: u32 = 90;

/// Our session timer settings (`[sip]` `session_expires_secs`,
/// `min_se_secs`), in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// The interval we ask for (Session-Expires of our INVITEs), seconds.
    pub session_expires: u32,
    /// The smallest interval we accept (our Min-SE), seconds, at least 90.
    pub min_se: u32,
}

/// The refresher role as the `refresher` parameter names it (§4): the UAC
/// or the UAS of the transaction that negotiated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `refresher=uac`.
    Uac,
    /// `refresher=uas`.
    Uas,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Uac => "uac",
            Role::Uas => "uas",
        }
    }
}

/// A parsed Session-Expires value: `delta-seconds *(;param)` (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionExpires {
    /// The interval, seconds.
    pub delta: u32,
    /// The `refresher` parameter, when present.
    pub refresher: Option<Role>,
}

/// Who sends the refreshes on one leg, from Mediator's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// Mediator refreshes (re-INVITE at half the interval, §7.4, §10).
    Us,
    /// The party refreshes; without a refresh before the interval ends, the
    /// session is over (§10).
    Peer,
}

/// The session timer in force on one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegTimer {
    /// The session interval, seconds.
    pub interval: u32,
    /// Who refreshes.
    pub refresher: Refresher,
    /// Whether the party supports the extension (`Supported: timer` or
    /// `Require: timer`): then our 2xx carries `Require: timer` (§9).
    pub peer_supports: bool,
}

impl LegTimer {
    /// When the refresher sends its refresh: half the interval (§10).
    pub fn refresh_after(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval / 2).max(1))
    }

    /// When the side that does not refresh gives up on the session: the
    /// interval minus min(32, interval/3) seconds (§10).
    pub fn expire_after(&self) -> Duration {
        let margin = 32.min(self.interval / 3);
        Duration::from_secs(u64::from(self.interval.saturating_sub(margin)).max(1))
    }

    /// The Session-Expires value for a message where Mediator is the UAC
    /// (`we_are_uac`) or the UAS of the transaction.
    fn value(&self, we_are_uac: bool) -> String {
        let role = match (self.refresher, we_are_uac) {
            (Refresher::Us, true) | (Refresher::Peer, false) => Role::Uac,
            (Refresher::Us, false) | (Refresher::Peer, true) => Role::Uas,
        };
        format!("{};refresher={}", self.interval, role.as_str())
    }

    /// Headers of our 2xx to a party's INVITE or UPDATE (§9): Session-Expires
    /// with the refresher, and `Require: timer` when the party supports it.
    pub fn response_headers(&self) -> Vec<Header> {
        let mut h = vec![Header::Other("Session-Expires".into(), self.value(false))];
        if self.peer_supports {
            h.push(Header::Require("timer".into()));
        }
        h
    }

    /// Headers of a session refresh or other re-INVITE we send on the leg
    /// (§7.4, §8): Session-Expires with the current refresher, our Min-SE
    /// and `Supported: timer`.
    pub fn request_headers(&self, min_se: u32) -> Vec<Header> {
        vec![
            Header::Other("Session-Expires".into(), self.value(true)),
            Header::Other("Min-SE".into(), min_se.to_string()),
            Header::Supported("timer".into()),
        ]
    }
}

/// Reads a Session-Expires value (long or compact form `x`, §4).
pub fn session_expires<M: HeadersExt>(msg: &M) -> Option<SessionExpires> {
    let v = header_value(msg, "Session-Expires").or_else(|| header_value(msg, "x"))?;
    let mut parts = v.split(';');
    let delta = parts.next()?.trim().parse::<u32>().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("refresher") {
            return None;
        }
        match v.trim().to_ascii_lowercase().as_str() {
            "uac" => Some(Role::Uac),
            "uas" => Some(Role::Uas),
            _ => None,
        }
    });
    Some(SessionExpires { delta, refresher })
}

/// Reads a Min-SE value, seconds (§5).
pub fn min_se<M: HeadersExt>(msg: &M) -> Option<u32> {
    header_value(msg, "Min-SE")?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether the message lists `timer` in Supported or Require (`k:` is the
/// compact form of Supported).
pub fn supports_timer<M: HeadersExt>(msg: &M) -> bool {
    ["Supported", "k", "Require"].iter().any(|name| {
        crate::sip::message::header_values(msg, name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("timer"))
    })
}

/// Mediator as UAS of a party's INVITE or UPDATE (§9). `Err(min_se)`: the
/// interval asked for is below what we accept, answer 422 with that Min-SE
/// (§9, first paragraph). Otherwise the timer to run on that leg:
///
/// - the party's Session-Expires, raised to the larger Min-SE of the two and
///   lowered to ours when it is longer (a UAS may shorten it, never below
///   Min-SE);
/// - refresher: the party's choice; unset, the party refreshes when it
///   supports timers, else we do (§9: a UAC without support can not);
/// - no Session-Expires: we still run the timer at our interval and
///   refresh ourselves (§9 lets a UAS do so even towards a UAC without the
///   extension); a supporting party is asked to refresh.
pub fn as_uas<M: HeadersExt>(req: &M, cfg: &TimerConfig) -> Result<LegTimer, u32> {
    let supports = supports_timer(req);
    let floor = min_se(req).unwrap_or(RFC_MIN_SE).max(cfg.min_se);
    match session_expires(req) {
        Some(se) => {
            if se.delta < cfg.min_se {
                return Err(floor);
            }
            let interval = se.delta.min(cfg.session_expires.max(floor));
            let refresher = match se.refresher {
                Some(Role::Uac) => Refresher::Peer,
                Some(Role::Uas) => Refresher::Us,
                None if supports => Refresher::Peer,
                None => Refresher::Us,
            };
            Ok(LegTimer {
                interval,
                refresher: if supports { refresher } else { Refresher::Us },
                peer_supports: supports,
            })
        }
        None => Ok(LegTimer {
            interval: cfg.session_expires.max(floor),
            refresher: if supports {
                Refresher::Peer
            } else {
                Refresher::Us
            },
            peer_supports: supports,
        }),
    }
}

/// Headers of our initial INVITE on a leg where Mediator is the UAC (§7.1):
/// Session-Expires (the refresher left to the UAS), Min-SE and
/// `Supported: timer`. `interval` is ours, or larger after a 422.
pub fn invite_headers(interval: u32, cfg: &TimerConfig) -> Vec<Header> {
    vec![
        Header::Other("Session-Expires".into(), interval.to_string()),
        Header::Other("Min-SE".into(), cfg.min_se.to_string()),
    ]
}

/// Mediator as UAC, after the 2xx to its INVITE with `asked` seconds
/// (§7.2): the 2xx's Session-Expires decides; without one the party does
/// not do session timers and we refresh at our own interval.
pub fn as_uac<M: HeadersExt>(resp: &M, asked: u32) -> LegTimer {
    match session_expires(resp) {
        Some(se) => LegTimer {
            interval: se.delta.max(RFC_MIN_SE),
            refresher: match se.refresher {
                Some(Role::Uas) => Refresher::Peer,
                _ => Refresher::Us,
            },
            peer_supports: true,
        },
        None => LegTimer {
            interval: asked,
            refresher: Refresher::Us,
            peer_supports: false,
        },
    }
}

/// The interval to retry with after a 422 (§7.3): the response's Min-SE,
/// if it is larger than what we asked; `None` when the 422 gives no usable
/// Min-SE (then the call fails).
pub fn after_422<M: HeadersExt>(resp: &M, asked: u32) -> Option<u32> {
    min_se(resp).filter(|&m| m > asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::sip::Request;

    fn req(headers: &str) -> Request {
        let text = format!(
            "INVITE sip:1@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:1@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(text.as_str()).expect("test request parses")
    }

    const CFG: TimerConfig = TimerConfig {
        session_expires: 1800,
        min_se: 90,
    };

    #[test]
    fn parses_long_and_compact_forms() {
        let r = req("Session-Expires: 300;refresher=uas\r\nMin-SE: 120\r\n");
        assert_eq!(
            session_expires(&r),
            Some(SessionExpires {
                delta: 300,
                refresher: Some(Role::Uas)
            })
        );
        assert_eq!(min_se(&r), Some(120));
        let r = req("x: 400\r\nk: timer, 100rel\r\n");
        assert_eq!(session_expires(&r).map(|s| s.delta), Some(400));
        assert!(supports_timer(&r));
        assert_eq!(session_expires(&req("Session-Expires: soon\r\n")), None);
    }

    #[test]
    fn uas_rejects_a_short_interval_with_422() {
        let r = req("Session-Expires: 60\r\nSupported: timer\r\n");
        assert_eq!(as_uas(&r, &CFG), Err(90));
        let cfg = TimerConfig {
            session_expires: 1800,
            min_se: 300,
        };
        assert_eq!(as_uas(&req("Session-Expires: 200\r\n"), &cfg), Err(300));
    }

    #[test]
    fn uas_takes_the_parties_interval_and_refresher() {
        let t = as_uas(
            &req("Session-Expires: 120;refresher=uac\r\nSupported: timer\r\n"),
            &CFG,
        )
        .expect("accepted");
        assert_eq!(t.interval, 120);
        assert_eq!(t.refresher, Refresher::Peer);
        assert!(t.peer_supports);
        let h = t.response_headers();
        assert_eq!(h[0].to_string(), "Session-Expires: 120;refresher=uac");
        assert_eq!(h[1].to_string(), "Require: timer");
        // A longer interval than ours is shortened to ours.
        let t =
            as_uas(&req("Session-Expires: 7200\r\nSupported: timer\r\n"), &CFG).expect("accepted");
        assert_eq!((t.interval, t.refresher), (1800, Refresher::Peer));
    }

    #[test]
    fn uas_refreshes_itself_for_a_party_without_the_extension() {
        let t = as_uas(&req(""), &CFG).expect("accepted");
        assert_eq!((t.interval, t.refresher), (1800, Refresher::Us));
        assert!(!t.peer_supports);
        assert_eq!(t.response_headers().len(), 1, "no Require: timer");
        assert_eq!(
            t.response_headers()[0].to_string(),
            "Session-Expires: 1800;refresher=uas"
        );
        // A Session-Expires without Supported: timer: the party cannot refresh.
        let t = as_uas(&req("Session-Expires: 600;refresher=uac\r\n"), &CFG).expect("accepted");
        assert_eq!(t.refresher, Refresher::Us);
    }

    #[test]
    fn timing() {
        let t = LegTimer {
            interval: 90,
            refresher: Refresher::Us,
            peer_supports: true,
        };
        assert_eq!(t.refresh_after(), Duration::from_secs(45));
        assert_eq!(t.expire_after(), Duration::from_secs(60));
        let t = LegTimer {
            interval: 1800,
            ..t
        };
        assert_eq!(t.expire_after(), Duration::from_secs(1768));
    }

    #[test]
    fn uac_reads_the_answer() {
        let r = req("Session-Expires: 90;refresher=uas\r\n");
        let t = as_uac(&r, 1800);
        assert_eq!((t.interval, t.refresher), (90, Refresher::Peer));
        let t = as_uac(&req(""), 1800);
        assert_eq!((t.interval, t.refresher), (1800, Refresher::Us));
        assert_eq!(
            t.request_headers(90)[0].to_string(),
            "Session-Expires: 1800;refresher=uac"
        );
        assert_eq!(after_422(&req("Min-SE: 300\r\n"), 1800), None);
        assert_eq!(after_422(&req("Min-SE: 3600\r\n"), 1800), Some(3600));
    }
}
