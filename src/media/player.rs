//! Mediator's own media: announcements, music, ring-back tones, silence
//! and DTMF events, played to one leg in 20 ms packets by a shared pacer.
//!
//! The [`Pacer`] is a few tasks (shards), each waking every 20 ms and
//! sending one slot of every stream it holds, so a thousand streams cost
//! a few timers, not a thousand. The RTP timestamps come from the slot's
//! scheduled time, not from when the task woke, so they are regular even
//! when the task is late.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audio_codec_algorithms::{encode_alaw, encode_ulaw};
use tokio::sync::{mpsc, watch};

use super::audio::Clip;
use super::dtmf::Slot;
use super::g711::Codec;
use super::relay::Outlet;
use super::stream::FRAME;
use super::tones::ToneGen;

/// The packet interval.
pub const PTIME: Duration = Duration::from_millis(20);

/// What a stream plays.
pub enum Source {
    /// A clip, once (announcement) or looped (music on hold).
    Clip {
        /// The decoded audio.
        clip: Arc<Clip>,
        /// Start again at the end instead of finishing.
        looped: bool,
    },
    /// A tone without end (ring-back).
    Tone(ToneGen),
    /// G.711 silence without end.
    Silence,
    /// RFC 4733 events on the leg's telephone-event payload type.
    Dtmf(Vec<Slot>),
}

struct State {
    source: Source,
    pos: usize,
    event_ts: u32,
}

/// A stream being played; shared by its [`Playback`] handle and the pacer.
struct Stream {
    outlet: Outlet,
    state: Mutex<State>,
    stopped: AtomicBool,
    done: watch::Sender<bool>,
    /// Release the leg's hold when the source has played to its end.
    release: bool,
}

impl Stream {
    /// Sends one slot; false once the stream is over (finished or stopped).
    fn tick(&self, now: Instant) -> bool {
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        let Ok(mut st) = self.state.lock() else {
            return false;
        };
        let st = &mut *st;
        let finished = match &st.source {
            Source::Clip { clip, looped } => {
                (!*looped && st.pos >= clip.samples.len()) || clip.samples.is_empty()
            }
            Source::Dtmf(slots) => st.pos >= slots.len(),
            _ => false,
        };
        if finished {
            if self.release {
                self.outlet.hold(false);
            }
            let _ = self.done.send(true);
            return false;
        }
        let mut frame = [0i16; FRAME as usize];
        let mut event = None;
        match &mut st.source {
            Source::Clip { clip, looped } => {
                for s in frame.iter_mut() {
                    if st.pos >= clip.samples.len() {
                        if !*looped {
                            break;
                        }
                        st.pos = 0;
                    }
                    *s = clip.samples[st.pos];
                    st.pos += 1;
                }
            }
            Source::Tone(g) => g.fill(&mut frame),
            Source::Silence => {}
            Source::Dtmf(slots) => {
                if let Slot::Event { payload, first } = slots[st.pos] {
                    event = Some((payload, first));
                }
                st.pos += 1;
            }
        }
        let event_ts = &mut st.event_ts;
        self.outlet.send(|w, codec| {
            let (ts, switch) = w.generated_slot(now);
            match (event, codec.te_pt) {
                (Some((payload, first)), Some(te)) => {
                    if first {
                        *event_ts = ts;
                    }
                    vec![w.packet(te, first || switch, *event_ts, &payload)]
                }
                _ => vec![w.packet(codec.pt, switch, ts, &encode(&frame, codec.codec))],
            }
        });
        true
    }
}

/// G.711-encodes one frame of linear samples.
pub fn encode(frame: &[i16], law: Codec) -> Vec<u8> {
    match law {
        Codec::Pcmu => frame.iter().map(|&s| encode_ulaw(s)).collect(),
        Codec::Pcma => frame.iter().map(|&s| encode_alaw(s)).collect(),
    }
}

/// The handle of a playing stream; dropping it stops the stream.
pub struct Playback {
    stream: Arc<Stream>,
    done: watch::Receiver<bool>,
}

impl Playback {
    /// Waits until the source has played to its end (never, for looped
    /// and endless sources).
    pub async fn finished(&mut self) {
        let _ = self.done.wait_for(|d| *d).await;
    }

    /// A receiver that turns `true` when the source has played to its end
    /// (and errs if it is stopped first).
    pub fn done_signal(&self) -> watch::Receiver<bool> {
        self.done.clone()
    }

    /// Whether the source has played to its end.
    pub fn is_finished(&self) -> bool {
        *self.done.borrow()
    }
}

impl Drop for Playback {
    fn drop(&mut self) {
        self.stream.stopped.store(true, Ordering::Relaxed);
    }
}

type Paced = Arc<Stream>;

/// The shared 20 ms clock of all generated streams.
pub struct Pacer {
    shards: Vec<mpsc::UnboundedSender<Paced>>,
    next: AtomicUsize,
    active: Arc<AtomicUsize>,
}

impl Pacer {
    /// Starts `shards` pacing tasks (at least one) on the current runtime.
    ///
    /// The shards tick out of phase, shard `i` at `i * 20 ms / shards`
    /// into each 20 ms period: their bursts of packets do not compete for
    /// the runtime's threads, so the order (and thus each stream's offset
    /// in its period) stays the same from one tick to the next and adds no
    /// jitter at the receiver (docs/performance.md, "Generated media").
    pub fn start(shards: usize) -> Arc<Pacer> {
        let active = Arc::new(AtomicUsize::new(0));
        let n = shards.max(1);
        let t0 = tokio::time::Instant::now();
        let shards = (0..n)
            .map(|i| {
                let (tx, rx) = mpsc::unbounded_channel();
                let phase = PTIME * u32::try_from(i).unwrap_or(0) / u32::try_from(n).unwrap_or(1);
                tokio::spawn(shard(rx, active.clone(), t0 + phase));
                tx
            })
            .collect();
        Arc::new(Pacer {
            shards,
            next: AtomicUsize::new(0),
            active,
        })
    }

