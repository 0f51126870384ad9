//! The inbound binding call: A calls a redirect DID, we route it through
//! the store and bridge it to the B leg at the trunk, anchoring the media.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rsipstack::sip::{Header, Method, Request, Response, SipMessage, Uri};
use rsipstack::transaction::Transaction;
use rsipstack::transaction::transaction::{TransactionEvent, TransactionEventSender};
use rsipstack::transport::SipConnection;
use tokio::sync::mpsc::unbounded_channel;
use tracing::{debug, info, warn};

use super::Ctx;
use super::callerid::{Caller, caller_of, present};
use super::legs::{BInvite, a_dialog, a_response, cseq_number, map_b_failure};
use super::registry::{CallEvent, CallGuard};
use super::reliable::{Provisional, ReliableUas, Tick};
use super::retry::Retry;
use super::router::{CallRecord, CallRoute};
use crate::media::MediaError;
use crate::media::relay::{Relay, Side};
use crate::media::sdp::{self, AudioLine, ParsedSdp};
use crate::sip::message::{
    call_id, code_of, max_forwards, new_call_id, new_tag, sdp_body, source_ip,
};
use crate::sip::number::uri_number;

mod early;
use super::bridge::Bridge;
use super::uac::UacLeg;

/// How long we keep waiting for B's final response after cancelling it
/// (64*T1, RFC 3261 §9.1, §17.1.1.2).
const CANCEL_WAIT: Duration = Duration::from_secs(32);

/// Once the drain time is over, how long a call that has answered A may
/// still wait for B's final response before it is recorded and ends. Below
/// the 5 s the core gives calls to finish, so the call detail record is
/// still written.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// Answers a request that gets no call with a final response, then keeps
/// the transaction alive for retransmissions and the ACK.
pub(crate) async fn reject(mut tx: Transaction, code: u16) {
    let _ = tx
        .reply_with(crate::sip::message::status(code), vec![], None)
        .await;
    drive(tx);
}

/// Runs a server transaction to its end (absorbs ACKs, retransmits).
pub(crate) fn drive(mut tx: Transaction) {
    tokio::spawn(async move { while tx.receive().await.is_some() {} });
}

/// Entry point for a new INVITE (no To tag): admission, then the call.
///
/// The spawned task lives as long as the call, and tokio allocates it at
/// the size of its largest state: admission (with the futures of the
/// rejections) runs boxed and the call's state is boxed, so the task holds
/// only what an established call needs.
pub(crate) async fn handle_invite(ctx: Arc<Ctx>, tx: Box<Transaction>) {
    // The call's SID: on every log line of the call (span `call`) and the
    // SID of its detail record.
    let sid = crate::model::new_sid();
    let span = tracing::info_span!("call", call_sid = %sid);
    tracing::Instrument::instrument(
        async move {
            let Some(mut call) = Box::pin(admit(ctx, tx)).await else {
                return;
            };
            call.run().await;
            call.record(sid).await;
        },
        span,
    )
    .await
}

