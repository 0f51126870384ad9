//! Reliable provisional responses (RFC 3262, option tag `100rel`, PRACK),
//! on each leg on its own: Mediator is the UAC of the B leg's INVITE and
//! the UAS of A's, so RSeq and RAck never cross the B2BUA (field case
//! BC-10: `Require` and `RSeq` are per hop).
//!
//! - **UAC side** ([`ReliableUac`]): a 1xx from the trunk with
//!   `Require: 100rel` and an `RSeq` is acknowledged with a PRACK in the
//!   early dialog it made ([`prack`]), once per RSeq; a retransmission or a
//!   response out of order is not processed (§4).
//! - **UAS side** ([`ReliableUas`]): to a caller that requires `100rel`
//!   our 18x go reliably, one at a time, retransmitted at T1 doubling
//!   until the PRACK comes, given up after 64*T1 (§3).
//!
//! This module keeps the bookkeeping and the schedule; the call
//! (`binding.rs`) sends what it says and runs its timer.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use rsipstack::sip::{Header, Method, Request, Response, prelude::HeadersExt};
use tokio::time::Instant;

use crate::sip::SipError;
use crate::sip::dialog::LegDialog;
use crate::sip::message::{header_values, tag_of};

/// The option tag of RFC 3262 (§10).
pub const TAG: &str = "100rel";

/// RFC 3261 Timer T1 (an RTT estimate), the first retransmission interval
/// of a reliable provisional response (RFC 3262 §3).
pub const T1: Duration = Duration::from_millis(500);

/// How long a reliable provisional response is retransmitted without a
/// PRACK before the INVITE is rejected: 64*T1, 32 s (RFC 3262 §3).
pub const GIVE_UP: Duration = Duration::from_millis(64 * 500);

/// Why a PRACK is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrackError {
    /// No RAck header, or one that is not `RSeq CSeq Method` (RFC 3262
    /// §7.2): 400.
    #[error("PRACK without a well-formed RAck")]
    NoRAck,
    /// The RAck names no unacknowledged reliable provisional response:
    /// 481 (RFC 3262 §3).
    #[error("PRACK matches no unacknowledged reliable provisional response")]
    NoMatch,
}

impl PrackError {
    /// The status code the PRACK is answered with.
    pub fn status(&self) -> u16 {
        match self {
            PrackError::NoRAck => 400,
            PrackError::NoMatch => 481,
        }
    }
}

fn has_tag<M: HeadersExt>(msg: &M, header: &str) -> bool {
    header_values(msg, header)
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(TAG))
}

/// Whether a message requires `100rel` (its `Require` lists it).
pub fn requires_100rel<M: HeadersExt>(msg: &M) -> bool {
    has_tag(msg, "Require")
}

/// Whether the caller's INVITE gets reliable 18x from us. Only when it
/// requires `100rel`: RFC 3262 §3 lets a UAS send reliably when the UAC
/// merely supports it, but phones and carriers that list it in `Supported`
/// expect ordinary 18x unless they ask (docs/call-flows.md).
pub fn caller_gets_reliable(invite: &Request) -> bool {
    requires_100rel(invite)
}

/// The RSeq of a response, when it has a valid one (1 to 2^31-1, §7.1).
pub fn rseq_of(resp: &Response) -> Option<u32> {
    header_values(resp, "RSeq")
        .first()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| (1..=0x7fff_ffff).contains(n))
}

/// The RAck of a PRACK: (RSeq, CSeq number, method) (RFC 3262 §7.2).
pub fn rack_of(req: &Request) -> Option<(u32, u32, Method)> {
    let v = header_values(req, "RAck").into_iter().next()?;
    let mut parts = v.split_whitespace();
    let rseq = parts.next()?.parse().ok()?;
    let cseq = parts.next()?.parse().ok()?;
    let method = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((rseq, cseq, method))
}

/// What a provisional response from the peer is, for the UAC (§4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisional {
    /// Not reliable (no `Require: 100rel`, or no valid RSeq): processed as
    /// RFC 3261 says, no PRACK.
    Unreliable,
    /// The next reliable response of its early dialog: PRACK it with this
    /// RSeq, then process it.
    New(u32),
    /// A retransmission, or out of order (its RSeq is not one above the
    /// last in-order one): no PRACK, not processed.
    Stale,
}

