//! One outgoing RTP stream towards a leg that mixes packets Mediator
//! generates (announcements, tones, music, DTMF) with packets it relays
//! from the other leg, and stays one valid stream for the receiver
//! (RFC 3550 §5.1): one SSRC, sequence numbers that go on by one,
//! timestamps that follow the wall clock across a switch, and the marker
//! bit on the first packet after each switch (RFC 3551 §4.1: the start of
//! a talkspurt).

use std::time::Instant;

/// Samples per 20 ms at 8 kHz.
pub const FRAME: u32 = 160;

/// Where the last packet came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idle,
    Generated,
    Relayed,
}

/// The writer of one direction's stream.
#[derive(Debug, Clone)]
pub struct StreamWriter {
    ssrc: u32,
    seq: u16,
    mode: Mode,
    /// Timestamp of the last 20 ms slot used, and when.
    slot: Option<(u32, Instant)>,
    /// Added to relayed timestamps (wrapping) to continue our timeline.
    offset: u32,
}

impl StreamWriter {
    /// A writer with a random SSRC, first sequence number and timestamp
    /// (RFC 3550 §5.1).
    pub fn new() -> StreamWriter {
        StreamWriter {
            ssrc: rand::random(),
            seq: rand::random(),
            mode: Mode::Idle,
            slot: None,
            offset: 0,
        }
    }

    /// The stream's SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The timestamp of the 20 ms slot at `now`: the last slot's plus one
    /// frame per 20 ms elapsed (at least one frame), so a pause shows as a
    /// timestamp gap, as it would from a real sender.
    fn next_slot(&mut self, now: Instant) -> u32 {
        let ts = match self.slot {
            None => rand::random(),
            Some((last, at)) => {
                let elapsed = now.saturating_duration_since(at).as_micros() as u64;
                let frames = ((elapsed + 10_000) / 20_000).max(1);
                last.wrapping_add((frames as u32).wrapping_mul(FRAME))
            }
        };
        self.slot = Some((ts, now));
        ts
    }

    /// Starts a generated 20 ms slot at `now`: its timestamp, and whether
    /// its first packet must carry the marker (a switch from relayed media
    /// or the stream's start).
    pub fn generated_slot(&mut self, now: Instant) -> (u32, bool) {
        let switch = self.mode != Mode::Generated;
        self.mode = Mode::Generated;
        (self.next_slot(now), switch)
    }

    /// Builds a generated packet with our SSRC and the next sequence number.
    pub fn packet(&mut self, pt: u8, marker: bool, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(12 + payload.len());
        p.push(0x80);
        p.push((pt & 0x7f) | if marker { 0x80 } else { 0 });
        p.extend_from_slice(&self.seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        p
    }

    /// Rewrites a relayed RTP packet in place onto this stream: SSRC,
    /// sequence number, timestamp shifted onto our timeline; the marker is
    /// set on the first relayed packet after generated media. Packets
    /// shorter than an RTP header are left alone.
    pub fn relay(&mut self, pkt: &mut [u8], now: Instant) {
        if pkt.len() < 12 {
            return;
        }
        let in_ts = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        if self.mode != Mode::Relayed {
            let ts = self.next_slot(now);
            self.offset = ts.wrapping_sub(in_ts);
            if self.mode == Mode::Generated {
                pkt[1] |= 0x80;
            }
            self.mode = Mode::Relayed;
        }
        let ts = in_ts.wrapping_add(self.offset);
        self.slot = Some((ts, now));
        pkt[2..4].copy_from_slice(&self.seq.to_be_bytes());
        pkt[4..8].copy_from_slice(&ts.to_be_bytes());
        pkt[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.seq = self.seq.wrapping_add(1);
    }
}

impl Default for StreamWriter {
    fn default() -> Self {
        StreamWriter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fields(p: &[u8]) -> (bool, u16, u32, u32) {
        (
            p[1] & 0x80 != 0,
            u16::from_be_bytes([p[2], p[3]]),
            u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        )
    }

    fn relayed(seq: u16, ts: u32) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[0xff; 160]);
        p
    }

    #[test]
    fn switches_keep_one_valid_stream() {
        let mut w = StreamWriter::new();
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut out = Vec::new();
        for i in 0..3 {
            let (ts, m) = w.generated_slot(ms(20 * i));
            out.push(w.packet(0, m, ts, &[0xff; 160]));
        }
        // Relayed media from a source with its own SSRC, seq and clock.
        for i in 0..3u16 {
            let mut p = relayed(5000 + i, 777_000 + 160 * u32::from(i));
            w.relay(&mut p, ms(60 + 20 * u64::from(i)));
            out.push(p);
        }
        // Back to generated after a 100 ms silence.
        let (ts, m) = w.generated_slot(ms(200));
        out.push(w.packet(0, m, ts, &[0xff; 160]));
        let f: Vec<_> = out.iter().map(|p| fields(p)).collect();
        for pair in f.windows(2) {
            assert_eq!(pair[1].1, pair[0].1.wrapping_add(1), "sequence goes on");
            assert_eq!(pair[1].3, pair[0].3, "one SSRC");
        }
        let markers: Vec<bool> = f.iter().map(|x| x.0).collect();
        assert_eq!(markers, [true, false, false, true, false, false, true]);
        let deltas: Vec<u32> = f.windows(2).map(|p| p[1].2.wrapping_sub(p[0].2)).collect();
        assert_eq!(deltas, [160, 160, 160, 160, 160, 160 * 5]);
    }
}