/// Checks a new INVITE (draining, trusted source, Max-Forwards, Require,
/// Request-URI) and answers it when it can become no call; else the call.
async fn admit(ctx: Arc<Ctx>, tx: Box<Transaction>) -> Option<Box<InboundCall>> {
    let mut tx = *tx;
    let _ = tx.send_trying().await; // RFC 3261 §17.2.1: at once
    let req = tx.original.clone();
    if ctx.draining.load(Ordering::SeqCst) {
        info!("shutting down: 503 to new INVITE");
        {
            reject(tx, 503).await;
            return None;
        }
    }
    let trusted = source_ip(&req).is_some_and(|ip| ctx.cfg.is_trusted(ip));
    if !trusted {
        info!(src = ?source_ip(&req), "untrusted source: 403");
        {
            reject(tx, 403).await;
            return None;
        }
    }
    let mf = max_forwards(&req).unwrap_or(70);
    if mf == 0 {
        {
            reject(tx, 483).await;
            return None;
        } // RFC 3261 §16.3 step 3
    }
    // A Require we cannot honour is 420 (RFC 3261 §8.2.2.3); we support
    // session timers (RFC 4028).
    let required: Vec<String> = crate::sip::message::required_options(&req)
        .into_iter()
        .filter(|t| {
            !super::legs::SUPPORTED
                .iter()
                .any(|s| t.eq_ignore_ascii_case(s))
        })
        .collect();
    if !required.is_empty() {
        let _ = tx
            .reply_with(
                crate::sip::message::status(420),
                vec![rsipstack::sip::Header::Unsupported(
                    required.join(", ").into(),
                )],
                None,
            )
            .await;
        drive(tx);
        return None;
    }
    // A session interval below our Min-SE is 422 with it (RFC 4028 §9).
    if let Err(min_se) = super::session_timer::as_uas(&req, &ctx.cfg.timers) {
        info!(min_se, "Session-Expires below our Min-SE: 422");
        let _ = tx
            .reply_with(
                crate::sip::message::status(422),
                vec![rsipstack::sip::Header::Other(
                    "Min-SE".into(),
                    min_se.to_string(),
                )],
                None,
            )
            .await;
        drive(tx);
        return None;
    }
    let ruri = req.uri.to_string();
    if !crate::sip::message::scheme_supported(&ruri) {
        {
            reject(tx, 416).await;
            return None;
        } // RFC 3261 §8.2.2.1
    }
    let Some(redirect) = uri_number(&ruri) else {
        {
            reject(tx, 404).await;
            return None;
        }
    };
    // A body we cannot read is 415 with what we accept (RFC 3261 §8.2.3);
    // an Accept that excludes SDP, the only body we answer with, is 406
    // (§21.4.7). Both before routing: no call is placed (RFC 4475 §3.3.6,
    // §3.3.15).
    if crate::sip::message::unsupported_body(&req, req.body()) {
        let _ = tx
            .reply_with(
                crate::sip::message::status(415),
                vec![rsipstack::sip::Header::Accept(
                    crate::sip::message::ACCEPT.into(),
                )],
                None,
            )
            .await;
        drive(tx);
        return None;
    }
    if !crate::sip::message::accepts_sdp(&req) {
        reject(tx, 406).await;
        return None;
    }
    let (events_tx, events) = unbounded_channel();
    let mut guard = ctx.registry.enter();
    if let Some(cid) = call_id(&req) {
        guard.add(&cid, Side::A, events_tx.clone());
    }
    let a_conn = tx.connection.clone();
    let a_sender = tx.tu_sender.clone();
    let ev = events_tx.clone();
    tokio::spawn(async move {
        while let Some(msg) = tx.receive().await {
            if let SipMessage::Request(r) = msg {
                let e = match r.method {
                    Method::Cancel => CallEvent::ACancel,
                    Method::Ack => CallEvent::AAck(sdp_body(&r, r.body())),
                    _ => continue,
                };
                let _ = ev.send(e);
            }
        }
        let _ = ev.send(CallEvent::AGone);
    });
    let caller = caller_of(&req);
    // RFC 3262: reliable 18x to a caller that requires them.
    let a_reliable = super::reliable::caller_gets_reliable(&req).then(|| {
        ReliableUas::new(
            cseq_number(&req).unwrap_or(1),
            ReliableUas::random_first_rseq(),
        )
    });
    Some(Box::new(InboundCall {
        br: Bridge::new(ctx.clone(), events, events_tx),
        ctx,
        a_tag: new_tag(),
        invite: req,
        a_sender,
        a_conn,
        guard,
        started: Utc::now(),
        setup: crate::metrics::SetupTimer::start(),
        answered: None,
        route: None,
        caller,
        redirect,
        a_final: None,
        max_forwards: mf - 1,
        b_leg: None,
        a_offer: None,
        a_reliable,
        held_answer: false,
        early: early::EarlyMedia::default(),
    }))
}

struct InboundCall {
    ctx: Arc<Ctx>,
    a_tag: String,
    invite: Request,
    a_sender: TransactionEventSender,
    a_conn: Option<SipConnection>,
    guard: CallGuard,
    started: DateTime<Utc>,
    setup: crate::metrics::SetupTimer,
    answered: Option<DateTime<Utc>>,
    route: Option<CallRoute>,
    caller: Caller,
    redirect: String,
    a_final: Option<u16>,
    max_forwards: u32,
    b_leg: Option<UacLeg>,
    a_offer: Option<(ParsedSdp, AudioLine)>,
    /// Our reliable 18x to A, when A requires 100rel (RFC 3262 §3).
    a_reliable: Option<ReliableUas>,
    /// B answered, and our 2xx to A waits for the PRACK of a reliable 18x.
    held_answer: bool,
    /// Mediator's own media (announcement, ring-back, DTMF).
    early: early::EarlyMedia,
    /// What the legs share (media, dialogs, events), and the established phase.
    br: Bridge,
}