/// The UAC's record of reliable provisional responses: the last in-order
/// RSeq of each early dialog (by the peer's To tag, so each fork of a
/// forking proxy has its own sequence space).
#[derive(Debug, Default)]
pub struct ReliableUac {
    last: HashMap<String, u32>,
}

impl ReliableUac {
    /// Classifies a 1xx (not 100) and, when it is [`Provisional::New`],
    /// records its RSeq.
    pub fn classify(&mut self, resp: &Response) -> Provisional {
        if !requires_100rel(resp) {
            return Provisional::Unreliable;
        }
        let Some(rseq) = rseq_of(resp) else {
            return Provisional::Unreliable;
        };
        let tag = resp
            .to_header()
            .ok()
            .and_then(|t| tag_of(t.value()))
            .unwrap_or_default();
        match self.last.get(&tag) {
            Some(&last) if last.checked_add(1) != Some(rseq) => Provisional::Stale,
            _ => {
                self.last.insert(tag, rseq);
                Provisional::New(rseq)
            }
        }
    }
}

/// The RAck value acknowledging response `rseq` to request `cseq method`.
pub fn rack(rseq: u32, cseq: u32, method: Method) -> String {
    format!("{rseq} {cseq} {method}")
}

/// The PRACK for the reliable response `rseq` to the INVITE numbered
/// `invite_cseq`, in the early dialog `early` (made from that response:
/// its To tag, its Contact as the Request-URI, its Record-Route as the
/// route set; RFC 3262 §4, RFC 3261 §12.1.2). Takes the dialog's next CSeq.
pub fn prack(early: &mut LegDialog, rseq: u32, invite_cseq: u32) -> Result<Request, SipError> {
    let mut req = early.request(Method::PRack)?;
    req.headers
        .push(Header::RAck(rack(rseq, invite_cseq, Method::Invite).into()));
    Ok(req)
}

struct Outstanding {
    rseq: u32,
    response: Response,
    interval: Duration,
    next: Instant,
    give_up: Instant,
}

/// What the retransmission timer says (see [`ReliableUas::on_timer`]).
#[derive(Debug)]
pub enum Tick {
    /// Nothing due.
    Idle,
    /// Send this response again.
    Retransmit(Box<Response>),
    /// No PRACK for 64*T1: reject the INVITE with a 5xx (§3).
    GiveUp,
}

/// The UAS side towards a caller that requires `100rel`: numbers our 18x
/// (RSeq from a random start, +1 each), keeps at most one unacknowledged
/// (§3: the next waits for the PRACK of the previous), and runs its
/// retransmission schedule.
pub struct ReliableUas {
    invite_cseq: u32,
    next_rseq: u32,
    outstanding: Option<Outstanding>,
    queue: VecDeque<Response>,
}

impl ReliableUas {
    /// For the INVITE numbered `invite_cseq`, first RSeq `first_rseq`.
    pub fn new(invite_cseq: u32, first_rseq: u32) -> Self {
        ReliableUas {
            invite_cseq,
            next_rseq: first_rseq.clamp(1, 0x7fff_ffff),
            outstanding: None,
            queue: VecDeque::new(),
        }
    }

    /// A random first RSeq, 1 to 2^30 so that it cannot wrap (§3 asks for
    /// 1 to 2^31-1).
    pub fn random_first_rseq() -> u32 {
        rand::random_range(1..=1u32 << 30)
    }

    /// Takes an 18x for the caller: returns it stamped (`Require: 100rel`,
    /// `RSeq`) to send now, or `None` when it waits behind an
    /// unacknowledged one.
    pub fn send(&mut self, resp: Response, now: Instant) -> Option<Response> {
        if self.outstanding.is_some() {
            self.queue.push_back(resp);
            return None;
        }
        Some(self.start(resp, now))
    }

    fn start(&mut self, mut resp: Response, now: Instant) -> Response {
        let rseq = self.next_rseq;
        self.next_rseq = self.next_rseq.saturating_add(1);
        resp.headers.push(Header::Require(TAG.into()));
        resp.headers.push(Header::RSeq(rseq.to_string().into()));
        self.outstanding = Some(Outstanding {
            rseq,
            response: resp.clone(),
            interval: T1,
            next: now + T1,
            give_up: now + GIVE_UP,
        });
        resp
    }

