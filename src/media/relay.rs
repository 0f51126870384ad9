//! The RTP/RTCP relay between the two legs of a call.
//!
//! Each leg has its own port pair. Packets received on leg X's RTP socket
//! go out of leg Y's RTP socket to Y's remote address, with the payload type
//! renumbered to Y's numbers and G.711 translated between µ-law and A-law
//! when the legs negotiated different laws. RTCP is forwarded unchanged.
//!
//! Remote addresses start from SDP and then latch onto the source of
//! received packets (symmetric RTP, RFC 4961), so parties behind NAT work.
//!
//! A party may change its source mid-call (RFC 3550 §8.2: a new SSRC, a new
//! address or port after a NAT rebinding, a media server taking over, a
//! phone's network change; fault class 15). The relay re-latches onto a new
//! source once the latched source has been silent for [`RELATCH_SILENCE`]
//! and the new source has sent [`RELATCH_PACKETS`] packets since the
//! latched one was last heard. While the latched source keeps sending,
//! packets from any other source are dropped (the RTP-bleed guard: a
//! stranger cannot take over a live stream by spraying packets at the
//! port). RTCP follows the same rule on its own port. The relay forwards
//! whatever SSRC a source uses; a new SSRC alone changes nothing here.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtp_rs::RtpReader;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::g711::{Codec, transcode};
use super::ports::PortPair;
use super::sdp::LegCodec;
use super::stream::StreamWriter;

/// Silence of the latched source after which a new source may take over
/// (RFC 3550 §8.2; fault class 15). Longer than a few packet times (20 ms),
/// short enough that a party that moved is heard again at once.
pub const RELATCH_SILENCE: Duration = Duration::from_millis(250);

/// Packets a new source must have sent, while the latched source is silent,
/// before it is latched: one stray packet never moves the stream.
pub const RELATCH_PACKETS: u32 = 3;

/// A leg of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The caller's leg.
    A,
    /// The callee's (trunk) leg.
    B,
}

impl Side {
    /// The other leg of the call.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    fn idx(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

/// Where one stream (RTP or RTCP) of a leg comes from and goes to.
#[derive(Default, Clone, Copy)]
struct Remote {
    /// The address the party's SDP names.
    sdp: Option<SocketAddr>,
    /// The latched source and when it was last heard.
    latched: Option<(SocketAddr, Instant)>,
    /// Another source heard since the latched one last sent, and how many
    /// packets it sent meanwhile.
    candidate: Option<(SocketAddr, u32)>,
}

impl Remote {
    /// Accepts `src` as a packet source (latching, or re-latching once the
    /// latched source is silent, see the module documentation), or refuses
    /// it.
    fn accept(&mut self, src: SocketAddr, now: Instant) -> bool {
        let Some((addr, seen)) = self.latched else {
            self.latch(src, now);
            return true;
        };
        if addr == src {
            self.latch(src, now);
            return true;
        }
        let count = match self.candidate {
            Some((c, n)) if c == src => n.saturating_add(1),
            _ => 1,
        };
        self.candidate = Some((src, count));
        if now.saturating_duration_since(seen) >= RELATCH_SILENCE && count >= RELATCH_PACKETS {
            self.latch(src, now);
            true
        } else {
            false
        }
    }

    fn latch(&mut self, src: SocketAddr, now: Instant) {
        self.latched = Some((src, now));
        self.candidate = None;
    }