/// What the event loop should do next.
enum Flow {
    Continue,
    Done,
}

impl InboundCall {
    fn respond_a(&mut self, code: u16, sdp: Option<String>) {
        let resp = a_response(
            &self.ctx.endpoint,
            &self.ctx.cfg,
            &self.invite,
            &self.a_tag,
            code,
            sdp.as_deref(),
        );
        if let Some(rel) = self.a_reliable.as_mut() {
            if (101..200).contains(&code) {
                // Sent reliably, one at a time (RFC 3262 §3).
                if let Some(resp) = rel.send(resp, tokio::time::Instant::now()) {
                    let _ = self.a_sender.send(TransactionEvent::Respond(resp));
                }
                return;
            }
            if code >= 200 {
                rel.clear();
            }
        }
        if code >= 200 && self.a_final.is_none() {
            self.a_final = Some(code);
            if code >= 300 {
                self.br.stopped = Some(Utc::now());
            }
        }
        let mut resp = resp;
        if code == 200
            && let Some(t) = self.br.a_clock.timer
        {
            resp.headers.extend(t.response_headers());
        }
        let _ = self.a_sender.send(TransactionEvent::Respond(resp));
    }

    fn fail_a(&mut self, code: u16, side: &'static str) {
        if self.a_final.is_none() {
            self.respond_a(code, None);
            self.br.hangup.get_or_insert(side);
        }
    }

    async fn run(&mut self) {
        // Media first: no G.711 in A's offer is 488 before a binding is claimed.
        // No SDP: a delayed offer; we offer to A in the 200 (RFC 3261 §13.2.1).
        let (parsed, a_audio) = match sdp_body(&self.invite, self.invite.body()) {
            None => (None, AudioLine::everything()),
            Some(offer) => {
                let parsed = match sdp::parse(&offer) {
                    Ok(p) => p,
                    Err(e) => {
                        info!(error = %e, "bad SDP: 400");
                        return self.fail_a(400, "system");
                    }
                };
                let Some(a_audio) = parsed.audio.clone().filter(|a| !a.g711().is_empty()) else {
                    info!("no common codec: 488");
                    return self.fail_a(488, "system");
                };
                (Some(parsed), a_audio)
            }
        };

        // Route, while watching for CANCEL.
        let router = self.ctx.router.clone();
        let redirect = self.redirect.clone();
        let caller = self.caller.number.clone();
        let route_fut = async move { router.route(&redirect, caller.as_deref()).await };
        tokio::pin!(route_fut);
        let route = loop {
            tokio::select! {
                r = &mut route_fut => break r,
                ev = self.br.events.recv() => match ev {
                    Some(CallEvent::ACancel) => return self.fail_a(487, "caller"),
                    Some(CallEvent::AGone) | None => return,
                    Some(CallEvent::Request(tx, _)) => Box::pin(self.early_request(*tx)).await,
                    Some(_) => {}
                },
            }
        };
        let route = match route {
            Ok(Some(r)) => r,
            Ok(None) => {
                info!(did = %self.redirect, "no binding: 404");
                return self.fail_a(404, "system");
            }
            Err(e) => {
                warn!(error = %e, "router failed: 503");
                return self.fail_a(503, "system");
            }
        };
        self.route = Some(route.clone());

        // The phases are boxed so that the call's task is as large as the
        // phase it is in, not as the largest one: an established call then
        // holds only `established`'s state (about 3 KiB less per call).
        if let Err(e) = Box::pin(self.start_b(&route, &a_audio)).await {
            warn!(error = %e, "cannot start B leg: 503");
            return self.fail_a(503, "system");
        }
        self.br.a_seen = parsed.as_ref().map(sdp::origin_of);
        self.a_offer = parsed.map(|p| (p, a_audio));
        self.begin_media();
        Box::pin(self.ringing()).await;
        self.early.to_a = None;
        if self.br.b_dialog.is_some() && self.a_final == Some(200) {
            self.br.a_delayed = self.a_offer.is_none();
            self.bridge();
            Box::pin(self.br.established()).await;
        }
    }

