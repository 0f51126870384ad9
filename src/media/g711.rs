//! G.711 (ITU-T G.711) PCMU/PCMA, over `audio-codec-algorithms`, with
//! known-answer tests of our own.

use audio_codec_algorithms::{convert_alaw_to_ulaw, convert_ulaw_to_alaw};

/// A G.711 law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// µ-law, static payload type 0 (RFC 3551 §6).
    Pcmu,
    /// A-law, static payload type 8 (RFC 3551 §6).
    Pcma,
}

impl Codec {
    /// The RTP/AVP static payload type.
    pub fn static_pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }
    /// The encoding name of `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
}

/// Converts a G.711 payload in place from one law to the other (no-op when
/// both are the same). Each byte is one 8 kHz sample, so the RTP timestamp
/// and length are unchanged.
pub fn transcode(payload: &mut [u8], from: Codec, to: Codec) {
    match (from, to) {
        (Codec::Pcmu, Codec::Pcma) => payload
            .iter_mut()
            .for_each(|b| *b = convert_ulaw_to_alaw(*b)),
        (Codec::Pcma, Codec::Pcmu) => payload
            .iter_mut()
            .for_each(|b| *b = convert_alaw_to_ulaw(*b)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audio_codec_algorithms::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};

    #[test]
    fn known_answers() {
        // Silence: µ-law 0xFF and A-law 0xD5 both decode to (near) zero.
        assert_eq!(decode_ulaw(0xFF), 0);
        assert_eq!(decode_alaw(0xD5), 8);
        assert_eq!(encode_ulaw(0), 0xFF);
        assert_eq!(encode_alaw(0), 0xD5);
        // Full scale: µ-law 0x00 = -32124, A-law 0x2A = -32256 (G.711 tables).
        assert_eq!(decode_ulaw(0x00), -32124);
        assert_eq!(decode_alaw(0x2A), -32256);
    }

    #[test]
    fn transcode_keeps_silence_and_sign() {
        let mut p = [0xFFu8, 0x7F, 0x00, 0x80];
        transcode(&mut p, Codec::Pcmu, Codec::Pcma);
        assert_eq!(p[0], 0xD5);
        let back = p;
        let mut q = back;
        transcode(&mut q, Codec::Pcma, Codec::Pcmu);
        for (orig, rt) in [0xFFu8, 0x7F, 0x00, 0x80].iter().zip(q.iter()) {
            let (a, b) = (decode_ulaw(*orig) as i32, decode_ulaw(*rt) as i32);
            assert!((a - b).abs() <= 1100, "{orig:#x} -> {rt:#x}");
            if a.abs() > 100 {
                assert_eq!(a.signum(), b.signum());
            }
        }
    }
}
