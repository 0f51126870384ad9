//! What the caller hears before the bridge (announcement, ring-back,
//! music, silence, B's own early media) and the DTMF sent to B after it
//! answers. The behaviour on the wire is in docs/media.md.

use tracing::{info, warn};

use super::{Flow, InboundCall};
use crate::call::registry::{CallEvent, MediaEvent};
use crate::call::router::Ringback;
use crate::media::player::{Playback, Source};
use crate::media::relay::Side;
use crate::media::sdp::{self, LegCodec};
use crate::media::{dtmf, tones};

/// The call's generated media.
#[derive(Default)]
pub(super) struct EarlyMedia {
    /// What plays to A now (dropping it stops it).
    pub to_a: Option<Playback>,
    /// DTMF playing to B.
    pub to_b: Option<Playback>,
    /// The announcement is loading or playing: B is not bridged yet.
    pub announcing: bool,
    /// A 183 with our SDP went to A: our early media flows.
    pub sdp_sent: bool,
    /// B sent a 180/183 that A has not heard of.
    pub b_ringing: bool,
    /// B answered while the announcement played; A's 200 waits for its end.
    pub deferred_answer: bool,
}

impl InboundCall {
    fn ringback(&self) -> Ringback {
        self.route
            .as_ref()
            .map(|r| r.media.ringback)
            .unwrap_or_default()
    }

    /// Whether B's 180/183 (and early media) go on to A as they come: only
    /// while none of our own media plays or is about to.
    pub(super) fn relays_b_progress(&self) -> bool {
        if self.early.announcing {
            return false;
        }
        match self.ringback() {
            Ringback::Passthrough => true,
            Ringback::Ring => !self.early.sdp_sent,
            Ringback::Silence | Ringback::Music => self.early.to_a.is_none(),
        }
    }

    /// Fixes A's answer from A's offer alone, for early media before B's
    /// SDP is known (the relay transcodes if B picks the other law).
    /// False for a delayed offer: an offer may not go in an unreliable
    /// 1xx (RFC 3261 §13.3.1.1), so no early media can be sent.
    fn early_answer(&mut self) -> bool {
        if self.br.a_answer.is_some() {
            return self.a_offer.is_some();
        }
        let (Some((offer, a_audio)), Some(relay)) = (&self.a_offer, &self.br.relay) else {
            return false;
        };
        let Some(&(pt, codec)) = a_audio.g711().first() else {
            return false;
        };
        let want = LegCodec {
            codec,
            pt,
            te_pt: a_audio.te_pt(),
        };
        let Ok(a_codec) = sdp::choose_for_a(a_audio, &want) else {
            return false;
        };
        relay.set_codec(Side::A, a_codec);
        self.br.a_codec = Some(a_codec);
        self.br.a_answer = Some(sdp::answer_for(
            offer,
            a_audio,
            &a_codec,
            self.br.a_origin,
            self.ctx.media.advertised_ip,
            relay.port(Side::A),
        ));
        true
    }

    /// Plays `source` to A as early media: a 183 with our SDP first (once),
    /// B's media held back. False when no early media is possible.
    fn play_to_a(&mut self, source: Source) -> bool {
        if !self.early_answer() {
            info!("delayed offer: no early media for the caller");
            return false;
        }
        let Some(relay) = self.br.relay.as_ref() else {
            return false;
        };
        relay.hold(Side::A, true);
        let outlet = relay.outlet(Side::A);
        self.early.to_a = Some(self.ctx.pacer.play(outlet, source));
        if !self.early.sdp_sent {
            self.early.sdp_sent = true;
            self.respond_a(183, self.br.a_answer.clone());
        }
        true
    }

    /// At the start of ringing: the announcement starts loading, or the
    /// ring-back that needs our own media starts.
    pub(super) fn begin_media(&mut self) {
        let Some(media) = self.route.as_ref().map(|r| r.media.clone()) else {
            return;
        };
        if let Some(src) = media.announce {
            if self.early_answer() {
                if let Some(relay) = self.br.relay.as_ref() {
                    relay.hold(Side::A, true);
                    relay.hold(Side::B, true);
                }
                self.early.announcing = true;
                let audio = self.ctx.audio.clone();
                let events = self.br.events_tx.clone();
                tokio::spawn(async move {
                    let clip = audio.load(&src).await.ok();
                    let _ = events.send(CallEvent::Media(MediaEvent::AnnounceLoaded(clip)));
                });
                return;
            }
            warn!("delayed offer: the announcement cannot be played as early media");
        }
        self.begin_ringback();
    }

