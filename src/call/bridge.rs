//! The established call, shared by both call kinds (a binding call: A is
//! the caller, B the callee; a dialout: A is stage one, B stage two):
//! in-dialog requests from either leg (re-INVITE, UPDATE, INFO, OPTIONS,
//! BYE), offers relayed across the B2BUA, glare, and RFC 4028 session
//! timers on each leg. [`Bridge`] holds what the two legs share from the
//! moment media is allocated: the relay, each leg's dialog, codec and
//! descriptions, the call's event channel.
//!
//! The call's event loop never waits on the network here: a request we send
//! on a leg (a relayed offer, a session refresh) runs in its own task and
//! its final response comes back as [`CallEvent::Outcome`]. At most one
//! offer/answer exchange is in progress in the call at a time; a request
//! that would start a second one gets 491 (glare, RFC 3261 §14.1, RFC 3311
//! §5.2) or, from the leg whose own offer is in progress, 500 with
//! Retry-After (RFC 3261 §14.2).

use std::time::Duration;

use rand::Rng;
use rsipstack::sip::{Header, Method, Request, Response, prelude::HeadersExt};
use rsipstack::transaction::Transaction;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::Ctx;
use super::binding::drive;
use crate::call::registry::CallEvent;
use crate::call::session_timer::{self, LegTimer, Refresher};
use crate::media::relay::Relay;
use crate::media::relay::Side;
use crate::media::sdp::Origin;
use crate::media::sdp::{self, AudioLine, LegCodec, ParsedSdp};
use crate::sip::dialog::LegDialog;
use crate::sip::message::{code_of, sdp_body};

/// How long a request we send in a dialog may wait for its final response
/// (Timer B / Timer F, 64*T1, RFC 3261 §17.1).
const OUT_TIMEOUT: Duration = Duration::from_secs(32);

/// When a session refresh that failed (other than 408/481) is tried again,
/// while the session is still valid.
const REFRESH_RETRY: Duration = Duration::from_secs(10);

/// What the call is waiting for on a leg.
pub(crate) struct Pending {
    /// Matches the [`CallEvent::Outcome`] of this request.
    seq: u64,
    /// The leg the request went to.
    leg: Side,
    kind: PendingKind,
}

enum PendingKind {
    /// The other leg's offer, relayed to `leg`; its server transaction
    /// waits for our answer.
    Relay {
        tx: Box<Transaction>,
        offer: Box<ParsedSdp>,
        audio: Box<AudioLine>,
        chosen: LegCodec,
        sent: String,
    },
    /// Our session refresh (RFC 4028 §7.4, §10).
    Refresh,
}

/// A request built for a leg's dialog, and where it goes.
struct OutRequest {
    req: Request,
    conn: rsipstack::transport::SipConnection,
    dest: Option<rsipstack::transport::SipAddr>,
}

/// The session timer state of one leg (RFC 4028 §10).
#[derive(Default, Clone, Copy)]
pub(crate) struct LegClock {
    /// The negotiated timer; `None` before the leg is answered.
    pub timer: Option<LegTimer>,
    /// When we send the next refresh (we are the refresher).
    refresh_at: Option<Instant>,
    /// When the session on this leg has expired without a refresh.
    valid_until: Option<Instant>,
}

impl LegClock {
    /// Starts a new interval: the session was just refreshed.
    pub fn arm(&mut self, timer: LegTimer) {
        let now = Instant::now();
        self.timer = Some(timer);
        self.valid_until = Some(now + timer.expire_after());
        self.refresh_at = match timer.refresher {
            Refresher::Us => Some(now + timer.refresh_after()),
            Refresher::Peer => None,
        };
    }

    /// Starts a new interval with the timer in force.
    fn rearm(&mut self) {
        if let Some(t) = self.timer {
            self.arm(t);
        }
    }

    fn next(&self) -> Option<Instant> {
        match (self.refresh_at, self.valid_until) {
            (Some(r), Some(v)) => Some(r.min(v)),
            (r, v) => r.or(v),
        }
    }
}