    /// Allocates media, builds and sends B's INVITE, and starts reading its
    /// responses.
    async fn start_b(
        &mut self,
        route: &CallRoute,
        a_audio: &AudioLine,
    ) -> Result<(), crate::sip::SipError> {
        let ctx = self.ctx.clone();
        let a_pair = ctx.pool.allocate().await?;
        let b_pair = ctx.pool.allocate().await?;
        let relay = Relay::start(a_pair, b_pair);
        relay.set_remote(Side::A, a_audio.rtp_target(), a_audio.rtcp_target());
        let offer = sdp::offer_for_b(
            a_audio,
            self.br.b_origin,
            ctx.media.advertised_ip,
            relay.port(Side::B),
        )?;
        let presented = present(route, &self.caller);
        let cid = new_call_id(&ctx.cfg.advertised_host);
        let tag = new_tag();
        let mut params = BInvite {
            route,
            presented: &presented,
            max_forwards: self.max_forwards,
            sdp: &offer,
            call_id: &cid,
            from_tag: &tag,
            transport: ctx.cfg.trunk.proto,
        };
        self.guard.add(&cid, Side::B, self.br.events_tx.clone());
        let leg = UacLeg::send(&ctx, &mut params, Side::B, self.br.events_tx.clone()).await?;
        info!(call_id = %cid, to = %route.destination_did, binding = %route.binding_sid, "B leg INVITE sent");
        self.br.relay = Some(relay);
        self.br.b_sdp = Some(offer);
        self.br.b_invite = Some(leg.invite.clone());
        self.b_leg = Some(leg);
        Ok(())
    }

    /// Sends the B leg's INVITE again after a failure (see [`Retries::next`]).
    async fn send_b_retry(
        &mut self,
        ruri: Option<Uri>,
        headers: Vec<Header>,
    ) -> Result<(), crate::sip::SipError> {
        let ctx = self.ctx.clone();
        let Some(b) = self.b_leg.as_mut() else {
            return Err(crate::sip::SipError::Malformed("no B leg".into()));
        };
        b.retry(&ctx, ruri, headers, self.br.events_tx.clone())
            .await?;
        self.br.b_invite = Some(b.invite.clone());
        Ok(())
    }

    /// Cancels the B leg now, or as soon as it sent a provisional response
    /// (a CANCEL before any provisional is forbidden, RFC 3261 §9.1).
    fn cancel_b(&mut self) {
        let ctx = self.ctx.clone();
        let Some(b) = self.b_leg.as_mut() else { return };
        if b.cancelled {
            return;
        }
        if let Some(d) = self.br.b_dialog.clone() {
            // B answered but was never bridged (an announcement was still
            // playing to A): end it with BYE.
            b.cancelled = true;
            self.br.bye(Some(d));
            return;
        }
        b.cancel(&ctx);
    }

    /// Applies B's SDP (answer) to the relay, and fixes A's answer the
    /// first time.
    fn on_b_sdp(&mut self, body: &str) -> Result<(), MediaError> {
        let parsed = sdp::parse(body)?;
        self.br.b_seen = Some(sdp::origin_of(&parsed));
        let audio = parsed.audio.ok_or(MediaError::NoCommonCodec)?;
        let b_codec = sdp::answer_codec(&audio)?;
        let Some(relay) = self.br.relay.as_ref() else {
            return Err(MediaError::NoCommonCodec);
        };
        let ip = self.ctx.media.advertised_ip;
        match (&self.br.a_answer, &self.a_offer) {
            (Some(_), _) => {}
            (None, Some((offer, a_audio))) => {
                let a_codec = sdp::choose_for_a(a_audio, &b_codec)?;
                relay.set_codec(Side::A, a_codec);
                self.br.a_codec = Some(a_codec);
                self.br.a_answer = Some(sdp::answer_for(
                    offer,
                    a_audio,
                    &a_codec,
                    self.br.a_origin,
                    ip,
                    relay.port(Side::A),
                ));
            }
            (None, None) => {
                // Delayed offer: this is our offer to A; its answer comes in the ACK.
                self.br.a_answer = Some(sdp::offer_for_a(
                    &b_codec,
                    self.br.a_origin,
                    ip,
                    relay.port(Side::A),
                ));
            }
        }
        relay.set_remote(Side::B, audio.rtp_target(), audio.rtcp_target());
        relay.set_codec(Side::B, b_codec);
        self.br.b_codec = Some(b_codec);
        Ok(())
    }