    fn target(&self) -> Option<SocketAddr> {
        self.latched.map(|(a, _)| a).or(self.sdp)
    }
}

#[derive(Default)]
struct LegState {
    codec: Option<LegCodec>,
    rtp: Remote,
    rtcp: Remote,
    /// Set once Mediator generates media towards this leg: relayed RTP
    /// towards it is then rewritten onto one stream with the generated
    /// packets (one SSRC, continuous numbering).
    writer: Option<StreamWriter>,
    /// While set, RTP relayed towards this leg is dropped (generated media
    /// plays, or the legs are not bridged yet).
    held: bool,
    /// Where RFC 4733 events received from this leg are reported (see
    /// [`Relay::tap_events`]), and the timestamp of the last one reported.
    tap: Option<(tokio::sync::mpsc::UnboundedSender<u8>, Option<u32>)>,
}

impl LegState {
    /// Reports the RFC 4733 event in `pkt` (an RTP packet from this leg on
    /// its telephone-event payload type) once per event: an event is one
    /// timestamp (RFC 4733 §2.5.1.2), reported on its first packet seen
    /// (which may be a retransmitted end packet).
    fn tap_event(&mut self, pkt: &[u8]) {
        let (Some((tx, last)), Some(te)) = (self.tap.as_mut(), self.codec.and_then(|c| c.te_pt))
        else {
            return;
        };
        let Ok(r) = RtpReader::new(pkt) else { return };
        if r.payload_type() != te || r.payload().len() < 4 {
            return;
        }
        let ts = r.timestamp();
        if *last == Some(ts) {
            return;
        }
        *last = Some(ts);
        let _ = tx.send(r.payload()[0]);
    }
}

struct Shared {
    legs: Mutex<[LegState; 2]>,
    received: [AtomicU64; 2],
    sent: [AtomicU64; 2],
}

/// A running relay; dropping it stops the relay and frees its ports.
pub struct Relay {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    ports: [u16; 2],
    pairs: Arc<[PortPair; 2]>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rtp,
    Rtcp,
}

/// Largest datagram relayed; longer ones are cut by the kernel to this.
const MAX_DATAGRAM: usize = 2048;

/// Datagrams read from one socket before the others get a turn.
const BURST: usize = 32;

impl Relay {
    /// Starts relaying between leg A's pair and leg B's pair.
    ///
    /// One task serves all four sockets of the call with one buffer: a call
    /// costs one task and 2 KiB of buffer, not one task and buffer per
    /// socket (a long-lived call's memory is dominated by these).
    pub fn start(a: PortPair, b: PortPair) -> Relay {
        let shared = Arc::new(Shared {
            legs: Mutex::new([LegState::default(), LegState::default()]),
            received: [AtomicU64::new(0), AtomicU64::new(0)],
            sent: [AtomicU64::new(0), AtomicU64::new(0)],
        });
        let cancel = CancellationToken::new();
        let ports = [a.port, b.port];
        let pairs = Arc::new([a, b]);
        let task = tokio::spawn(run(shared.clone(), cancel.clone(), pairs.clone()));
        Relay {
            shared,
            cancel,
            task,
            ports,
            pairs,
        }
    }

    /// Our RTP port on `side`.
    pub fn port(&self, side: Side) -> u16 {
        self.ports[side.idx()]
    }

    /// Sets the remote addresses of `side` learnt from its SDP.
    /// A new address in a later offer or answer (re-anchoring, field case
    /// BC-07) also drops the latched source, so media goes to the new
    /// address at once and its packets are accepted.
    pub fn set_remote(&self, side: Side, rtp: Option<SocketAddr>, rtcp: Option<SocketAddr>) {
        if let Ok(mut legs) = self.shared.legs.lock() {
            let leg = &mut legs[side.idx()];
            if leg.rtp.sdp != rtp {
                leg.rtp.latched = None;
                leg.rtp.candidate = None;
            }
            if leg.rtcp.sdp != rtcp {
                leg.rtcp.latched = None;
                leg.rtcp.candidate = None;
            }
            leg.rtp.sdp = rtp;
            leg.rtcp.sdp = rtcp;
        }
    }

    /// Sets what `side` negotiated.
    pub fn set_codec(&self, side: Side, codec: LegCodec) {
        if let Ok(mut legs) = self.shared.legs.lock() {
            legs[side.idx()].codec = Some(codec);
        }
    }

    /// Holds (`true`) or releases RTP relayed towards `side`: while held,
    /// packets from the other leg are not sent to `side` (the legs are not
    /// bridged yet, or Mediator's own media plays to it).
    pub fn hold(&self, side: Side, held: bool) {
        if let Ok(mut legs) = self.shared.legs.lock() {
            legs[side.idx()].held = held;
        }
    }

    /// A way to send generated RTP to `side` out of its socket, on one
    /// stream with what is relayed to it ([`StreamWriter`]).
    pub fn outlet(&self, side: Side) -> Outlet {
        if let Ok(mut legs) = self.shared.legs.lock() {
            legs[side.idx()]
                .writer
                .get_or_insert_with(StreamWriter::new);
        }
        Outlet {
            shared: self.shared.clone(),
            pairs: self.pairs.clone(),
            side,
        }
    }

    /// From now on, reports each RFC 4733 event received from `side` on its
    /// negotiated telephone-event payload type (its event code: 0-9 the
    /// digits, 10 `*`, 11 `#`, RFC 4733 §3.2), once per event; the packets
    /// are relayed (or dropped) as before. Dropping the receiver stops it.
    pub fn tap_events(&self, side: Side) -> tokio::sync::mpsc::UnboundedReceiver<u8> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if let Ok(mut legs) = self.shared.legs.lock() {
            legs[side.idx()].tap = Some((tx, None));
        }
        rx
    }

