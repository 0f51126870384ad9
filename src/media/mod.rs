//! Anchored media: the RTP port pool, SDP offer/answer over the `sdp`
//! crate, G.711 transcoding, the RTP/RTCP relay between two legs, and
//! Mediator's own media (announcements, tones, music, DTMF).

pub mod audio;
pub mod config;
pub mod dtmf;
pub mod g711;
pub mod player;
pub mod ports;
pub mod relay;
pub mod sdp;
pub mod stream;
pub mod tones;

pub use config::MediaConfig;

/// Errors of the media layer.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A config value is missing or malformed.
    #[error("invalid media config: {0}")]
    Config(String),
    /// No free even/odd port pair could be bound in the RTP range.
    #[error("no free RTP port pair in {0}")]
    PortsExhausted(String),
    /// An SDP body could not be parsed.
    #[error("bad SDP: {0}")]
    Sdp(String),
    /// The offer and what we support share no codec (answered 488).
    #[error("no common codec")]
    NoCommonCodec,
    /// A socket operation failed.
    #[error("media socket: {0}")]
    Io(#[from] std::io::Error),
}