    /// Handles a response on the B leg while it is being set up.
    async fn on_b_response(&mut self, r: Response) -> Flow {
        let code = code_of(&r);
        self.setup.b_response(code);
        let current = self.b_leg.as_ref().map(|b| b.is_current(&r));
        match current {
            None => return Flow::Done,
            Some(false) => {
                // A late response to an attempt we have retried.
                debug!(status = code, "response to an earlier B leg INVITE ignored");
                return Flow::Continue;
            }
            Some(true) => {}
        }
        if (101..200).contains(&code) {
            // RFC 3262 §4: PRACK each reliable 1xx once, in order; a
            // retransmitted or out-of-order one is not processed.
            let class = match self.b_leg.as_mut() {
                Some(b) => b.reliable.classify(&r),
                None => Provisional::Unreliable,
            };
            match class {
                Provisional::Stale => return Flow::Continue,
                Provisional::New(rseq) => self.prack_b(&r, rseq),
                Provisional::Unreliable => {}
            }
        }
        let Some(b) = self.b_leg.as_mut() else {
            return Flow::Done;
        };
        if code < 200 {
            b.provisional = true;
            if b.cancel_pending {
                self.cancel_b();
                return Flow::Continue;
            }
            if code == 100 || b.cancelled || self.a_final.is_some() {
                return Flow::Continue;
            }
            self.early.b_ringing = true;
            if !self.relays_b_progress() {
                // Our own media (or silence) is what A hears; B's SDP still
                // fixes the B side of the relay.
                if let Some(s) = sdp_body(&r, r.body())
                    && let Err(e) = self.on_b_sdp(&s)
                {
                    debug!(error = %e, "early SDP from B not usable");
                }
                return Flow::Continue;
            }
            let mut a_sdp = None;
            if let Some(s) = sdp_body(&r, r.body()) {
                match self.on_b_sdp(&s) {
                    // An offer may not go in an unreliable 1xx (RFC 3261 §13.3.1.1).
                    Ok(()) if self.a_offer.is_some() => a_sdp = self.br.a_answer.clone(),
                    Ok(()) => {}
                    Err(e) => debug!(error = %e, "early SDP from B not usable"),
                }
            }
            // 180/183 relayed; 183 carries our SDP, never B's.
            let code = if code == 181 || code == 182 {
                180
            } else {
                code
            };
            self.respond_a(code, a_sdp);
            return Flow::Continue;
        }
        if code < 300 {
            if self.br.b_dialog.is_some() {
                // A retransmission (re-ACKed by the stack), or another fork.
                self.br.end_other_fork(&r);
                return Flow::Continue;
            }
            if b.conn.is_none() {
                warn!("B answered but we have no connection to it");
                self.fail_a(500, "system");
                return Flow::Done;
            }
            // After our PRACKs, B's dialog goes on from their CSeq.
            let dialog = b.dialog(&self.ctx.cfg, &r);
            self.br.b_dialog = dialog.clone();
            if b.cancelled || b.cancel_pending || self.a_final.is_some() {
                // A is gone (CANCEL crossed the 200): end B (RFC 3261 §15).
                self.br.bye(dialog);
                return Flow::Done;
            }
            let sdp_ok = match sdp_body(&r, r.body()) {
                Some(s) => self.on_b_sdp(&s).is_ok(),
                None => self.br.a_answer.is_some(),
            };
            if !sdp_ok || dialog.is_none() {
                self.br.bye(dialog);
                self.fail_a(488, "system");
                return Flow::Done;
            }
            // RFC 4028: the timer B's 2xx gave (A's is armed when A is
            // answered).
            let asked = self
                .b_leg
                .as_ref()
                .map_or(self.ctx.cfg.timers.session_expires, |b| {
                    b.retries.session_expires()
                });
            self.br.b_clock.arm(super::session_timer::as_uac(&r, asked));
            if self.early.announcing {
                // Not bridged until the announcement ends (docs/media.md).
                info!("B answered during the announcement: A is answered when it ends");
                self.early.deferred_answer = true;
                return Flow::Continue;
            }
            if self.a_reliable.as_ref().is_some_and(|rel| !rel.settled()) {
                // RFC 3262 §3: no 2xx before our reliable 18x are PRACKed.
                info!("B answered; the 200 to A waits for A's PRACK");
                self.held_answer = true;
                return Flow::Continue;
            }
            self.answer_a();
            return Flow::Done;
        }
        if !b.cancelled && !b.cancel_pending && self.a_final.is_none() {
            match b.retries.next(&self.ctx.cfg, &b.invite, &r) {
                Retry::Again(ruri, headers) => match self.send_b_retry(ruri, headers).await {
                    Ok(()) => return Flow::Continue,
                    Err(e) => {
                        warn!(error = %e, "B leg retry not sent: 503");
                        self.fail_a(503, "system");
                        return Flow::Done;
                    }
                },
                Retry::Fail => {}
            }
        }
        info!(status = code, "B leg failed");
        self.fail_a(map_b_failure(code), "callee");
        Flow::Done
    }