    /// Streams playing now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Starts playing `source` out of `outlet`; the first packet goes out
    /// at the next tick of its shard.
    pub fn play(&self, outlet: Outlet, source: Source) -> Playback {
        self.spawn_stream(outlet, source, false)
    }

    /// As [`Pacer::play`], and the leg's hold ([`Outlet::hold`]) is
    /// released when the source has played to its end (DTMF: relayed
    /// media resumes after the digits).
    pub fn play_then_release(&self, outlet: Outlet, source: Source) -> Playback {
        self.spawn_stream(outlet, source, true)
    }

    fn spawn_stream(&self, outlet: Outlet, source: Source, release: bool) -> Playback {
        let (done, rx) = watch::channel(false);
        let stream = Arc::new(Stream {
            outlet,
            state: Mutex::new(State {
                source,
                pos: 0,
                event_ts: 0,
            }),
            stopped: AtomicBool::new(false),
            done,
            release,
        });
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.shards.len();
        self.active.fetch_add(1, Ordering::Relaxed);
        if self.shards[i].send(stream.clone()).is_err() {
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
        Playback { stream, done: rx }
    }
}

async fn shard(
    mut rx: mpsc::UnboundedReceiver<Paced>,
    active: Arc<AtomicUsize>,
    first: tokio::time::Instant,
) {
    let mut streams: Vec<Paced> = Vec::new();
    let mut clock = tokio::time::interval_at(first, PTIME);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            at = clock.tick() => {
                let now = at.into_std();
                let before = streams.len();
                streams.retain(|s| s.tick(now));
                active.fetch_sub(before - streams.len(), Ordering::Relaxed);
            }
            s = rx.recv() => match s {
                Some(s) => streams.push(s),
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::ports::PortPool;
    use crate::media::relay::{Relay, Side};
    use crate::media::sdp::LegCodec;
    use tokio::net::UdpSocket;

    async fn setup(base: u16) -> (Relay, UdpSocket, Arc<PortPool>) {
        let pool = PortPool::new(base, base + 9, "127.0.0.1".parse().expect("ip"));
        let relay = Relay::start(
            pool.allocate().await.expect("a"),
            pool.allocate().await.expect("b"),
        );
        let pa = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        relay.set_codec(
            Side::A,
            LegCodec {
                codec: Codec::Pcma,
                pt: 8,
                te_pt: Some(101),
            },
        );
        relay.set_remote(Side::A, pa.local_addr().ok(), None);
        (relay, pa, pool)
    }

    async fn recv(s: &UdpSocket) -> Vec<u8> {
        let mut buf = [0u8; 512];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), s.recv_from(&mut buf))
            .await
            .expect("a packet")
            .expect("recv");
        buf[..n].to_vec()
    }

    #[tokio::test]
    async fn clip_plays_once_then_finishes() {
        let (relay, pa, _pool) = setup(42040).await;
        let pacer = Pacer::start(2);
        let clip = Arc::new(Clip {
            samples: vec![8000; 400], // 50 ms: three packets, the last short-filled
        });
        let mut p = pacer.play(
            relay.outlet(Side::A),
            Source::Clip {
                clip,
                looped: false,
            },
        );
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(recv(&pa).await);
        }
        tokio::time::timeout(Duration::from_secs(1), p.finished())
            .await
            .expect("finishes");
        assert!(p.is_finished());
        assert_eq!(got[0][1], 0x80 | 8, "PCMA with the marker first");
        assert_eq!(got[1][1], 8);
        assert_eq!(got[0].len(), 172);
        assert_eq!(got[0][12], encode_alaw(8000));
        assert_eq!(got[2][12 + 80], encode_alaw(0), "past the end: silence");
        let seq = |p: &Vec<u8>| u16::from_be_bytes([p[2], p[3]]);
        assert_eq!(seq(&got[1]), seq(&got[0]).wrapping_add(1));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(pacer.active(), 0);
    }

    #[tokio::test]
    async fn dtmf_events_share_a_timestamp() {
        let (relay, pa, _pool) = setup(42060).await;
        let pacer = Pacer::start(1);
        let slots = crate::media::dtmf::schedule("7").expect("valid");
        let mut p = pacer.play(relay.outlet(Side::A), Source::Dtmf(slots));
        let mut events = Vec::new();
        for _ in 0..10 {
            events.push(recv(&pa).await);
        }
        tokio::time::timeout(Duration::from_secs(1), p.finished())
            .await
            .expect("finishes");
        let ts = |p: &Vec<u8>| u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        let ev: Vec<&Vec<u8>> = events.iter().filter(|p| p[1] & 0x7f == 101).collect();
        assert_eq!(ev.len(), 8);
        assert!(
            ev.iter().all(|p| ts(p) == ts(ev[0])),
            "one timestamp per event"
        );
        assert_eq!(ev[0][1], 0x80 | 101, "marker on the first");
        assert!(ev[1..].iter().all(|p| p[1] & 0x80 == 0));
        assert_eq!(ev[0][12], 7);
        assert_eq!(events.len() - ev.len(), 2, "then silence");
        assert_eq!(events[9][1] & 0x7f, 8);
    }

    #[tokio::test]
    async fn stopping_drops_the_stream() {
        let (relay, pa, _pool) = setup(42080).await;
        let pacer = Pacer::start(1);
        let p = pacer.play(relay.outlet(Side::A), Source::Silence);
        let first = recv(&pa).await;
        assert_eq!(first[12], encode_alaw(0));
        drop(p);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(pacer.active(), 0);
    }
}
