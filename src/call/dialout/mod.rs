//! The dialout call (issue 6): Mediator calls stage one through the trunk
//! from the redirect DID, optionally asks it to confirm with the digit 1
//! (`use_call_confirmation`), plays `announce` to it, calls stage two while
//! stage one hears the `ringback`, and bridges them with anchored media.
//!
//! Both legs are UAC legs ([`UacLeg`]: retries, PRACK, CANCEL), A is stage
//! one and B stage two in the relay, the registry and the [`Bridge`], whose
//! established phase (re-INVITE, UPDATE, INFO, BYE, session timers) is the
//! binding call's. The ladders are in docs/call-flows.md ("Dialouts").

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rsipstack::sip::{Method, Response};
use rsipstack::transaction::Transaction;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Ctx;
use super::binding::drive;
use super::bridge::Bridge;
use super::callerid::{Caller, Presented, present};
use super::legs::BInvite;
use super::registry::{CallEvent, CallGuard};
use super::reliable::Provisional;
use super::retry::Retry;
use super::router::{CallRecord, CallRoute, DialoutOutcome, DialoutRecord, Ringback};
use super::uac::UacLeg;
use crate::media::player::{Playback, Source};
use crate::media::relay::{Relay, Side};
use crate::media::sdp::{self, AudioLine};
use crate::media::tones;
use crate::model::dialout::Dialout;
use crate::sip::message::{code_of, new_call_id, new_tag, sdp_body, to_tag};

/// Max-Forwards of the INVITEs we originate (RFC 3261 §8.1.1.6).
const MAX_FORWARDS: u32 = 70;

/// After a CANCEL (or a ring timeout), how long we still wait for the
/// leg's final response, so a 200 that crossed the CANCEL gets its BYE.
const SETTLE_WAIT: Duration = Duration::from_secs(4);

/// How many times the confirmation prompt plays before stage one is given
/// up on.
const PROMPT_PLAYS: u32 = 2;

/// Runs one dialout to its end and reports its outcome through
/// [`super::router::CallRouter::finish_dialout`]. Its log lines are in a
/// `call{call_sid}` span, the SID of stage one's record.
pub(crate) async fn run(ctx: Arc<Ctx>, dialout: Dialout) {
    let sid = crate::model::new_sid();
    let span = tracing::info_span!("call", call_sid = %sid);
    tracing::Instrument::instrument(
        async move {
            info!(dialout = %dialout.dialout_sid, "dialout starts");
            let mut call = Box::new(DialoutCall::new(ctx, dialout, sid));
            let outcome = call.run().await;
            call.finish(outcome).await;
        },
        span,
    )
    .await
}

/// One stage of the dialout: the party called and how its leg went.
struct Stage {
    /// Its record's SID.
    sid: String,
    /// Who is called, and how (caller ID, headers).
    route: CallRoute,
    /// The identity presented to it (From, P-Asserted-Identity).
    presented: Presented,
    leg: Option<UacLeg>,
    /// When its INVITE was sent (`None`: never called).
    started: Option<DateTime<Utc>>,
    answered: Option<DateTime<Utc>>,
    /// When the leg ended before the bridge (a failure, a BYE).
    stopped: Option<DateTime<Utc>>,
    /// The leg's final status (200 once answered).
    status: Option<u16>,
    /// When it must have answered.
    ring_until: Option<Instant>,
    /// The To tag and SDP of its latest 1xx with SDP (the early answer) to
    /// the current attempt: the answer when the 2xx of that early dialog
    /// carries none (RFC 3261 §13.2.1 wants it repeated there, but trunks
    /// often leave it out; the binding call accepts it too).
    early_sdp: Option<(Option<String>, String)>,
}

impl Stage {
    fn new(sid: String, route: CallRoute, other: &str) -> Stage {
        // hide_origination_did: the redirect DID; else the other party.
        let presented = present(
            &route,
            &Caller {
                number: Some(other.to_string()),
                anonymous: false,
            },
        );
        Stage {
            sid,
            presented,
            route,
            leg: None,
            started: None,
            answered: None,
            stopped: None,
            status: None,
            ring_until: None,
            early_sdp: None,
        }
    }
}