    /// Answers A with 200 once B has answered (and A has PRACKed our
    /// reliable 18x): A's session timer, our answer, A's dialog.
    fn answer_a(&mut self) {
        self.held_answer = false;
        self.answered = Some(Utc::now());
        // RFC 4028: the timer A asked for (checked at admission).
        if let Ok(t) = super::session_timer::as_uas(&self.invite, &self.ctx.cfg.timers) {
            self.br.a_clock.arm(t);
        }
        self.respond_a(200, self.br.a_answer.clone());
        if let Some(conn) = self.a_conn.clone() {
            self.br.a_dialog = a_dialog(&self.ctx.cfg, &self.invite, &self.a_tag, conn);
        }
        info!("call answered");
    }

    /// Sends the PRACK for B's reliable 1xx `r` (RSeq `rseq`) in the early
    /// dialog it made (RFC 3262 §4), to the trunk; its 200 is absorbed.
    fn prack_b(&mut self, r: &Response, rseq: u32) {
        let ctx = self.ctx.clone();
        if let Some(b) = self.b_leg.as_mut() {
            b.prack(&ctx, r, rseq);
        }
    }

    /// A PRACK from A (RFC 3262 §3): 200 when it acknowledges our
    /// outstanding reliable 18x (the next queued one goes out), 481 when it
    /// matches none, 400 without a well-formed RAck.
    fn on_a_prack(&mut self, prack: &Request) -> u16 {
        let from_a = call_id(prack) == call_id(&self.invite);
        let Some(rel) = self.a_reliable.as_mut().filter(|_| from_a) else {
            return 481;
        };
        match rel.on_prack(prack, tokio::time::Instant::now()) {
            Ok(next) => {
                if let Some(resp) = next {
                    let _ = self.a_sender.send(TransactionEvent::Respond(resp));
                }
                200
            }
            Err(e) => {
                info!(error = %e, "PRACK refused");
                e.status()
            }
        }
    }

    /// The retransmission timer of our reliable 18x to A fired.
    fn on_reliable_timer(&mut self) {
        let Some(rel) = self.a_reliable.as_mut() else {
            return;
        };
        match rel.on_timer(tokio::time::Instant::now()) {
            Tick::Idle => {}
            Tick::Retransmit(resp) => {
                let _ = self.a_sender.send(TransactionEvent::Respond(*resp));
            }
            Tick::GiveUp => {
                // RFC 3262 §3: no PRACK in 64*T1 rejects the INVITE with a 5xx.
                info!("no PRACK from A for 64*T1: 500");
                self.fail_a(500, "system");
                self.cancel_b();
            }
        }
    }

    /// A request inside a dialog of a call that is not established yet.
    async fn early_request(&mut self, mut tx: Transaction) {
        let method = tx.original.method.clone();
        if method == Method::PRack {
            let code = self.on_a_prack(&tx.original);
            let _ = tx.reply(crate::sip::message::status(code)).await;
            drive(tx);
            return;
        }
        let code = match &method {
            Method::Bye => 200,
            Method::Options | Method::Info => 200,
            Method::Invite | Method::Update => 491,
            // 405 or 501 with Allow (RFC 3261 §8.2.1).
            m => super::legs::method_refusal(m).unwrap_or(405),
        };
        let allow = if matches!(code, 405 | 501) {
            vec![super::legs::allow_header()]
        } else {
            vec![]
        };
        let _ = tx
            .reply_with(crate::sip::message::status(code), allow, None)
            .await;
        drive(tx);
        if method == Method::Bye {
            self.fail_a(487, "caller");
            self.cancel_b();
        }
    }