    /// RTP/RTCP packets received from `side` so far.
    pub fn received(&self, side: Side) -> u64 {
        self.shared.received[side.idx()].load(Ordering::Relaxed)
    }

    /// RTP/RTCP packets sent towards `side` so far.
    pub fn sent(&self, side: Side) -> u64 {
        self.shared.sent[side.idx()].load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.task.abort();
    }
}

fn socket(p: &PortPair, kind: Kind) -> &UdpSocket {
    match kind {
        Kind::Rtp => &p.rtp,
        Kind::Rtcp => &p.rtcp,
    }
}

/// The relay task: waits until one of the four sockets is readable, then
/// forwards what it holds (at most [`BURST`] datagrams per turn).
async fn run(shared: Arc<Shared>, cancel: CancellationToken, pairs: Arc<[PortPair; 2]>) {
    let mut buf = [0u8; MAX_DATAGRAM];
    let [a, b] = &*pairs;
    loop {
        let (from, kind, ready) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = a.rtp.readable() => (Side::A, Kind::Rtp, r),
            r = b.rtp.readable() => (Side::B, Kind::Rtp, r),
            r = a.rtcp.readable() => (Side::A, Kind::Rtcp, r),
            r = b.rtcp.readable() => (Side::B, Kind::Rtcp, r),
        };
        if ready.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let to = match from {
            Side::A => Side::B,
            Side::B => Side::A,
        };
        let rx = socket(&pairs[from.idx()], kind);
        let tx = socket(&pairs[to.idx()], kind);
        for _ in 0..BURST {
            let (n, src) = match rx.try_recv_from(&mut buf) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // ICMP errors surface here on some systems; never spin.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    break;
                }
            };
            forward(&shared, from, to, kind, &mut buf[..n], src, tx).await;
        }
    }
}