/// What woke the call's wait loop.
enum Woke {
    /// The leg answered (its dialog is in the bridge).
    Answered(Side),
    /// The leg failed with this final status (or 408: no answer).
    Failed(Side, u16),
    /// An answered leg sent BYE.
    HungUp(Side),
    /// Drain time over.
    Shutdown,
    /// Stage one pressed a key (RFC 4733 event or SIP INFO).
    Digit(char),
    /// What played to stage one has ended.
    PlayDone,
    /// The wait's own deadline passed.
    Timeout,
}

struct DialoutCall {
    ctx: Arc<Ctx>,
    dialout: Dialout,
    br: Bridge,
    guard: CallGuard,
    one: Stage,
    two: Stage,
    /// What plays to stage one now (prompt, announcement, ring-back).
    playing: Option<Playback>,
    /// Set when what plays has ended.
    play_done: Option<tokio::sync::watch::Receiver<bool>>,
    /// RFC 4733 events from stage one, while confirmation waits for them.
    digits: Option<UnboundedReceiver<u8>>,
}

impl DialoutCall {
    fn new(ctx: Arc<Ctx>, dialout: Dialout, sid: String) -> DialoutCall {
        let (events_tx, events) = unbounded_channel();
        let one_route = crate::routing::dialout_route(&dialout, &dialout.stage_one_destination_did);
        let two_route = crate::routing::dialout_route(&dialout, &dialout.stage_two_destination_did);
        let one = Stage::new(sid, one_route, &dialout.stage_two_destination_did);
        let two = Stage::new(
            crate::model::new_sid(),
            two_route,
            &dialout.stage_one_destination_did,
        );
        DialoutCall {
            guard: ctx.registry.enter(),
            br: Bridge::new(ctx.clone(), events, events_tx),
            ctx,
            dialout,
            one,
            two,
            playing: None,
            play_done: None,
            digits: None,
        }
    }

    fn stage(&mut self, side: Side) -> &mut Stage {
        match side {
            Side::A => &mut self.one,
            Side::B => &mut self.two,
        }
    }

    /// The whole call; returns how it ended.
    async fn run(&mut self) -> DialoutOutcome {
        if self.ctx.draining.load(Ordering::SeqCst) {
            info!("shutting down: dialout not placed");
            return DialoutOutcome::Cancelled;
        }
        let ctx = self.ctx.clone();
        let relay = match (ctx.pool.allocate().await, ctx.pool.allocate().await) {
            (Ok(a), Ok(b)) => Relay::start(a, b),
            _ => {
                warn!("no RTP ports for the dialout");
                self.one.status = Some(503);
                return DialoutOutcome::StageOneFailed;
            }
        };
        // Held both ways until the bridge: each stage hears only what we
        // play to it (or stage two's early media with passthrough).
        relay.hold(Side::A, true);
        relay.hold(Side::B, true);
        self.br.relay = Some(relay);
        self.br.a_acked = true; // we are stage one's UAC: nothing to ACK

        // Stage one.
        if let Err(e) = self.call(Side::A).await {
            warn!(error = %e, "stage one INVITE not sent");
            self.one.status = Some(503);
            return DialoutOutcome::StageOneFailed;
        }
        loop {
            match self.wait(None).await {
                Woke::Answered(Side::A) => break,
                Woke::Failed(Side::A, code) => {
                    info!(status = code, "stage one failed");
                    return match code {
                        486 | 600 => DialoutOutcome::StageOneBusy,
                        408 | 480 | 487 => DialoutOutcome::StageOneNoAnswer,
                        _ => DialoutOutcome::StageOneFailed,
                    };
                }
                Woke::Shutdown => return self.shutdown().await,
                _ => {}
            }
        }
        info!("stage one answered");

        // Confirmation, then the announcement, to stage one.
        if let Some(src) = self.confirm_source() {
            match self.confirm(&src).await {
                Ok(()) => info!("stage one confirmed"),
                Err(outcome) => return outcome,
            }
        }
        if let Some(src) = self.one.route.media.announce.clone() {
            let clip = self.ctx.audio.load(&src).await.ok();
            match clip {
                None => warn!("announcement not loaded: stage two is called without it"),
                Some(clip) => {
                    info!(secs = clip.duration().as_secs_f32(), "announcement plays");
                    self.play(Source::Clip {
                        clip,
                        looped: false,
                    });
                    loop {
                        match self.wait(None).await {
                            Woke::PlayDone => break,
                            Woke::HungUp(Side::A) => return self.stage_one_hung_up(),
                            Woke::Shutdown => return self.shutdown().await,
                            _ => {}
                        }
                    }
                }
            }
        }

        // Stage two, while stage one hears the ring-back.
        self.ringback();
        if let Err(e) = self.call(Side::B).await {
            warn!(error = %e, "stage two INVITE not sent");
            self.two.status = Some(503);
            return self.end_stage_one(DialoutOutcome::StageTwoFailed);
        }
        loop {
            match self.wait(None).await {
                Woke::Answered(Side::B) => break,
                Woke::Failed(Side::B, code) => {
                    info!(status = code, "stage two failed");
                    let outcome = match code {
                        486 | 600 => DialoutOutcome::StageTwoBusy,
                        408 | 480 | 487 => DialoutOutcome::StageTwoNoAnswer,
                        _ => DialoutOutcome::StageTwoFailed,
                    };
                    return self.end_stage_one(outcome);
                }
                Woke::HungUp(Side::A) => {
                    self.cancel(Side::B).await;
                    return self.stage_one_hung_up();
                }
                Woke::Shutdown => return self.shutdown().await,
                _ => {}
            }
        }

        // Bridged.
        info!("stage two answered: bridged");
        self.stop_playing();
        if let Some(relay) = self.br.relay.as_ref() {
            relay.hold(Side::A, false);
            relay.hold(Side::B, false);
        }
        Box::pin(self.br.established()).await;
        DialoutOutcome::Connected
    }