    /// The ring-back phase (after the announcement, or from the start).
    fn begin_ringback(&mut self) {
        self.early.to_a = None;
        match self.ringback() {
            Ringback::Ring if self.early.sdp_sent => {
                let dest = self
                    .route
                    .as_ref()
                    .map(|r| r.destination_did.clone())
                    .unwrap_or_default();
                self.play_to_a(Source::Tone(tones::ToneGen::new(tones::for_number(&dest))));
            }
            Ringback::Ring => {
                if let Some(relay) = self.br.relay.as_ref() {
                    relay.hold(Side::A, false);
                }
                if self.early.b_ringing && self.a_final.is_none() {
                    self.respond_a(180, None);
                }
            }
            Ringback::Silence => {
                self.play_to_a(Source::Silence);
            }
            Ringback::Music => {
                let clip = self.ctx.moh.clone();
                self.play_to_a(Source::Clip { clip, looped: true });
            }
            Ringback::Passthrough => {
                if let Some(relay) = self.br.relay.as_ref() {
                    relay.hold(Side::A, false);
                }
                if self.early.b_ringing && self.a_final.is_none() {
                    let sdp = self.br.a_answer.clone().filter(|_| self.a_offer.is_some());
                    self.respond_a(if sdp.is_some() { 183 } else { 180 }, sdp);
                }
            }
        }
    }

    /// A media event during ringing.
    pub(super) fn on_media(&mut self, ev: MediaEvent) -> Flow {
        if self.a_final.is_some() {
            return Flow::Continue;
        }
        match ev {
            MediaEvent::AnnounceLoaded(Some(clip)) if self.early.announcing => {
                info!(secs = clip.duration().as_secs_f32(), "announcement plays");
                if self.play_to_a(Source::Clip {
                    clip,
                    looped: false,
                }) && let Some(p) = self.early.to_a.as_ref()
                {
                    let mut done = p.done_signal();
                    let events = self.br.events_tx.clone();
                    tokio::spawn(async move {
                        if done.wait_for(|d| *d).await.is_ok() {
                            let _ = events.send(CallEvent::Media(MediaEvent::AnnounceDone));
                        }
                    });
                    return Flow::Continue;
                }
                self.announcement_over()
            }
            MediaEvent::AnnounceLoaded(_) | MediaEvent::AnnounceDone => {
                if self.early.announcing {
                    self.announcement_over()
                } else {
                    Flow::Continue
                }
            }
        }
    }

    /// The announcement ended (or could not play): bridge if B answered,
    /// else the ring-back phase.
    fn announcement_over(&mut self) -> Flow {
        self.early.announcing = false;
        if let Some(relay) = self.br.relay.as_ref() {
            relay.hold(Side::B, false);
        }
        if self.early.deferred_answer {
            self.early.to_a = None;
            self.answer_a();
            return Flow::Done;
        }
        self.begin_ringback();
        Flow::Continue
    }

    /// B answered and A has its 200: our media to A stops and the legs are
    /// bridged; then the `dtmf` digits start towards B.
    pub(super) fn bridge(&mut self) {
        self.early.to_a = None;
        let Some(relay) = self.br.relay.as_ref() else {
            return;
        };
        relay.hold(Side::A, false);
        relay.hold(Side::B, false);
        let Some(digits) = self.route.as_ref().and_then(|r| r.media.dtmf.clone()) else {
            return;
        };
        let slots = match dtmf::schedule(&digits) {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "dtmf not sent");
                return;
            }
        };
        if self.br.b_codec.and_then(|c| c.te_pt).is_none() {
            warn!("dtmf not sent: the B leg negotiated no telephone-event");
            return;
        }
        info!(digits = %digits, "dtmf to the B leg");
        relay.hold(Side::B, true);
        let outlet = relay.outlet(Side::B);
        self.early.to_b = Some(
            self.ctx
                .pacer
                .play_then_release(outlet, Source::Dtmf(slots)),
        );
    }
}