/// Forwards one datagram received on leg `from` out of leg `to`'s socket
/// `tx`, when its source is accepted and the other leg has a target.
async fn forward(
    shared: &Shared,
    from: Side,
    to: Side,
    kind: Kind,
    pkt: &mut [u8],
    src: SocketAddr,
    tx: &UdpSocket,
) {
    let dest = {
        let Ok(mut legs) = shared.legs.lock() else {
            return;
        };
        let now = Instant::now();
        let leg = &mut legs[from.idx()];
        let remote = match kind {
            Kind::Rtp => &mut leg.rtp,
            Kind::Rtcp => &mut leg.rtcp,
        };
        if !remote.accept(src, now) {
            return;
        }
        let from_codec = leg.codec;
        if kind == Kind::Rtp && leg.tap.is_some() {
            leg.tap_event(pkt);
        }
        let out = &mut legs[to.idx()];
        let dest = match kind {
            Kind::Rtp => out.rtp.target(),
            Kind::Rtcp => out.rtcp.target(),
        };
        shared.received[from.idx()].fetch_add(1, Ordering::Relaxed);
        if kind == Kind::Rtp {
            let (Some(f), Some(t)) = (from_codec, out.codec) else {
                return;
            };
            if out.held || !translate(pkt, &f, &t) {
                return;
            }
            if let Some(w) = out.writer.as_mut() {
                w.relay(pkt, now);
            }
        }
        dest
    };
    let Some(dest) = dest else { return };
    if tx.send_to(pkt, dest).await.is_ok() {
        shared.sent[to.idx()].fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends Mediator's own RTP to one leg (see [`Relay::outlet`]). Holds the
/// relay's sockets: the ports are leased until the last outlet drops.
#[derive(Clone)]
pub struct Outlet {
    shared: Arc<Shared>,
    pairs: Arc<[PortPair; 2]>,
    side: Side,
}

impl Outlet {
    /// Holds or releases RTP relayed towards this leg ([`Relay::hold`]).
    pub fn hold(&self, held: bool) {
        if let Ok(mut legs) = self.shared.legs.lock() {
            legs[self.side.idx()].held = held;
        }
    }

    /// What the leg negotiated, once known.
    pub fn codec(&self) -> Option<LegCodec> {
        let legs = self.shared.legs.lock().ok()?;
        legs[self.side.idx()].codec
    }

    /// Builds packets with the leg's stream writer and codec, and sends
    /// them without waiting (a full socket buffer drops them, as the
    /// network would). Returns how many were sent; 0 while the leg has no
    /// codec or address yet.
    pub fn send(&self, build: impl FnOnce(&mut StreamWriter, &LegCodec) -> Vec<Vec<u8>>) -> usize {
        let (dest, pkts) = {
            let Ok(mut legs) = self.shared.legs.lock() else {
                return 0;
            };
            let leg = &mut legs[self.side.idx()];
            let (Some(dest), Some(codec)) = (leg.rtp.target(), leg.codec) else {
                return 0;
            };
            let w = leg.writer.get_or_insert_with(StreamWriter::new);
            (dest, build(w, &codec))
        };
        let sock = &self.pairs[self.side.idx()].rtp;
        let mut sent = 0;
        for p in &pkts {
            if sock.try_send_to(p, dest).is_ok() {
                sent += 1;
            }
        }
        self.shared.sent[self.side.idx()].fetch_add(sent as u64, Ordering::Relaxed);
        sent
    }
}

/// Rewrites one RTP packet from leg `from`'s numbering and law to leg
/// `to`'s. Returns `false` when the packet must be dropped (not RTP, or a
/// payload the other leg did not negotiate).
pub fn translate(pkt: &mut [u8], from: &LegCodec, to: &LegCodec) -> bool {
    let Ok(reader) = RtpReader::new(pkt) else {
        return false;
    };
    let pt = reader.payload_type();
    let offset = reader.payload_offset();
    let padding = usize::from(reader.padding().unwrap_or(0));
    let end = pkt.len().saturating_sub(padding);
    // The negotiated law, or a static G.711 number the sender switched to.
    let law = if pt == from.pt {
        Some(from.codec)
    } else if from.te_pt == Some(pt) {
        None
    } else {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => return false,
        }
    };
    let new_pt = match law {
        Some(law) => {
            if offset <= end {
                transcode(&mut pkt[offset..end], law, to.codec);
            }
            to.pt
        }
        None => match to.te_pt {
            Some(te) => te,
            None => return false,
        },
    };
    pkt[1] = (pkt[1] & 0x80) | (new_pt & 0x7f);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x80,
            pt | if marker { 0x80 } else { 0 },
            0,
            1,
            0,
            0,
            0,
            160,
            1,
            2,
            3,
            4,
        ];
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn renumbers_and_transcodes() {
        let a = LegCodec {
            codec: Codec::Pcmu,
            pt: 0,
            te_pt: Some(101),
        };
        let b = LegCodec {
            codec: Codec::Pcma,
            pt: 8,
            te_pt: Some(96),
        };
        let mut p = packet(0, true, &[0xFF, 0xFF]);
        assert!(translate(&mut p, &a, &b));
        assert_eq!(p[1], 0x80 | 8);
        assert_eq!(&p[12..], &[0xD5, 0xD5]);
        let mut e = packet(101, false, &[1, 0x80, 0, 160]);
        assert!(translate(&mut e, &a, &b));
        assert_eq!(e[1], 96);
        assert_eq!(&e[12..], &[1, 0x80, 0, 160], "event payload untouched");
    }

    #[test]
    fn drops_unnegotiated() {
        let a = LegCodec {
            codec: Codec::Pcmu,
            pt: 0,
            te_pt: Some(101),
        };
        let b = LegCodec {
            codec: Codec::Pcmu,
            pt: 0,
            te_pt: None,
        };
        let mut e = packet(101, false, &[1, 0, 0, 160]);
        assert!(!translate(&mut e, &a, &b));
        let mut g729 = packet(18, false, &[1, 2]);
        assert!(!translate(&mut g729, &a, &b));
        assert!(!translate(&mut [1u8, 2, 3], &a, &b));
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn latching() {
        let mut r = Remote::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let (x, y) = (addr("127.0.0.1:4000"), addr("127.0.0.1:5000"));
        assert!(r.accept(x, t0), "the first source latches");
        assert!(!r.accept(y, ms(100)), "another source while x is active");
        assert!(r.accept(x, ms(120)));
        // x goes silent; y needs the silence and three packets.
        assert!(!r.accept(y, ms(370)), "1 packet, x silent 250 ms");
        assert!(!r.accept(y, ms(390)), "2 packets");
        assert!(
            r.accept(y, ms(410)),
            "3 packets, x silent 290 ms: re-latched"
        );
        assert_eq!(r.target(), Some(y));
        // Now x is the stranger.
        assert!(!r.accept(x, ms(420)));
    }

    #[test]
    fn no_relatch_while_latched_source_active() {
        // RTP bleed: a stranger sprays packets while the party talks.
        let mut r = Remote::default();
        let t0 = Instant::now();
        let (x, evil) = (addr("127.0.0.1:4000"), addr("192.0.2.9:6666"));
        assert!(r.accept(x, t0));
        for i in 1..200u64 {
            let now = t0 + Duration::from_millis(i * 20);
            assert!(r.accept(x, now));
            assert!(
                !r.accept(evil, now + Duration::from_millis(5)),
                "packet {i}"
            );
        }
        assert_eq!(r.target(), Some(x));
    }

    #[test]
    fn candidate_counts_only_during_silence() {
        let mut r = Remote::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let (x, y, z) = (
            addr("127.0.0.1:4000"),
            addr("127.0.0.1:5000"),
            addr("127.0.0.1:6000"),
        );
        assert!(r.accept(x, t0));
        assert!(!r.accept(y, ms(10)));
        assert!(!r.accept(y, ms(20)));
        // x speaks again: y's count starts over.
        assert!(r.accept(x, ms(30)));
        assert!(!r.accept(y, ms(300)));
        assert!(!r.accept(y, ms(320)));
        // A third source in between resets it too.
        assert!(!r.accept(z, ms(330)));
        assert!(!r.accept(y, ms(340)));
        assert!(!r.accept(y, ms(360)));
        assert!(r.accept(y, ms(380)));
        assert_eq!(r.target(), Some(y));
    }

    #[test]
    fn silence_alone_is_not_enough() {
        let mut r = Remote::default();
        let t0 = Instant::now();
        let (x, y) = (addr("127.0.0.1:4000"), addr("127.0.0.1:5000"));
        assert!(r.accept(x, t0));
        assert!(!r.accept(y, t0 + Duration::from_secs(10)));
        assert!(!r.accept(y, t0 + Duration::from_secs(11)));
        assert!(r.accept(y, t0 + Duration::from_secs(12)));
    }

    #[tokio::test]
    async fn relays_both_ways_over_loopback() {
        let pool =
            super::super::ports::PortPool::new(42000, 42009, "127.0.0.1".parse().expect("ip"));
        let relay = Relay::start(
            pool.allocate().await.expect("a"),
            pool.allocate().await.expect("b"),
        );
        let pa = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let pb = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        relay.set_codec(
            Side::A,
            LegCodec {
                codec: Codec::Pcmu,
                pt: 0,
                te_pt: None,
            },
        );
        relay.set_codec(
            Side::B,
            LegCodec {
                codec: Codec::Pcma,
                pt: 8,
                te_pt: None,
            },
        );
        relay.set_remote(Side::B, pb.local_addr().ok(), None);
        let a_port = relay.port(Side::A);
        let b_port = relay.port(Side::B);
        pa.send_to(&packet(0, false, &[0xFF; 160]), ("127.0.0.1", a_port))
            .await
            .expect("send");
        let mut buf = [0u8; 512];
        let (n, src) = tokio::time::timeout(Duration::from_secs(2), pb.recv_from(&mut buf))
            .await
            .expect("b got a packet")
            .expect("recv");
        assert_eq!(src.port(), b_port);
        assert_eq!(buf[1] & 0x7f, 8);
        assert_eq!(n, 172);
        // B answers; A was latched from its first packet.
        pb.send_to(&packet(8, false, &[0xD5; 160]), ("127.0.0.1", b_port))
            .await
            .expect("send");
        let (_, src) = tokio::time::timeout(Duration::from_secs(2), pa.recv_from(&mut buf))
            .await
            .expect("a got a packet")
            .expect("recv");
        assert_eq!(src.port(), a_port);
        assert_eq!(buf[1] & 0x7f, 0);
        assert_eq!(relay.received(Side::A), 1);
        // RTCP goes pair to pair unchanged.
        let ca = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let cb = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        relay.set_remote(Side::B, pb.local_addr().ok(), cb.local_addr().ok());
        ca.send_to(&[0x80, 200, 0, 1, 9, 9, 9, 9], ("127.0.0.1", a_port + 1))
            .await
            .expect("send");
        let (n, src) = tokio::time::timeout(Duration::from_secs(2), cb.recv_from(&mut buf))
            .await
            .expect("rtcp relayed")
            .expect("recv");
        assert_eq!((n, src.port(), buf[1]), (8, b_port + 1, 200));
        drop(relay);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(pool.in_use(), 0);
    }

    #[tokio::test]
    async fn relatches_to_a_new_source_over_loopback() {
        let pool =
            super::super::ports::PortPool::new(42010, 42019, "127.0.0.1".parse().expect("ip"));
        let relay = Relay::start(
            pool.allocate().await.expect("a"),
            pool.allocate().await.expect("b"),
        );
        let codec = LegCodec {
            codec: Codec::Pcmu,
            pt: 0,
            te_pt: None,
        };
        relay.set_codec(Side::A, codec);
        relay.set_codec(Side::B, codec);
        let old = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let new = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let pb = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        relay.set_remote(Side::A, old.local_addr().ok(), None);
        relay.set_remote(Side::B, pb.local_addr().ok(), None);
        let a_port = relay.port(Side::A);
        let b_port = relay.port(Side::B);
        let mut buf = [0u8; 512];
        async fn recv(s: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
            tokio::time::timeout(Duration::from_millis(300), s.recv_from(buf))
                .await
                .ok()
                .and_then(Result::ok)
        }
        let to_a = |s: &'static str| packet(0, false, s.as_bytes());
        // A talks from `old`; B hears it, and B's packets reach `old`.
        old.send_to(&to_a("old1"), ("127.0.0.1", a_port))
            .await
            .expect("send");
        assert!(recv(&pb, &mut buf).await.is_some());
        pb.send_to(&to_a("b1"), ("127.0.0.1", b_port))
            .await
            .expect("send");
        assert!(recv(&old, &mut buf).await.is_some());
        // `new` while `old` was heard just now: dropped (bleed guard).
        new.send_to(&to_a("new0"), ("127.0.0.1", a_port))
            .await
            .expect("send");
        assert!(recv(&pb, &mut buf).await.is_none(), "not relayed");
        // `old` stops; after the silence `new` needs 3 packets.
        tokio::time::sleep(RELATCH_SILENCE).await;
        for _ in 0..3 {
            new.send_to(&to_a("new1"), ("127.0.0.1", a_port))
                .await
                .expect("send");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (n, _) = recv(&pb, &mut buf).await.expect("new source relayed");
        assert_eq!(&buf[12..n], b"new1");
        pb.send_to(&to_a("b2"), ("127.0.0.1", b_port))
            .await
            .expect("send");
        let (n, _) = recv(&new, &mut buf)
            .await
            .expect("B reaches the new source");
        assert_eq!(&buf[12..n], b"b2");
        assert!(recv(&old, &mut buf).await.is_none(), "not the old one");
    }

    #[tokio::test]
    async fn held_and_rewritten_towards_an_outlet_leg() {
        let pool =
            super::super::ports::PortPool::new(42020, 42029, "127.0.0.1".parse().expect("ip"));
        let relay = Relay::start(
            pool.allocate().await.expect("a"),
            pool.allocate().await.expect("b"),
        );
        let pa = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let pb = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let law = LegCodec {
            codec: Codec::Pcmu,
            pt: 0,
            te_pt: None,
        };
        relay.set_codec(Side::A, law);
        relay.set_codec(Side::B, law);
        relay.set_remote(Side::A, pa.local_addr().ok(), None);
        let b_port = relay.port(Side::B);
        let mut buf = [0u8; 512];
        relay.hold(Side::A, true);
        pb.send_to(&packet(0, false, &[0xFF; 160]), ("127.0.0.1", b_port))
            .await
            .expect("send");
        let held = tokio::time::timeout(Duration::from_millis(200), pa.recv_from(&mut buf)).await;
        assert!(held.is_err(), "nothing relayed to a held leg");
        relay.hold(Side::A, false);
        let out = relay.outlet(Side::A);
        let ours = out.send(|w, c| {
            let (ts, m) = w.generated_slot(Instant::now());
            vec![w.packet(c.pt, m, ts, &[0xFF; 160])]
        });
        assert_eq!(ours, 1);
        let (n, _) = pa.recv_from(&mut buf).await.expect("generated");
        let ssrc = buf[8..12].to_vec();
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        assert_eq!(n, 172);
        pb.send_to(&packet(0, false, &[0xFF; 160]), ("127.0.0.1", b_port))
            .await
            .expect("send");
        let _ = tokio::time::timeout(Duration::from_secs(2), pa.recv_from(&mut buf))
            .await
            .expect("relayed")
            .expect("recv");
        assert_eq!(&buf[8..12], &ssrc[..], "relayed packets take our SSRC");
        assert_eq!(u16::from_be_bytes([buf[2], buf[3]]), seq.wrapping_add(1));
        assert_eq!(buf[1], 0x80, "marker at the switch");
    }
}