    /// The `use_call_confirmation` source, when confirmation is on.
    fn confirm_source(&self) -> Option<String> {
        self.dialout
            .attributes
            .get("use_call_confirmation")
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case("false"))
            .map(str::to_string)
    }

    /// Plays the confirmation prompt to stage one (its own audio, or the
    /// built-in prompt when that cannot be fetched or decoded) and waits
    /// `sip.confirm_timeout_secs` after it for a digit; once more on
    /// silence. '1' confirms; another digit or silence ends stage one with
    /// BYE ([`DialoutOutcome::NotConfirmed`]).
    async fn confirm(&mut self, src: &str) -> Result<(), DialoutOutcome> {
        let clip = match self.ctx.audio.load(src).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "confirmation prompt not loaded: the default prompt plays");
                self.ctx.prompt.clone()
            }
        };
        if let Some(relay) = self.br.relay.as_ref() {
            self.digits = Some(relay.tap_events(Side::A));
        }
        for play in 1..=PROMPT_PLAYS {
            info!(play, "confirmation prompt plays");
            self.play(Source::Clip {
                clip: clip.clone(),
                looped: false,
            });
            let mut deadline = None;
            loop {
                match self.wait(deadline).await {
                    Woke::PlayDone => {
                        deadline = Some(Instant::now() + self.ctx.cfg.confirm_timeout);
                    }
                    Woke::Digit('1') => {
                        self.digits = None;
                        self.stop_playing();
                        return Ok(());
                    }
                    Woke::Digit(d) => {
                        info!(digit = %d, "stage one pressed another key: not confirmed");
                        self.digits = None;
                        return Err(self.end_stage_one(DialoutOutcome::NotConfirmed));
                    }
                    Woke::Timeout => break,
                    Woke::HungUp(Side::A) => return Err(self.stage_one_hung_up()),
                    Woke::Shutdown => return Err(self.shutdown().await),
                    _ => {}
                }
            }
        }
        info!("no digit from stage one: not confirmed");
        self.digits = None;
        Err(self.end_stage_one(DialoutOutcome::NotConfirmed))
    }

    /// Starts what stage one hears while stage two is called.
    fn ringback(&mut self) {
        match self.two.route.media.ringback {
            Ringback::Ring => {
                let spec = tones::for_number(&self.dialout.stage_two_destination_did);
                self.play(Source::Tone(tones::ToneGen::new(spec)));
            }
            Ringback::Silence => self.play(Source::Silence),
            Ringback::Music => {
                let clip = self.ctx.moh.clone();
                self.play(Source::Clip { clip, looped: true });
            }
            Ringback::Passthrough => {
                // Stage two's early media goes to stage one as it comes.
                self.stop_playing();
                if let Some(relay) = self.br.relay.as_ref() {
                    relay.hold(Side::A, false);
                }
            }
        }
    }

    /// Plays `source` to stage one in place of what played before.
    fn play(&mut self, source: Source) {
        let Some(relay) = self.br.relay.as_ref() else {
            return;
        };
        relay.hold(Side::A, true);
        let p = self.ctx.pacer.play(relay.outlet(Side::A), source);
        self.play_done = Some(p.done_signal());
        self.playing = Some(p);
    }

    fn stop_playing(&mut self) {
        self.playing = None;
        self.play_done = None;
    }

    /// Builds and sends the INVITE of stage `side` to the trunk, with our
    /// SDP offer: to stage one G.711 PCMU and PCMA with telephone-event; to
    /// stage two stage one's law first (no transcoding when it takes it).
    async fn call(&mut self, side: Side) -> Result<(), crate::sip::SipError> {
        let ctx = self.ctx.clone();
        let ip = ctx.media.advertised_ip;
        let offer = {
            let Some(relay) = self.br.relay.as_ref() else {
                return Err(crate::sip::SipError::Malformed("no relay".into()));
            };
            match (side, self.br.a_codec) {
                (Side::B, Some(one)) => {
                    sdp::offer_for_a(&one, self.br.b_origin, ip, relay.port(Side::B))
                }
                (Side::B, None) => sdp::offer_for_b(
                    &AudioLine::everything(),
                    self.br.b_origin,
                    ip,
                    relay.port(Side::B),
                )?,
                (Side::A, _) => sdp::offer_for_b(
                    &AudioLine::everything(),
                    self.br.a_origin,
                    ip,
                    relay.port(Side::A),
                )?,
            }
        };
        let cid = new_call_id(&ctx.cfg.advertised_host);
        let tag = new_tag();
        let events = self.br.events_tx.clone();
        self.guard.add(&cid, side, events.clone());
        let stage = self.stage(side);
        let mut params = BInvite {
            route: &stage.route,
            presented: &stage.presented,
            max_forwards: MAX_FORWARDS,
            sdp: &offer,
            call_id: &cid,
            from_tag: &tag,
            transport: ctx.cfg.trunk.proto,
        };
        stage.started = Some(Utc::now());
        let leg = UacLeg::send(&ctx, &mut params, side, events).await?;
        info!(?side, call_id = %cid, to = %stage.route.destination_did, from = ?stage.presented.from_user, "dialout INVITE sent");
        stage.ring_until = Some(Instant::now() + ctx.cfg.ring_timeout);
        let invite = leg.invite.clone();
        stage.leg = Some(leg);
        match side {
            Side::A => {
                self.br.a_answer = Some(offer);
                self.br.a_invite = Some(invite);
            }
            Side::B => {
                self.br.b_sdp = Some(offer);
                self.br.b_invite = Some(invite);
            }
        }
        Ok(())
    }

    /// Waits for the next thing the call must act on; `deadline` adds a
    /// [`Woke::Timeout`]. Responses, ring timeouts and in-dialog requests
    /// that need no decision are handled here.
    async fn wait(&mut self, deadline: Option<Instant>) -> Woke {
        let drain = self.ctx.hangup_all.clone();
        loop {
            let ringing = [Side::A, Side::B].into_iter().find_map(|s| {
                let st = self.stage(s);
                let live = st.leg.is_some() && st.status.is_none();
                st.ring_until.filter(|_| live).map(|t| (s, t))
            });
            let ring_wait = async {
                match ringing {
                    Some((_, t)) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let own_wait = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let mut done = self.play_done.clone();
            let play_wait = async {
                match done.as_mut() {
                    Some(d) => {
                        if d.wait_for(|v| *v).await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    }
                    None => std::future::pending().await,
                }
            };
            let digit_wait = async {
                match self.digits.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = drain.cancelled() => return Woke::Shutdown,
                _ = ring_wait => {
                    if let Some((side, _)) = ringing {
                        info!(?side, "ring timeout");
                        let code = self.cancel(side).await;
                        // A 200 that crossed our CANCEL came too late: it
                        // got BYE, and the stage counts as not answered.
                        return Woke::Failed(side, if code < 300 { 408 } else { code });
                    }
                }
                _ = own_wait => return Woke::Timeout,
                _ = play_wait => {
                    self.play_done = None;
                    return Woke::PlayDone;
                }
                d = digit_wait => match d.and_then(event_digit) {
                    Some(c) => {
                        info!(digit = %c, "RFC 4733 event from stage one");
                        return Woke::Digit(c);
                    }
                    None => self.digits = None,
                },
                ev = self.br.events.recv() => {
                    let Some(ev) = ev else { return Woke::Shutdown };
                    if let Some(w) = self.on_event(ev).await {
                        return w;
                    }
                }
            }
        }
    }

    async fn on_event(&mut self, ev: CallEvent) -> Option<Woke> {
        match ev {
            CallEvent::AResponse(r) => self.on_response(Side::A, *r).await,
            CallEvent::BResponse(r) => self.on_response(Side::B, *r).await,
            CallEvent::AGone => self.on_gone(Side::A),
            CallEvent::BGone => self.on_gone(Side::B),
            CallEvent::Request(tx, side) => self.on_request(*tx, side).await,
            CallEvent::ACancel
            | CallEvent::AAck(_)
            | CallEvent::Outcome(..)
            | CallEvent::Media(_) => None,
        }
    }

    /// The INVITE transaction of `side` ended without a final response.
    fn on_gone(&mut self, side: Side) -> Option<Woke> {
        let st = self.stage(side);
        if st.status.is_some() || st.leg.is_none() {
            return None;
        }
        warn!(?side, "no final response to the INVITE");
        st.status = Some(408);
        st.stopped = Some(Utc::now());
        Some(Woke::Failed(side, 408))
    }

    /// A response to the INVITE of `side`.
    async fn on_response(&mut self, side: Side, r: Response) -> Option<Woke> {
        let code = code_of(&r);
        let ctx = self.ctx.clone();
        let events = self.br.events_tx.clone();
        let stage = match side {
            Side::A => &mut self.one,
            Side::B => &mut self.two,
        };
        let leg = stage.leg.as_mut()?;
        if !leg.is_current(&r) {
            debug!(status = code, "response to an earlier INVITE ignored");
            return None;
        }
        if code < 200 {
            if code > 100 {
                match leg.reliable.classify(&r) {
                    Provisional::Stale => return None,
                    Provisional::New(rseq) => leg.prack(&ctx, &r, rseq),
                    Provisional::Unreliable => {}
                }
            }
            leg.provisional = true;
            if leg.cancel_pending {
                leg.cancel(&ctx);
            }
            let early = sdp_body(&r, r.body()).filter(|_| code > 100);
            if let Some(s) = &early {
                stage.early_sdp = Some((to_tag(&r), s.clone()));
            }
            if side == Side::B
                && let Some(s) = early
            {
                // Stage two's early media: heard by stage one with
                // passthrough, else kept from it (held).
                if let Err(e) = self.apply_answer(Side::B, &s) {
                    debug!(error = %e, "early SDP from stage two not usable");
                }
            }
            return None;
        }
        if code < 300 {
            let dialog_exists = match side {
                Side::A => self.br.a_dialog.is_some(),
                Side::B => self.br.b_dialog.is_some(),
            };
            if dialog_exists {
                self.br.end_other_fork(&r);
                return None;
            }
            let stage = self.stage(side);
            let leg = stage.leg.as_mut()?;
            leg.conn.as_ref()?;
            let dialog = leg.dialog(&ctx.cfg, &r);
            let asked = leg.retries.session_expires();
            let cancelled = leg.cancelled || leg.cancel_pending;
            if cancelled || stage.status.is_some() {
                // Our CANCEL crossed the 200 (RFC 3261 §15): end it.
                info!(?side, "answered after we gave up on it: BYE");
                self.br.bye(dialog);
                return None;
            }
            let tag = to_tag(&r);
            let answer = sdp_body(&r, r.body()).or_else(|| {
                stage
                    .early_sdp
                    .clone()
                    .filter(|(t, _)| *t == tag)
                    .map(|(_, s)| s)
            });
            let usable = answer.is_some_and(|s| self.apply_answer(side, &s).is_ok());
            let stage = self.stage(side);
            if !usable || dialog.is_none() {
                warn!(?side, "answered without a usable SDP answer: BYE");
                stage.status = Some(488);
                stage.stopped = Some(Utc::now());
                self.br.bye(dialog);
                return Some(Woke::Failed(side, 488));
            }
            stage.status = Some(200);
            stage.answered = Some(Utc::now());
            let timer = super::session_timer::as_uac(&r, asked);
            match side {
                Side::A => {
                    self.br.a_dialog = dialog;
                    self.br.a_clock.arm(timer);
                }
                Side::B => {
                    self.br.b_dialog = dialog;
                    self.br.b_clock.arm(timer);
                }
            }
            return Some(Woke::Answered(side));
        }
        if !leg.cancelled && !leg.cancel_pending && stage.status.is_none() {
            match leg.retries.next(&ctx.cfg, &leg.invite, &r) {
                Retry::Again(ruri, headers) => match leg.retry(&ctx, ruri, headers, events).await {
                    Ok(()) => {
                        // A new attempt: the last one's early answer is not its.
                        stage.early_sdp = None;
                        let invite = leg.invite.clone();
                        match side {
                            Side::A => self.br.a_invite = Some(invite),
                            Side::B => self.br.b_invite = Some(invite),
                        }
                        return None;
                    }
                    Err(e) => warn!(error = %e, "INVITE retry not sent"),
                },
                Retry::Fail => {}
            }
        }
        if stage.status.is_some() {
            // The final response to a leg we already gave up on (CANCEL, ring
            // timeout): it is its status.
            if stage.answered.is_none() {
                stage.status = Some(code);
            }
            return None;
        }
        stage.status = Some(code);
        stage.stopped = Some(Utc::now());
        Some(Woke::Failed(side, code))
    }

    /// Applies the SDP answer of `side` to the relay.
    fn apply_answer(&mut self, side: Side, body: &str) -> Result<(), crate::media::MediaError> {
        let parsed = sdp::parse(body)?;
        let audio = parsed
            .audio
            .clone()
            .ok_or(crate::media::MediaError::NoCommonCodec)?;
        let codec = sdp::answer_codec(&audio)?;
        let Some(relay) = self.br.relay.as_ref() else {
            return Err(crate::media::MediaError::NoCommonCodec);
        };
        relay.set_remote(side, audio.rtp_target(), audio.rtcp_target());
        relay.set_codec(side, codec);
        match side {
            Side::A => {
                self.br.a_codec = Some(codec);
                self.br.a_seen = Some(sdp::origin_of(&parsed));
            }
            Side::B => {
                self.br.b_codec = Some(codec);
                self.br.b_seen = Some(sdp::origin_of(&parsed));
            }
        }
        Ok(())
    }

    /// A request in a dialog of the call before the bridge.
    async fn on_request(&mut self, mut tx: Transaction, side: Side) -> Option<Woke> {
        let method = tx.original.method.clone();
        let mut woke = None;
        let code = match &method {
            Method::Ack => return None,
            Method::Bye => {
                info!(?side, "BYE before the bridge");
                let st = self.stage(side);
                st.stopped = Some(Utc::now());
                self.br.hangup.get_or_insert(match side {
                    Side::A => "caller",
                    Side::B => "callee",
                });
                match side {
                    Side::A => self.br.a_dialog = None,
                    Side::B => self.br.b_dialog = None,
                }
                woke = Some(Woke::HungUp(side));
                200
            }
            Method::Info => {
                if side == Side::A
                    && let Some(d) = info_digit(&tx.original)
                {
                    info!(digit = %d, "SIP INFO digit from stage one");
                    woke = Some(Woke::Digit(d));
                }
                200
            }
            Method::Options => 200,
            Method::PRack => 481,
            // No offer/answer before the bridge (RFC 3261 §14.1: 491, the
            // party tries again later).
            Method::Invite | Method::Update => 491,
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
        woke
    }

    /// Gives up on the INVITE of `side` (CANCEL, or BYE if it has just
    /// answered) and waits a little for its final response; returns the
    /// leg's status for the record (487 when cancelled after a provisional
    /// response, 408 when nothing came).
    async fn cancel(&mut self, side: Side) -> u16 {
        let ctx = self.ctx.clone();
        let st = self.stage(side);
        let Some(leg) = st.leg.as_mut() else {
            return 408;
        };
        if st.status.is_some() {
            return st.status.unwrap_or(408);
        }
        let provisional = leg.provisional;
        leg.cancel(&ctx);
        st.stopped = Some(Utc::now());
        let settle = Instant::now() + SETTLE_WAIT;
        while Instant::now() < settle {
            let ev = tokio::time::timeout_at(settle, self.br.events.recv()).await;
            let Ok(Some(ev)) = ev else { break };
            match ev {
                CallEvent::AResponse(r) | CallEvent::BResponse(r) if self.settled(side, &r) => {
                    break;
                }
                CallEvent::Request(tx, s) => {
                    let _ = self.on_request(*tx, s).await;
                }
                _ => {}
            }
        }
        let st = self.stage(side);
        let code = st.status.unwrap_or(if provisional { 487 } else { 408 });
        st.status = Some(code);
        code
    }

    /// A response while a cancelled leg settles: true once final (a 2xx
    /// that crossed the CANCEL gets BYE).
    fn settled(&mut self, side: Side, r: &Response) -> bool {
        let code = code_of(r);
        let ctx = self.ctx.clone();
        let st = self.stage(side);
        let Some(leg) = st.leg.as_mut() else {
            return true;
        };
        if crate::sip::message::call_id(r) != crate::sip::message::call_id(&leg.invite)
            || !leg.is_current(r)
        {
            return false; // the other leg's, or an earlier attempt's
        }
        if code < 200 {
            leg.provisional = true;
            if leg.cancel_pending {
                leg.cancel(&ctx);
            }
            return false;
        }
        st.status = Some(code);
        if code < 300 {
            let dialog = leg.dialog(&ctx.cfg, r);
            info!(?side, "answered as it was cancelled: BYE");
            self.br.bye(dialog);
        }
        true
    }

    /// Ends stage one (BYE) after its answer, with `outcome`.
    fn end_stage_one(&mut self, outcome: DialoutOutcome) -> DialoutOutcome {
        self.stop_playing();
        self.br.hangup.get_or_insert("system");
        if let Some(d) = self.br.a_dialog.take() {
            self.br.bye(Some(d));
            self.one.stopped = Some(Utc::now());
        }
        outcome
    }

    fn stage_one_hung_up(&mut self) -> DialoutOutcome {
        info!("stage one hung up before the bridge");
        self.stop_playing();
        DialoutOutcome::StageOneHungUp
    }

    /// Drain time over before the bridge: every leg ends. A ringing leg
    /// is cancelled and waited for ([`SETTLE_WAIT`], within the drain's
    /// grace), so a 200 that crosses the CANCEL gets its BYE before the
    /// process exits.
    async fn shutdown(&mut self) -> DialoutOutcome {
        info!("drain time over: dialout cancelled");
        for side in [Side::A, Side::B] {
            let st = self.stage(side);
            if st.leg.is_some() && st.status.is_none() {
                self.cancel(side).await;
            }
        }
        if let Some(d) = self.br.b_dialog.take() {
            self.br.bye(Some(d));
        }
        self.end_stage_one(DialoutOutcome::Cancelled)
    }

    /// Closes the call's events and ends with BYE each 2xx still queued
    /// for a stage that was never answered (one that crossed our CANCEL
    /// after [`SETTLE_WAIT`]). A 2xx that comes later finds the events
    /// closed and is ended by the leg's watcher (`src/call/uac.rs`). A
    /// request still queued is answered: BYE 200, others 481 (later ones
    /// get 481 from the dispatcher, as for any dialog that has gone).
    async fn end_late_answers(&mut self) {
        self.br.events.close();
        // After close(), recv() still yields what is queued or being sent,
        // then None (bounded in case a sender stalls).
        let until = Instant::now() + Duration::from_secs(1);
        while let Ok(Some(ev)) = tokio::time::timeout_at(until, self.br.events.recv()).await {
            let (side, r) = match ev {
                CallEvent::AResponse(r) => (Side::A, r),
                CallEvent::BResponse(r) => (Side::B, r),
                CallEvent::Request(tx, _) => {
                    // Came as the dialout ended (a BYE crossing ours):
                    // answered, never left to the peer's retransmissions.
                    let code = if tx.original.method == Method::Bye {
                        200
                    } else {
                        481
                    };
                    tokio::spawn(super::reply(*tx, code, false));
                    continue;
                }
                _ => continue,
            };
            if !(200..300).contains(&code_of(&r)) {
                continue;
            }
            let ctx = self.ctx.clone();
            let st = self.stage(side);
            let Some(leg) = st.leg.as_ref() else { continue };
            if st.answered.is_some() || !leg.is_current(&r) {
                continue;
            }
            let dialog = leg.dialog(&ctx.cfg, &r);
            info!(?side, "answered as the dialout ended: BYE");
            self.br.bye(dialog);
        }
    }

    /// Records each leg that was called and reports the outcome.
    async fn finish(&mut self, outcome: DialoutOutcome) {
        self.end_late_answers().await;
        self.stop_playing();
        if let Some(relay) = &self.br.relay {
            info!(
                rtp_from_stage_one = relay.received(Side::A),
                rtp_from_stage_two = relay.received(Side::B),
                "media totals"
            );
        }
        self.br.relay = None; // ports back to the pool
        let end = self.br.stopped.unwrap_or_else(Utc::now);
        // No party hung up (a failure, a timeout, a shutdown): Mediator did.
        let hangup = Some(self.br.hangup.unwrap_or("system").to_string());
        let redirect = self.dialout.redirect_did.clone();
        let legs: Vec<CallRecord> = [&self.one, &self.two]
            .into_iter()
            .filter_map(|st| {
                let start = st.started?;
                let stop = st.stopped.unwrap_or(end).max(start);
                Some(CallRecord {
                    call_sid: st.sid.clone(),
                    binding_sid: None,
                    number_src: st.presented.from_user.clone().unwrap_or_default(),
                    number_dst: st.route.destination_did.clone(),
                    number_redirect: redirect.clone(),
                    date_start: start,
                    date_answer: st.answered,
                    date_stop: stop,
                    duration_secs: st
                        .answered
                        .map(|a| (stop - a).num_seconds().max(0))
                        .unwrap_or(0),
                    sip_status: st.status.unwrap_or(500),
                    hangup_side: hangup.clone(),
                })
            })
            .collect();
        info!(
            outcome = outcome.as_str(),
            legs = legs.len(),
            "dialout ended"
        );
        let record = DialoutRecord {
            dialout_sid: self.dialout.dialout_sid.clone(),
            account_sid: self.dialout.account_sid.clone(),
            outcome,
            legs,
        };
        if let Err(e) = self.ctx.router.finish_dialout(record).await {
            warn!(error = %e, "dialout outcome not recorded");
        }
    }
}

/// The key of an RFC 4733 event code (§3.2: 0-9, 10 `*`, 11 `#`, 12-15
/// A-D); `None` for other events.
fn event_digit(code: u8) -> Option<char> {
    Some(match code {
        0..=9 => char::from(b'0' + code),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + code - 12),
        _ => return None,
    })
}

/// The key in a SIP INFO body: `application/dtmf-relay` (`Signal=1`) or
/// `application/dtmf` (the key alone).
fn info_digit(req: &rsipstack::sip::Request) -> Option<char> {
    let ctype = crate::sip::message::header_value(req, "Content-Type")?.to_ascii_lowercase();
    let body = std::str::from_utf8(&req.body).ok()?;
    let value = if ctype.starts_with("application/dtmf-relay") {
        body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
        })?
    } else if ctype.starts_with("application/dtmf") {
        body.trim()
    } else {
        return None;
    };
    let mut chars = value.chars();
    let c = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && matches!(c, '0'..='9' | '*' | '#' | 'A'..='D')).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4733_event_codes_are_keys() {
        assert_eq!(event_digit(1), Some('1'));
        assert_eq!(event_digit(0), Some('0'));
        assert_eq!(event_digit(10), Some('*'));
        assert_eq!(event_digit(11), Some('#'));
        assert_eq!(event_digit(15), Some('D'));
        assert_eq!(event_digit(16), None);
    }

    fn info(ctype: &str, body: &str) -> rsipstack::sip::Request {
        let text = format!(
            "INFO sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\r\nFrom: <sip:1@x>;tag=1\r\nTo: <sip:2@x>;tag=2\r\nCall-ID: c\r\nCSeq: 2 INFO\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match rsipstack::sip::SipMessage::try_from(text.as_str()) {
            Ok(rsipstack::sip::SipMessage::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn sip_info_digits() {
        assert_eq!(
            info_digit(&info(
                "application/dtmf-relay",
                "Signal=1\r\nDuration=160\r\n"
            )),
            Some('1')
        );
        assert_eq!(
            info_digit(&info("application/dtmf-relay", "Signal= 2\r\n")),
            Some('2')
        );
        assert_eq!(info_digit(&info("application/dtmf", "1")), Some('1'));
        assert_eq!(info_digit(&info("application/dtmf", "12")), None);
        assert_eq!(info_digit(&info("text/plain", "Signal=1")), None);
    }
}