/// The state both legs of a call share, and the established phase.
pub(crate) struct Bridge {
    pub ctx: Arc<Ctx>,
    /// The call's events (responses, in-dialog requests, outcomes, media).
    pub events: UnboundedReceiver<CallEvent>,
    pub events_tx: UnboundedSender<CallEvent>,
    pub relay: Option<Relay>,
    /// Each leg's dialog once established (A: we are its UAS in a binding
    /// call, its UAC in a dialout).
    pub a_dialog: Option<LegDialog>,
    pub b_dialog: Option<LegDialog>,
    /// What each leg negotiated.
    pub a_codec: Option<LegCodec>,
    pub b_codec: Option<LegCodec>,
    /// Our current description towards A, and towards B.
    pub a_answer: Option<String>,
    pub b_sdp: Option<String>,
    pub a_origin: sdp::Origin,
    pub b_origin: sdp::Origin,
    /// Origin (session id, version) of the last description from A and
    /// from B: an offer with the same origin changes nothing.
    pub a_seen: Option<(u64, u64)>,
    pub b_seen: Option<(u64, u64)>,
    /// The offer or refresh we wait on (established phase).
    pub pending: Option<Pending>,
    /// Numbers our in-dialog requests, to match their outcomes.
    pub pending_seq: u64,
    /// RFC 4028 session timers of A's and B's dialogs.
    pub a_clock: LegClock,
    pub b_clock: LegClock,
    /// Who ended the call: "caller" (A), "callee" (B) or "system".
    pub hangup: Option<&'static str>,
    /// When the call ended.
    pub stopped: Option<chrono::DateTime<chrono::Utc>>,
    /// A's ACK of our 2xx came (a UAC leg A has nothing to ACK: true).
    pub a_acked: bool,
    /// A's INVITE had no offer: its answer comes in the ACK.
    pub a_delayed: bool,
    /// The INVITEs we sent as UAC on A and on B: a 2xx from another fork
    /// is ended (RFC 3261 §13.2.2.4).
    pub a_invite: Option<rsipstack::sip::Request>,
    pub b_invite: Option<rsipstack::sip::Request>,
}

impl Bridge {
    /// A new call's shared state: no media, no dialogs yet.
    pub fn new(
        ctx: Arc<Ctx>,
        events: UnboundedReceiver<CallEvent>,
        events_tx: UnboundedSender<CallEvent>,
    ) -> Bridge {
        Bridge {
            ctx,
            events,
            events_tx,
            relay: None,
            a_dialog: None,
            b_dialog: None,
            a_codec: None,
            b_codec: None,
            a_answer: None,
            b_sdp: None,
            a_origin: Origin::new(),
            b_origin: Origin::new(),
            a_seen: None,
            b_seen: None,
            pending: None,
            pending_seq: 0,
            a_clock: LegClock::default(),
            b_clock: LegClock::default(),
            hangup: None,
            stopped: None,
            a_acked: false,
            a_delayed: false,
            a_invite: None,
            b_invite: None,
        }
    }

    /// Sends BYE on a leg in the background.
    pub fn bye(&self, dialog: Option<LegDialog>) {
        let Some(mut d) = dialog else { return };
        let ep = self.ctx.endpoint.clone();
        tokio::spawn(async move {
            match d.bye(&ep).await {
                Ok(code) => debug!(call_id = %d.call_id, ?code, "BYE answered"),
                Err(e) => warn!(call_id = %d.call_id, error = %e, "BYE failed"),
            }
        });
    }

    /// A 2xx to one of our INVITEs after the first one: when it comes from
    /// another fork (another To tag; a forking proxy behind the trunk), the
    /// stack has ACKed it and we end that dialog with BYE, keeping the
    /// first (RFC 3261 §13.2.2.4). A retransmission of the first 2xx is
    /// left alone.
    pub fn end_other_fork(&self, r: &Response) {
        let cid = crate::sip::message::call_id(r);
        let leg = [
            (&self.a_dialog, &self.a_invite),
            (&self.b_dialog, &self.b_invite),
        ]
        .into_iter()
        .find(|(d, _)| d.as_ref().is_some_and(|d| Some(&d.call_id) == cid.as_ref()));
        let Some((Some(first), Some(invite))) = leg else {
            return;
        };
        let tag = |v: &str| crate::sip::message::tag_of(v);
        let this = r.to_header().ok().and_then(|h| tag(h.value()));
        if this.is_none() || this == tag(&first.remote) {
            return;
        }
        info!(to_tag = ?this, "another fork answered: ACKed, and ended with BYE");
        let fork = crate::call::legs::b_dialog(
            &self.ctx.cfg,
            invite,
            r,
            first.connection.clone(),
            first.destination.clone(),
        );
        self.bye(fork);
    }

