//! The SIP adapter over rsipstack: config, listeners, message helpers
//! (numbers, display names, headers) and in-dialog request sending.
//!
//! rsipstack is pinned (`=0.7.14`) and reached only through this module, so
//! that its API changes stay here.

pub mod config;
pub mod dialog;
pub mod digest;
pub mod display;
pub mod endpoint;
pub mod message;
pub mod number;

pub use config::{Proto, SipConfig, ValidSipConfig};

/// Errors of the SIP layer.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// A config value is missing or malformed.
    #[error("invalid sip config: {0}")]
    Config(String),
    /// A listener could not be bound.
    #[error("cannot bind SIP listener {0}")]
    Bind(String),
    /// rsipstack refused or failed an operation.
    #[error("sip stack: {0}")]
    Stack(Box<rsipstack::Error>),
    /// The trunk cannot be reached (no connection could be made).
    #[error("trunk unreachable: {0}")]
    Unreachable(String),
    /// A request of this many bytes is over what one UDP datagram carries
    /// (65,507), and it could not go over TCP.
    #[error("request of {0} bytes is too large for UDP")]
    TooLarge(usize),
    /// A message lacked something we need.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Media setup failed.
    #[error(transparent)]
    Media(#[from] crate::media::MediaError),
}

impl From<rsipstack::Error> for SipError {
    fn from(e: rsipstack::Error) -> Self {
        SipError::Stack(Box::new(e))
    }
}
