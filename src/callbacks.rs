//! Delivery of call detail records to accounts' callback URLs.
//!
//! Every record whose account has a `callback_url` gets a row in the
//! outbox ([`crate::store::outbox`]) in the transaction that stores the
//! record. This worker claims due rows, POSTs each record's JSON (the
//! calls API's Call object, [`crate::model::call::Call::to_json`]) and
//! deletes the row on a 2xx answer. Any other outcome (another status, a
//! refused connection, a timeout) is retried with exponential backoff:
//! `initial_backoff_ms * 2^(attempts - 1)`, at most `max_backoff_secs`,
//! until `retry_for_secs` after the record was written; then the row is
//! kept with `failed_at` set. Delivery is at least once: a receiver drops
//! duplicates by `call_sid` (also sent as `X-Mediator-Call-Sid`).
//!
//! Signature: `X-Mediator-Signature: sha256=<hex>`, the lowercase hex
//! HMAC-SHA256 (RFC 2104, FIPS 180-4) of the exact request body bytes,
//! keyed with the account's callback secret as UTF-8 bytes.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::CallbacksConfig;
use crate::model::now_ms;
use crate::store::Store;
use crate::store::outbox::Claim;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Mediator-Signature";
/// The header carrying the record's SID (stable across retries).
pub const CALL_SID_HEADER: &str = "X-Mediator-Call-Sid";
/// The header carrying the attempt's number, from 1.
pub const ATTEMPT_HEADER: &str = "X-Mediator-Attempt";

/// Why a delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The receiver answered with a status other than 2xx.
    #[error("receiver answered {0}")]
    Status(u16),
    /// No answer: connection refused, reset, timed out.
    #[error("no answer: {0}")]
    Transport(String),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
}

/// Installs rustls' ring crypto provider for the process. It must run
/// before any reqwest client is built (reqwest is built without a default
/// provider and panics without one); a second call changes nothing.
pub fn install_crypto_provider() {
    // DESIGN.md chose ring (no C toolchain for aws-lc); rustls 0.23.48
    // deprecates it for lacking post-quantum key exchange, which callbacks
    // over plain TLS 1.2/1.3 do not need.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A new random signing secret: 32 bytes as 64 hex digits.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

/// The wait before the attempt that follows `attempts` failed ones.
pub fn backoff(cfg: &CallbacksConfig, attempts: u32) -> Duration {
    let max = Duration::from_secs(cfg.max_backoff_secs);
    let shift = attempts.saturating_sub(1).min(30);
    let wait = Duration::from_millis(cfg.initial_backoff_ms.saturating_mul(1u64 << shift));
    wait.min(max)
}

/// The delivery worker of one node.
pub struct Deliverer {
    store: Store,
    cfg: CallbacksConfig,
    http: reqwest::Client,
}

impl Deliverer {
    /// A worker over `store`.
    ///
    /// Errors: [`CallbackError::Client`] when the HTTP client cannot be
    /// built.
    pub fn new(store: Store, cfg: CallbacksConfig) -> Result<Self, CallbackError> {
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(cfg.timeout_secs.clamp(1, 5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mediator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CallbackError::Client(e.to_string()))?;
        Ok(Self { store, cfg, http })
    }

    /// Runs until `stop` turns true: wakes on new records and every
    /// `poll_ms`, claims what is due and delivers it.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let notify = self.store.outbox_notified();
        let poll = Duration::from_millis(self.cfg.poll_ms.max(10));
        // A claim lasts past the longest attempt, so that nobody else
        // takes a row that is still being sent.
        let lease_ms = (self.cfg.timeout_secs as i64 + 5) * 1000;
        loop {
            if *stop.borrow() {
                return;
            }
            loop {
                let claims = match self
                    .store
                    .claim_callbacks(now_ms(), lease_ms, i64::from(self.cfg.concurrency))
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "callback outbox not readable");
                        break;
                    }
                };
                if claims.is_empty() {
                    break;
                }
                let mut set = tokio::task::JoinSet::new();
                for claim in claims {
                    let me = self.clone();
                    set.spawn(async move { me.attempt(claim).await });
                }
                while set.join_next().await.is_some() {}
            }
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One attempt at a claimed row, and its bookkeeping.
    async fn attempt(&self, claim: Claim) {
        let delivery = match self.store.callback_delivery(&claim.call_sid).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                debug!(call_sid = %claim.call_sid, "no callback URL any more: dropped");
                let _ = self.store.callback_done(&claim.call_sid).await;
                return;
            }
            Err(e) => {
                warn!(call_sid = %claim.call_sid, error = %e, "callback record not readable");
                return; // the lease runs out and the row is claimed again
            }
        };
        let attempt = claim.attempts.max(0) as u32 + 1;
        let body = delivery.call.to_json().to_string();
        let outcome = self
            .http
            .post(&delivery.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature(&delivery.secret, body.as_bytes()),
            )
            .header(CALL_SID_HEADER, &claim.call_sid)
            .header(ATTEMPT_HEADER, attempt.to_string())
            .body(body)
            .send()
            .await;
        let result = match outcome {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(CallbackError::Status(r.status().as_u16())),
            Err(e) => Err(CallbackError::Transport(e.to_string())),
        };
        match result {
            Ok(()) => {
                crate::metrics::callback_outcome("delivered");
                info!(call_sid = %claim.call_sid, attempt, "callback delivered");
                if let Err(e) = self.store.callback_done(&claim.call_sid).await {
                    warn!(call_sid = %claim.call_sid, error = %e, "delivered callback not cleared: it will be sent again");
                }
            }
            Err(err) => {
                let now = now_ms();
                let next = now + backoff(&self.cfg, attempt).as_millis() as i64;
                let deadline = claim.date_created + (self.cfg.retry_for_secs as i64) * 1000;
                let give_up = next > deadline;
                crate::metrics::callback_outcome(if give_up { "given_up" } else { "failed" });
                if give_up {
                    warn!(call_sid = %claim.call_sid, attempt, error = %err, "callback given up");
                } else {
                    info!(call_sid = %claim.call_sid, attempt, error = %err, "callback failed, will retry");
                }
                let when = if give_up { now } else { next };
                if let Err(e) = self
                    .store
                    .callback_failed(&claim.call_sid, when, give_up, &err.to_string())
                    .await
                {
                    warn!(call_sid = %claim.call_sid, error = %e, "failed callback not rescheduled");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cfg = CallbacksConfig {
            initial_backoff_ms: 500,
            max_backoff_secs: 3,
            ..CallbacksConfig::default()
        };
        let waits: Vec<u128> = (1..=6).map(|a| backoff(&cfg, a).as_millis()).collect();
        assert_eq!(waits, vec![500, 1000, 2000, 3000, 3000, 3000]);
        assert_eq!(backoff(&cfg, 200).as_millis(), 3000);
    }
}