    /// When [`on_timer`](Self::on_timer) is next due, if anything is
    /// outstanding.
    pub fn deadline(&self) -> Option<Instant> {
        self.outstanding.as_ref().map(|o| o.next.min(o.give_up))
    }

    /// Runs the schedule at `now`: a retransmission (intervals T1, 2*T1,
    /// 4*T1, ...) or, 64*T1 after the first send, giving up.
    pub fn on_timer(&mut self, now: Instant) -> Tick {
        let Some(o) = self.outstanding.as_mut() else {
            return Tick::Idle;
        };
        if now >= o.give_up {
            self.clear();
            return Tick::GiveUp;
        }
        if now < o.next {
            return Tick::Idle;
        }
        o.interval *= 2;
        o.next = now + o.interval;
        Tick::Retransmit(Box::new(o.response.clone()))
    }

    /// A PRACK from the caller. When its RAck names the outstanding
    /// response, that one is acknowledged (answer the PRACK 200) and the
    /// next queued 18x, if any, is returned stamped to send now.
    pub fn on_prack(
        &mut self,
        prack: &Request,
        now: Instant,
    ) -> Result<Option<Response>, PrackError> {
        let (rseq, cseq, method) = rack_of(prack).ok_or(PrackError::NoRAck)?;
        let matches = self.outstanding.as_ref().is_some_and(|o| o.rseq == rseq)
            && cseq == self.invite_cseq
            && method == Method::Invite;
        if !matches {
            return Err(PrackError::NoMatch);
        }
        self.outstanding = None;
        Ok(self.queue.pop_front().map(|r| self.start(r, now)))
    }

    /// True when no reliable response waits for its PRACK: a 2xx may go
    /// (we hold the 2xx until then).
    pub fn settled(&self) -> bool {
        self.outstanding.is_none() && self.queue.is_empty()
    }