    /// From B INVITE sent until B answered or the attempt ended.
    async fn ringing(&mut self) {
        let ctx = self.ctx.clone();
        let ring = tokio::time::sleep(ctx.cfg.ring_timeout);
        tokio::pin!(ring);
        let mut give_up_at: Option<tokio::time::Instant> = None;
        let mut shutting_down = false;
        loop {
            let b_done_wait = async {
                match give_up_at {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let reliable_due = self.a_reliable.as_ref().and_then(ReliableUas::deadline);
            let reliable_wait = async {
                match reliable_due {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut ring, if self.a_final.is_none() && !self.early.deferred_answer => {
                    let code = if self.b_leg.as_ref().is_some_and(|b| b.provisional) { 480 } else { 408 };
                    info!(status = code, "ring timeout");
                    self.fail_a(code, "system");
                    self.cancel_b();
                }
                _ = ctx.hangup_all.cancelled(), if !shutting_down => {
                    // Drain time over: A gets 503 if it is still waiting, and
                    // a B leg that owes us a final response (Timer B can be
                    // 32 s away) gets only a short wait, so the call ends and
                    // is recorded before the core stops.
                    shutting_down = true;
                    self.fail_a(503, "system");
                    self.cancel_b();
                    let soon = tokio::time::Instant::now() + SHUTDOWN_WAIT;
                    give_up_at = Some(give_up_at.map_or(soon, |d| d.min(soon)));
                }
                _ = b_done_wait => {
                    warn!("no final response from the B leg; giving up on it");
                    return;
                }
                _ = reliable_wait => self.on_reliable_timer(),
                ev = self.br.events.recv() => match ev {
                    None => return,
                    Some(CallEvent::ACancel) => {
                        info!("caller cancelled");
                        self.fail_a(487, "caller");
                        self.cancel_b();
                    }
                    Some(CallEvent::AAck(_)) | Some(CallEvent::AGone) | Some(CallEvent::AResponse(_)) => {}
                    Some(CallEvent::BResponse(r)) => {
                        if let Flow::Done = self.on_b_response(*r).await {
                            return;
                        }
                    }
                    Some(CallEvent::BGone) => {
                        self.fail_a(408, "system");
                        if !self.held_answer {
                            return;
                        }
                    }
                    Some(CallEvent::Request(tx, _)) => Box::pin(self.early_request(*tx)).await,
                    Some(CallEvent::Outcome(..)) => {}
                    Some(CallEvent::Media(m)) => {
                        if let Flow::Done = self.on_media(m) {
                            return;
                        }
                    }
                },
            }
            if self.held_answer {
                if self.a_final.is_some() {
                    // A failed while B's answer waited for A's PRACK: end B.
                    self.held_answer = false;
                    self.br.bye(self.br.b_dialog.clone());
                    return;
                }
                if self.a_reliable.as_ref().is_none_or(ReliableUas::settled) {
                    self.answer_a();
                    return;
                }
            }
            if self.a_final.is_some_and(|c| c >= 300) && self.early.deferred_answer {
                return; // B answered and has had its BYE
            }
            if self.a_final.is_some() && give_up_at.is_none() {
                give_up_at = Some(tokio::time::Instant::now() + CANCEL_WAIT);
            }
        }
    }

    /// Hands the call record, as `call_sid`, to the router.
    async fn record(&mut self, call_sid: String) {
        let stop = self.br.stopped.unwrap_or_else(Utc::now);
        let duration = self
            .answered
            .map(|a| (stop - a).num_seconds().max(0))
            .unwrap_or(0);
        if let Some(relay) = &self.br.relay {
            info!(
                rtp_from_a = relay.received(Side::A),
                rtp_from_b = relay.received(Side::B),
                "media totals"
            );
        }
        self.br.relay = None; // ports back to the pool
        let record = CallRecord {
            call_sid,
            binding_sid: self.route.as_ref().map(|r| r.binding_sid.clone()),
            number_src: self.caller.number.clone().unwrap_or_default(),
            number_dst: self
                .route
                .as_ref()
                .map(|r| r.destination_did.clone())
                .unwrap_or_default(),
            number_redirect: self.redirect.clone(),
            date_start: self.started,
            date_answer: self.answered,
            date_stop: stop,
            duration_secs: duration,
            sip_status: self.a_final.unwrap_or(500),
            hangup_side: self.br.hangup.map(str::to_string),
        };
        if let Err(e) = self.ctx.router.record_call(record).await {
            warn!(error = %e, "call record not stored");
        }
    }
}