    /// Applies A's answer from its ACK (delayed offer): A's first G.711
    /// payload and its telephone-event. Returns false when unusable.
    fn apply_a_answer(&mut self, sdp: Option<String>) -> bool {
        let Some(relay) = self.relay.as_ref() else {
            return false;
        };
        let Some(audio) = sdp.and_then(|s| sdp::parse(&s).ok()).and_then(|p| p.audio) else {
            return false;
        };
        let Ok(codec) = sdp::answer_codec(&audio) else {
            return false;
        };
        relay.set_remote(Side::A, audio.rtp_target(), audio.rtcp_target());
        relay.set_codec(Side::A, codec);
        self.a_codec = Some(codec);
        true
    }

    fn clock(&mut self, side: Side) -> &mut LegClock {
        match side {
            Side::A => &mut self.a_clock,
            Side::B => &mut self.b_clock,
        }
    }

    /// Ends the call on both legs with BYE.
    fn teardown(&mut self, who: &'static str) {
        self.hangup.get_or_insert(who);
        self.bye(self.a_dialog.clone());
        self.bye(self.b_dialog.clone());
    }

    /// From the 200 to A until either side hangs up.
    pub async fn established(&mut self) {
        let ctx = self.ctx.clone();
        let drain = ctx.hangup_all.clone();
        loop {
            let next = [self.a_clock.next(), self.b_clock.next()]
                .into_iter()
                .flatten()
                .min();
            let tick = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = drain.cancelled() => {
                    info!("drain time over: hanging up");
                    self.teardown("system");
                    break;
                }
                _ = tick => {
                    if !self.on_tick() {
                        break;
                    }
                }
                ev = self.events.recv() => match ev {
                    None => break,
                    Some(CallEvent::AAck(sdp)) => {
                        let first = !self.a_acked;
                        self.a_acked = true;
                        if first && self.a_delayed && !self.apply_a_answer(sdp) {
                            warn!("delayed offer: no usable answer in A's ACK");
                            self.teardown("system");
                            break;
                        }
                    }
                    Some(CallEvent::AGone) => {
                        if !self.a_acked {
                            // No ACK within 64*T1 (RFC 3261 §13.3.1.4): end the call.
                            warn!("A never ACKed our 200");
                            self.teardown("system");
                            break;
                        }
                    }
                    Some(CallEvent::BResponse(r)) | Some(CallEvent::AResponse(r)) => {
                        if (200..300).contains(&code_of(&r)) {
                            self.end_other_fork(&r);
                        }
                    }
                    Some(CallEvent::ACancel)
                    | Some(CallEvent::BGone)
                    | Some(CallEvent::Media(_)) => {}
                    Some(CallEvent::Outcome(seq, result)) => {
                        if !self.on_outcome(seq, result) {
                            break;
                        }
                    }
                    Some(CallEvent::Request(tx, side)) => {
                        if !self.on_request(*tx, side).await {
                            break;
                        }
                    }
                },
            }
        }
        if let Some(p) = self.pending.take()
            && let PendingKind::Relay { tx, .. } = p.kind
        {
            // The call ended while the other leg had our re-offer.
            self.answer_held(*tx, 487, None);
        }
        self.stopped = Some(chrono::Utc::now());
    }

    /// A request in one of the call's dialogs. False: the call is over.
    async fn on_request(&mut self, mut tx: Transaction, side: Side) -> bool {
        match tx.original.method.clone() {
            Method::Bye => {
                let _ = tx.reply(crate::sip::message::status(200)).await;
                let (who, other) = match side {
                    Side::A => ("caller", self.b_dialog.clone()),
                    Side::B => ("callee", self.a_dialog.clone()),
                };
                info!(side = who, "hang up");
                self.hangup.get_or_insert(who);
                self.bye(other);
                false
            }
            Method::Invite | Method::Update => {
                self.reoffer(tx, side).await;
                true
            }
            Method::Info => {
                self.relay_info(tx, side);
                true
            }
            Method::Options => {
                let _ = tx.reply(crate::sip::message::status(200)).await;
                true
            }
            // Every reliable 18x was PRACKed before our 2xx (RFC 3262 §3):
            // a PRACK now matches nothing.
            Method::PRack => {
                let _ = tx.reply(crate::sip::message::status(481)).await;
                true
            }
            // The ACK of a 2xx to a re-INVITE; after an offerless one it
            // carries the party's answer (RFC 3264 §5): a new address in it
            // is taken.
            Method::Ack => {
                let audio = sdp_body(&tx.original, tx.original.body())
                    .and_then(|s| sdp::parse(&s).ok())
                    .and_then(|p| p.audio);
                if let (Some(audio), Some(relay)) = (audio, self.relay.as_ref()) {
                    relay.set_remote(side, audio.rtp_target(), audio.rtcp_target());
                }
                true
            }
            // A method we do not serve in a call: 405, or 501 for one we do
            // not know, with Allow (RFC 3261 §8.2.1); the call goes on.
            m => {
                let code = crate::call::legs::method_refusal(&m).unwrap_or(405);
                info!(method = %m, status = code, "request refused in the call");
                let resp = self.in_dialog_response(&tx.original, code, None, None);
                let _ = tx.respond(resp).await;
                drive(tx);
                true
            }
        }
    }

    /// Due timers: our refreshes, and legs whose session expired. False:
    /// the call is over.
    fn on_tick(&mut self) -> bool {
        let now = Instant::now();
        for side in [Side::A, Side::B] {
            let c = *self.clock(side);
            if c.valid_until.is_some_and(|v| v <= now) {
                warn!(
                    ?side,
                    "session expired without a refresh (RFC 4028 §10): ending the call"
                );
                self.teardown("system");
                return false;
            }
            if c.refresh_at.is_some_and(|r| r <= now) {
                if self.pending.is_some() {
                    // Another offer is in progress: refresh right after it.
                    self.clock(side).refresh_at = Some(now + Duration::from_secs(1));
                } else {
                    self.clock(side).refresh_at = None;
                    self.send_refresh(side);
                }
            }
        }
        true
    }

    /// Sends a session refresh on `leg`: a re-INVITE with the description
    /// we last gave it, unchanged (RFC 4028 §7.4, §10; RFC 3264 §8: same
    /// origin version, so the party changes nothing).
    fn send_refresh(&mut self, leg: Side) {
        let body = match leg {
            Side::A => self.a_answer.clone(),
            Side::B => self.b_sdp.clone(),
        };
        info!(?leg, "session refresh");
        match self.build_in_dialog(leg, Method::Invite, body) {
            Ok(out) => self.send_out(leg, out, PendingKind::Refresh),
            Err(code) => {
                warn!(?leg, code, "session refresh not sent: ending the call");
                self.teardown("system");
            }
        }
    }

    /// Builds `method` with `body` (SDP) in `leg`'s dialog, with our Contact
    /// and the leg's session timer headers. Errors with the status the
    /// request's originator gets.
    fn build_in_dialog(
        &mut self,
        leg: Side,
        method: Method,
        body: Option<String>,
    ) -> Result<OutRequest, u16> {
        let timer = self.clock(leg).timer;
        let min_se = self.ctx.cfg.timers.min_se;
        let contact_cfg = self.ctx.cfg.clone();
        let dialog = match leg {
            Side::A => self.a_dialog.as_mut(),
            Side::B => self.b_dialog.as_mut(),
        };
        let Some(dialog) = dialog else {
            return Err(481);
        };
        let mut out = dialog.request(method).map_err(|_| 500u16)?;
        out.headers.push(Header::Contact(
            crate::call::legs::our_contact(&contact_cfg, dialog.proto).into(),
        ));
        if let Some(t) = timer {
            out.headers.extend(t.request_headers(min_se));
        }
        if let Some(b) = body {
            out.headers
                .push(Header::ContentType("application/sdp".into()));
            out.body = b.into_bytes();
        }
        Ok(OutRequest {
            req: out,
            conn: dialog.connection.clone(),
            dest: dialog.destination.clone(),
        })
    }

    /// Sends `out` on `leg` from a task of its own and records what we wait
    /// for; its final response comes back as [`CallEvent::Outcome`].
    fn send_out(&mut self, leg: Side, out: OutRequest, kind: PendingKind) {
        let OutRequest {
            req: out,
            conn,
            dest,
        } = out;
        self.pending_seq += 1;
        let seq = self.pending_seq;
        let ep = self.ctx.endpoint.clone();
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let mut t = match crate::sip::dialog::send_request(&ep, out, Some(conn), dest).await {
                Ok(t) => t,
                Err(e) => {
                    warn!(error = %e, "in-dialog request not sent");
                    let _ = events.send(CallEvent::Outcome(seq, Err(503)));
                    return;
                }
            };
            let resp =
                tokio::time::timeout(OUT_TIMEOUT, crate::sip::dialog::final_response(&mut t))
                    .await
                    .ok()
                    .flatten();
            let _ = events.send(CallEvent::Outcome(seq, resp.map(Box::new).ok_or(408)));
            // The stack ACKs a 2xx, and again for each retransmission of it
            // while the transaction lives.
            while t.receive().await.is_some() {}
        });
        self.pending = Some(Pending { seq, leg, kind });
    }

    /// The final response (or failure) of the request we wait for. False:
    /// the call is over.
    fn on_outcome(&mut self, seq: u64, result: Result<Box<Response>, u16>) -> bool {
        let Some(p) = self.pending.take_if(|p| p.seq == seq) else {
            return true; // a late outcome of something already given up
        };
        let code = match &result {
            Ok(r) => code_of(r),
            Err(c) => *c,
        };
        match p.kind {
            PendingKind::Refresh => self.refresh_done(p.leg, code, result.ok()),
            PendingKind::Relay {
                tx,
                offer,
                audio,
                chosen,
                sent,
            } => {
                let Ok(resp) = result.as_ref() else {
                    info!(code, "re-offer not answered by the other leg");
                    self.answer_held(*tx, code, None);
                    return true;
                };
                if code >= 300 {
                    info!(code, "re-offer refused by the other leg");
                    self.answer_held(*tx, code, None);
                    return true;
                }
                self.after_2xx(p.leg, resp);
                match self.relayed_answer(resp, p.leg, &offer, &audio, chosen, sent) {
                    Ok(answer) => {
                        let sender = p.leg.other();
                        self.answer_held(*tx, 200, Some(answer));
                        debug!(?sender, "re-offer relayed");
                    }
                    Err(code) => self.answer_held(*tx, code, None),
                }
                true
            }
        }
    }

    /// A 2xx from `leg` to a re-INVITE we sent: the session on that leg is
    /// refreshed, with the interval and refresher its 2xx says (RFC 4028 §7.2).
    fn after_2xx(&mut self, leg: Side, resp: &Response) {
        let asked = self
            .clock(leg)
            .timer
            .map_or(self.ctx.cfg.timers.session_expires, |t| t.interval);
        let t = session_timer::as_uac(resp, asked);
        self.clock(leg).arm(t);
    }

    /// Our session refresh on `leg` ended with `code`. False: the call is over.
    fn refresh_done(&mut self, leg: Side, code: u16, resp: Option<Box<Response>>) -> bool {
        let now = Instant::now();
        match code {
            200..=299 => {
                if let Some(r) = resp.as_deref() {
                    self.after_2xx(leg, r);
                    // A new address in the answer is taken (re-anchoring).
                    if let Some(audio) = sdp_body(r, r.body())
                        .and_then(|s| sdp::parse(&s).ok())
                        .and_then(|p| p.audio)
                        && let Some(relay) = self.relay.as_ref()
                    {
                        relay.set_remote(leg, audio.rtp_target(), audio.rtcp_target());
                    }
                }
                debug!(?leg, "session refreshed");
                true
            }
            491 => {
                // Glare: try again after a random time (RFC 3261 §14.1): 2.1
                // to 4 s on the leg whose Call-ID we chose (B), 0 to 2 s on
                // the other.
                let ms = match leg {
                    Side::B => rand::rng().random_range(2100..=4000),
                    Side::A => rand::rng().random_range(0..=2000),
                };
                info!(?leg, ms, "refresh met glare (491): retrying");
                self.clock(leg).refresh_at = Some(now + Duration::from_millis(ms));
                true
            }
            422 => {
                // The party wants a longer interval (RFC 4028 §7.3 applies to
                // refreshes too): take its Min-SE and refresh again at once.
                let larger = resp.as_deref().and_then(|r| {
                    session_timer::after_422(r, self.clock(leg).timer.map_or(0, |t| t.interval))
                });
                match (larger, self.clock(leg).timer) {
                    (Some(interval), Some(t)) => {
                        self.clock(leg).timer = Some(LegTimer { interval, ..t });
                        self.clock(leg).refresh_at = Some(now);
                        true
                    }
                    _ => {
                        warn!(
                            ?leg,
                            "422 to a refresh without a usable Min-SE: ending the call"
                        );
                        self.teardown("system");
                        false
                    }
                }
            }
            408 | 481 | 503 => {
                // The dialog is gone (RFC 3261 §12.2.1.2, RFC 4028 §10).
                warn!(
                    ?leg,
                    code, "session refresh failed: ending the call on both legs"
                );
                self.teardown("system");
                false
            }
            _ => {
                // Refused for another reason: the session is not refreshed;
                // try again while it is still valid.
                let valid = self.clock(leg).valid_until;
                if valid.is_some_and(|v| v > now + REFRESH_RETRY) {
                    info!(?leg, code, "session refresh refused: trying again");
                    self.clock(leg).refresh_at = Some(now + REFRESH_RETRY);
                    true
                } else {
                    warn!(
                        ?leg,
                        code, "session refresh refused and the session ends: ending the call"
                    );
                    self.teardown("system");
                    false
                }
            }
        }
    }

    /// A re-INVITE or UPDATE from `side` in the established call (RFC 3261
    /// §14, RFC 3311). An offer that changes the session (hold, resume, a
    /// new address) is relayed to the other leg with our address in it, and
    /// `side` gets an answer with the direction the other leg answered; an
    /// unchanged offer (a session refresh: same origin version, RFC 3264 §8)
    /// and an offerless re-INVITE are answered here without disturbing the
    /// other leg. The other leg's failure (491 on glare, 488, ...) is passed
    /// back, so the sender retries as RFC 3261 §14.1 says. Every 2xx renews
    /// the session timer of `side` (RFC 4028 §9, §10).
    async fn reoffer(&mut self, mut tx: Transaction, side: Side) {
        let req = tx.original.clone();
        if let Some(p) = &self.pending {
            // Glare (RFC 3261 §14.1, RFC 3311 §5.2): an offer of ours is in
            // progress. From the leg whose own offer we are still relaying:
            // 500 with Retry-After (§14.2).
            let own = p.leg == side.other() && matches!(p.kind, PendingKind::Relay { .. });
            let (code, retry) = if own { (500, true) } else { (491, false) };
            info!(?side, code, "re-offer while another is in progress");
            let mut resp = self.in_dialog_response(&req, code, None, None);
            if retry {
                let secs = rand::rng().random_range(0..=10u32);
                resp.headers
                    .push(Header::Other("Retry-After".into(), secs.to_string()));
            }
            let _ = tx.respond(resp).await;
            return drive(tx);
        }
        let timer = match session_timer::as_uas(&req, &self.ctx.cfg.timers) {
            Ok(t) => t,
            Err(min_se) => {
                let mut resp = self.in_dialog_response(&req, 422, None, None);
                resp.headers
                    .push(Header::Other("Min-SE".into(), min_se.to_string()));
                let _ = tx.respond(resp).await;
                return drive(tx);
            }
        };
        let parsed = match sdp_body(&req, req.body()).map(|s| sdp::parse(&s)) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(_)) => {
                let resp = self.in_dialog_response(&req, 400, None, None);
                let _ = tx.respond(resp).await;
                return drive(tx);
            }
        };
        let seen = match side {
            Side::A => self.a_seen,
            Side::B => self.b_seen,
        };
        self.clock(side).timer = Some(timer);
        let (code, body) = match parsed {
            Some(p) if seen != Some(sdp::origin_of(&p)) => {
                if req.method == Method::Invite {
                    // Stops the sender's retransmissions while the other
                    // leg answers (RFC 3261 §17.2.1).
                    let _ = tx.send_trying().await;
                }
                match self.relay_offer(tx, &req, p, side) {
                    Ok(()) => return,
                    Err((tx, code)) => {
                        let resp = self.in_dialog_response(&req, code, None, None);
                        let mut tx = *tx;
                        let _ = tx.respond(resp).await;
                        return drive(tx);
                    }
                }
            }
            p => self.local_answer(p.as_ref(), side),
        };
        if code == 200 {
            self.clock(side).rearm();
        }
        let resp = self.in_dialog_response(&req, code, body.as_deref(), Some(timer));
        let _ = tx.respond(resp).await;
        drive(tx);
    }

    /// Answers a held re-INVITE/UPDATE server transaction of the other leg
    /// with `code` (and our answer), renewing that leg's session timer on
    /// 2xx.
    fn answer_held(&mut self, mut tx: Transaction, code: u16, body: Option<String>) {
        let req = tx.original.clone();
        let side = if crate::sip::message::call_id(&req)
            .is_some_and(|c| self.b_dialog.as_ref().is_some_and(|d| d.call_id == c))
        {
            Side::B
        } else {
            Side::A
        };
        let timer = self.clock(side).timer;
        if code == 200 {
            self.clock(side).rearm();
        }
        let resp = self.in_dialog_response(&req, code, body.as_deref(), timer);
        tokio::spawn(async move {
            let _ = tx.respond(resp).await;
            while tx.receive().await.is_some() {}
        });
    }

    /// A response to an in-dialog request of a leg, with our To tag; a 2xx
    /// carries the leg's session timer (RFC 4028 §9); 405/501 carry Allow
    /// (which every response of ours has).
    fn in_dialog_response(
        &self,
        req: &Request,
        code: u16,
        body: Option<&str>,
        timer: Option<LegTimer>,
    ) -> Response {
        let tag = crate::sip::message::tag_of(
            &req.to_header()
                .map(|t| t.value().to_string())
                .unwrap_or_default(),
        )
        .unwrap_or_default();
        let mut resp = crate::call::legs::a_response(
            &self.ctx.endpoint,
            &self.ctx.cfg,
            req,
            &tag,
            code,
            if code == 200 { body } else { None },
        );
        if code == 200
            && matches!(req.method, Method::Invite | Method::Update)
            && let Some(t) = timer
        {
            resp.headers.extend(t.response_headers());
        }
        resp
    }

    /// The answer to an offer that changes nothing for the other leg (or
    /// our current description, as an offer, when there is none): the codec
    /// must still be offered (else 488); a new address is taken.
    fn local_answer(&mut self, parsed: Option<&ParsedSdp>, side: Side) -> (u16, Option<String>) {
        let ours = match side {
            Side::A => self.a_answer.clone(),
            Side::B => self.b_sdp.clone(),
        };
        let Some(p) = parsed else {
            return (200, ours);
        };
        let (Some(audio), Some(relay)) = (p.audio.as_ref(), self.relay.as_ref()) else {
            return (488, None);
        };
        let Some(chosen) = self.still_offered(audio, side) else {
            return (488, None);
        };
        relay.set_remote(side, audio.rtp_target(), audio.rtcp_target());
        relay.set_codec(side, chosen);
        let origin = match side {
            Side::A => self.a_origin,
            Side::B => self.b_origin,
        };
        let body = sdp::answer_for(
            p,
            audio,
            &chosen,
            origin,
            self.ctx.media.advertised_ip,
            relay.port(side),
        );
        (200, Some(body))
    }

    /// The codec `side` negotiated, if its new offer still has that law.
    fn still_offered(&self, audio: &AudioLine, side: Side) -> Option<LegCodec> {
        let current = match side {
            Side::A => self.a_codec,
            Side::B => self.b_codec,
        }?;
        audio
            .g711()
            .into_iter()
            .find(|(_, law)| *law == current.codec)
            .map(|(pt, codec)| LegCodec {
                codec,
                pt,
                te_pt: current.te_pt.and(audio.te_pt()),
            })
    }

    /// Relays `side`'s new offer `p` to the other leg as a re-INVITE (or
    /// UPDATE) with our address and the direction `side` asked for; `side`'s
    /// server transaction waits in [`Pending`] for the other leg's answer.
    /// Errors with the status `side` gets (and its transaction back).
    fn relay_offer(
        &mut self,
        tx: Transaction,
        req: &Request,
        p: ParsedSdp,
        side: Side,
    ) -> Result<(), (Box<Transaction>, u16)> {
        let tx = Box::new(tx);
        let Some(audio) = p.audio.clone() else {
            return Err((tx, 488));
        };
        let Some(chosen) = self.still_offered(&audio, side) else {
            return Err((tx, 488));
        };
        let other = side.other();
        let other_codec = match other {
            Side::A => self.a_codec,
            Side::B => self.b_codec,
        };
        let (Some(other_codec), Some(relay)) = (other_codec, self.relay.as_ref()) else {
            return Err((tx, 488));
        };
        let port_other = relay.port(other);
        let ip = self.ctx.media.advertised_ip;
        let offer = {
            let origin = match other {
                Side::A => &mut self.a_origin,
                Side::B => &mut self.b_origin,
            };
            origin.version += 1;
            sdp::reoffer(
                &other_codec,
                *origin,
                ip,
                port_other,
                sdp::effective_direction(&audio),
            )
        };
        let out = match self.build_in_dialog(other, req.method.clone(), Some(offer.clone())) {
            Ok(out) => out,
            Err(code) => {
                warn!(code, "re-offer not relayed");
                return Err((tx, code));
            }
        };
        let kind = PendingKind::Relay {
            tx,
            offer: Box::new(p),
            audio: Box::new(audio),
            chosen,
            sent: offer,
        };
        self.send_out(other, out, kind);
        Ok(())
    }

    /// The other leg's 2xx `resp` to our relayed offer `sent`: applies its
    /// answer to the relay and builds the answer for the sender `leg.other()`.
    fn relayed_answer(
        &mut self,
        resp: &Response,
        leg: Side,
        p: &ParsedSdp,
        audio: &AudioLine,
        chosen: LegCodec,
        sent: String,
    ) -> Result<String, u16> {
        let side = leg.other();
        let answer = sdp_body(resp, resp.body())
            .and_then(|s| sdp::parse(&s).ok())
            .and_then(|a| a.audio.clone().map(|line| (sdp::origin_of(&a), line)));
        let Some((their_origin, their_audio)) = answer else {
            warn!("the other leg accepted the re-offer without an answer");
            return Err(488);
        };
        let answered_dir = sdp::effective_direction(&their_audio);
        let ip = self.ctx.media.advertised_ip;
        let Some(relay) = self.relay.as_ref() else {
            return Err(488);
        };
        relay.set_remote(leg, their_audio.rtp_target(), their_audio.rtcp_target());
        relay.set_remote(side, audio.rtp_target(), audio.rtcp_target());
        relay.set_codec(side, chosen);
        let port_side = relay.port(side);
        let origin = match side {
            Side::A => &mut self.a_origin,
            Side::B => &mut self.b_origin,
        };
        origin.version += 1;
        let answer =
            sdp::answer_with_direction(p, audio, &chosen, *origin, ip, port_side, answered_dir);
        match side {
            Side::A => {
                self.a_seen = Some(sdp::origin_of(p));
                self.b_seen = Some(their_origin);
                self.a_answer = Some(answer.clone());
                self.b_sdp = Some(sent);
            }
            Side::B => {
                self.b_seen = Some(sdp::origin_of(p));
                self.a_seen = Some(their_origin);
                self.b_sdp = Some(answer.clone());
                self.a_answer = Some(sent);
            }
        }
        info!(?side, direction = answered_dir.as_str(), "re-offer relayed");
        Ok(answer)
    }

    /// An INFO inside the established call (RFC 6086), for example DTMF as
    /// `application/dtmf-relay` (field case BC-28): sent on to the other
    /// leg in its dialog with the same Content-Type, Info-Package and body;
    /// the sender gets the other leg's final status, or 408 when it does not
    /// answer within Timer F (64*T1). Runs beside the call, which keeps
    /// handling its events meanwhile.
    fn relay_info(&mut self, mut tx: Transaction, side: Side) {
        let other = match side {
            Side::A => self.b_dialog.as_mut(),
            Side::B => self.a_dialog.as_mut(),
        };
        let built = other.map(|d| {
            let req = d.request(Method::Info);
            (req, d.connection.clone(), d.destination.clone())
        });
        let ep = self.ctx.endpoint.clone();
        tokio::spawn(async move {
            let code = match built {
                None => 481,
                Some((Err(e), _, _)) => {
                    warn!(error = %e, "INFO not relayed");
                    500
                }
                Some((Ok(mut req), conn, dest)) => {
                    for name in ["Content-Type", "Info-Package"] {
                        if let Some(v) = crate::sip::message::header_value(&tx.original, name)
                            && let Some(h) = crate::sip::message::safe_header(name, &v)
                        {
                            req.headers.push(h);
                        }
                    }
                    req.body = tx.original.body.clone();
                    match crate::sip::dialog::send_request(&ep, req, Some(conn), dest).await {
                        Ok(mut out) => crate::sip::dialog::final_response(&mut out)
                            .await
                            .map(|r| code_of(&r))
                            .unwrap_or(408),
                        Err(e) => {
                            warn!(error = %e, "INFO not relayed");
                            503
                        }
                    }
                }
            };
            debug!(code, "INFO relayed");
            let _ = tx.reply(crate::sip::message::status(code)).await;
            drive(tx);
        });
    }
}