    /// Stops everything (a final response was sent).
    pub fn clear(&mut self) {
        self.outstanding = None;
        self.queue.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(code: u16, extra: &str) -> Response {
        let raw = format!(
            "SIP/2.0 {code} Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb\r\n\
From: <sip:300@h>;tag=ours\r\nTo: <sip:200@h>;tag=theirs\r\nCall-ID: cb\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:bob@192.0.2.9:5099>\r\nRecord-Route: <sip:192.0.2.7;lr>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        Response::try_from(raw.as_str()).expect("parse")
    }

    fn prack_req(rack: &str) -> Request {
        let raw = format!(
            "PRACK sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKp\r\n\
From: <sip:300@h>;tag=a\r\nTo: <sip:100@h>;tag=us\r\nCall-ID: ca\r\nCSeq: 2 PRACK\r\n{rack}Content-Length: 0\r\n\r\n"
        );
        Request::try_from(raw.as_str()).expect("parse")
    }

    #[test]
    fn uac_prack_once_per_rseq_in_order() {
        let mut uac = ReliableUac::default();
        assert_eq!(uac.classify(&response(180, "")), Provisional::Unreliable);
        assert_eq!(
            uac.classify(&response(180, "Require: 100rel\r\n")),
            Provisional::Unreliable,
            "no RSeq"
        );
        let r1 = response(180, "Require: 100rel\r\nRSeq: 7\r\n");
        assert_eq!(uac.classify(&r1), Provisional::New(7));
        assert_eq!(uac.classify(&r1), Provisional::Stale, "retransmission");
        let r3 = response(183, "Require: 100rel\r\nRSeq: 9\r\n");
        assert_eq!(uac.classify(&r3), Provisional::Stale, "RSeq 8 missing");
        let r2 = response(183, "Require: timer, 100rel\r\nRSeq: 8\r\n");
        assert_eq!(uac.classify(&r2), Provisional::New(8));
        assert_eq!(uac.classify(&r3), Provisional::New(9));
    }

    #[test]
    fn uac_forks_have_their_own_rseq_space() {
        let mut uac = ReliableUac::default();
        let a = response(180, "Require: 100rel\r\nRSeq: 1\r\n");
        let raw = a.to_string().replace("tag=theirs", "tag=fork2");
        let b = Response::try_from(raw.as_str()).expect("parse");
        assert_eq!(uac.classify(&a), Provisional::New(1));
        assert_eq!(uac.classify(&b), Provisional::New(1));
    }

    #[tokio::test]
    async fn prack_in_the_early_dialog() {
        let cfg = crate::sip::SipConfig {
            listen: vec!["udp:127.0.0.1:5060".into()],
            ..crate::sip::SipConfig::default()
        }
        .validate()
        .expect("config");
        let r = response(183, "Require: 100rel\r\nRSeq: 1\r\n");
        let mut early = LegDialog {
            call_id: "cb".into(),
            local: "<sip:300@h>;tag=ours".into(),
            remote: "<sip:200@h>;tag=theirs".into(),
            remote_target: "sip:bob@192.0.2.9:5099".into(),
            route_set: vec!["<sip:192.0.2.7;lr>".into()],
            local_cseq: 1,
            proto: crate::sip::config::Proto::Udp,
            via_host: cfg.advertised_host.clone(),
            via_port: 5060,
            connection: rsipstack::transport::SipConnection::Channel(
                rsipstack::transport::channel::ChannelConnection::create_connection(
                    tokio::sync::mpsc::unbounded_channel().1,
                    tokio::sync::mpsc::unbounded_channel().0,
                    "127.0.0.1:5060"
                        .parse::<std::net::SocketAddr>()
                        .expect("addr")
                        .into(),
                    None,
                )
                .await
                .expect("channel"),
            ),
            destination: None,
        };
        assert_eq!(rseq_of(&r), Some(1));
        let p = prack(&mut early, 1, 1).expect("prack").to_string();
        assert!(
            p.starts_with("PRACK sip:bob@192.0.2.9:5099 SIP/2.0\r\n"),
            "{p}"
        );
        assert!(p.contains("RAck: 1 1 INVITE\r\n"), "{p}");
        assert!(p.contains("CSeq: 2 PRACK\r\n"), "{p}");
        assert!(p.contains("To: <sip:200@h>;tag=theirs\r\n"), "{p}");
        assert!(p.contains("Route: <sip:192.0.2.7;lr>\r\n"), "{p}");
        assert_eq!(early.local_cseq, 2);
    }

    #[test]
    fn uas_stamps_queues_and_matches() {
        let now = Instant::now();
        let mut uas = ReliableUas::new(1, 41);
        let first = uas.send(response(180, ""), now).expect("sent now");
        assert_eq!(rseq_of(&first), Some(41));
        assert!(requires_100rel(&first));
        assert!(
            uas.send(response(183, ""), now).is_none(),
            "waits for PRACK"
        );
        assert!(!uas.settled());
        assert_eq!(
            uas.on_prack(&prack_req("RAck: 41 2 INVITE\r\n"), now).err(),
            Some(PrackError::NoMatch),
            "wrong CSeq"
        );
        assert_eq!(
            uas.on_prack(&prack_req("RAck: 42 1 INVITE\r\n"), now).err(),
            Some(PrackError::NoMatch),
            "wrong RSeq"
        );
        assert_eq!(
            uas.on_prack(&prack_req(""), now).err(),
            Some(PrackError::NoRAck)
        );
        let next = uas
            .on_prack(&prack_req("RAck: 41 1 INVITE\r\n"), now)
            .expect("match")
            .expect("the queued 183");
        assert_eq!(rseq_of(&next), Some(42));
        assert_eq!(
            uas.on_prack(&prack_req("RAck: 41 1 INVITE\r\n"), now).err(),
            Some(PrackError::NoMatch),
            "already acknowledged"
        );
        assert!(!uas.settled());
        assert!(
            uas.on_prack(&prack_req("RAck: 42 1 INVITE\r\n"), now)
                .expect("match")
                .is_none()
        );
        assert!(uas.settled());
        assert!(uas.deadline().is_none());
    }

    #[test]
    fn uas_retransmits_at_doubling_intervals_then_gives_up() {
        let t0 = Instant::now();
        let mut uas = ReliableUas::new(1, 1);
        uas.send(response(180, ""), t0).expect("sent");
        let mut sent = Vec::new();
        let mut now = t0;
        while let Some(d) = uas.deadline() {
            now = d;
            match uas.on_timer(now) {
                Tick::Retransmit(_) => sent.push((now - t0).as_millis()),
                Tick::GiveUp => break,
                Tick::Idle => panic!("deadline with nothing due"),
            }
        }
        assert_eq!(sent, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(now - t0, GIVE_UP);
        assert!(uas.settled());
    }
}
