//! Call control: admission, routing through the [`router::CallRouter`],
//! the two legs of a binding call, and the server's life cycle
//! ([`start`], graceful shutdown).

pub mod callerid;
pub mod legs;
pub mod reliable;
pub mod router;
pub mod session_timer;
mod uac;

mod binding;
mod bridge;
pub mod dialout;
mod registry;
pub mod retry;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rsipstack::sip::{Header, Method, prelude::HeadersExt};
use rsipstack::transaction::endpoint::EndpointInnerRef;
use rsipstack::transaction::{Transaction, TransactionReceiver};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::media::MediaConfig;
use crate::media::audio::{AudioLoader, Clip};
use crate::media::config::ValidMediaConfig;
use crate::media::player::Pacer;
use crate::media::ports::PortPool;
use crate::media::relay::Side;
use crate::sip::config::ValidSipConfig;
use crate::sip::message::call_id;
use crate::sip::{SipConfig, SipError};
use registry::{CallEvent, Registry};
use router::CallRouter;

/// Everything a call task needs.
pub(crate) struct Ctx {
    pub cfg: ValidSipConfig,
    pub media: ValidMediaConfig,
    pub pool: Arc<PortPool>,
    pub router: Arc<dyn CallRouter>,
    pub endpoint: EndpointInnerRef,
    pub registry: Arc<Registry>,
    /// Set on the shutdown signal: new INVITEs get 503.
    pub draining: AtomicBool,
    /// Cancelled when the drain time is over: every call hangs up.
    pub hangup_all: CancellationToken,
    /// Fetches and caches announcements.
    pub audio: Arc<AudioLoader>,
    /// Paces every generated stream.
    pub pacer: Arc<Pacer>,
    /// Music on hold, decoded at start.
    pub moh: Arc<Clip>,
    /// The default dialout confirmation prompt, decoded at start.
    pub prompt: Arc<Clip>,
}

/// The built-in music on hold (`scripts/make-moh.py`, CC0).
const BUILTIN_MOH: &[u8] = include_bytes!("../../assets/moh.wav");

/// The default dialout confirmation prompt, "Press 1 to accept this call."
/// (`scripts/make-prompt.py`, espeak-ng).
const BUILTIN_PROMPT: &[u8] = include_bytes!("../../assets/confirm-prompt.wav");

/// Decodes a built-in WAV (one second of silence if it cannot be: never
/// fails the start).
async fn builtin_clip(bytes: &'static [u8]) -> Arc<Clip> {
    match tokio::task::spawn_blocking(move || {
        crate::media::audio::decode(bytes.to_vec(), Some("wav"))
    })
    .await
    {
        Ok(Ok(c)) => Arc::new(c),
        _ => Arc::new(Clip {
            samples: vec![0; 8000],
        }),
    }
}

/// Pacing tasks for generated media (docs/performance.md).
const PACER_SHARDS: usize = 4;

/// Loads the music on hold: the configured source, or the built-in piece
/// when none is set or it cannot be loaded (logged).
async fn load_moh(audio: &AudioLoader, source: &str) -> Arc<Clip> {
    if !source.trim().is_empty()
        && let Ok(c) = audio.load(source).await
    {
        return c;
    }
    builtin_clip(BUILTIN_MOH).await
}

/// A running SIP core.
pub struct SipHandle {
    ctx: Arc<Ctx>,
    done: JoinHandle<()>,
}

impl SipHandle {
    /// Calls in progress (ringing or established).
    pub fn active_calls(&self) -> usize {
        self.ctx.registry.active()
    }

    /// RTP port pairs in use.
    pub fn rtp_pairs_in_use(&self) -> usize {
        self.ctx.pool.in_use()
    }

    /// A reader of (active calls, RTP port pairs in use) for the metrics.
    pub fn gauges(&self) -> impl Fn() -> (usize, usize) + Send + Sync + 'static {
        let ctx = self.ctx.clone();
        move || (ctx.registry.active(), ctx.pool.in_use())
    }

    /// A handle that places dialouts on this core (issue 6).
    pub fn dialer(&self) -> Dialer {
        Dialer {
            ctx: self.ctx.clone(),
        }
    }

    /// Waits until the core has stopped: after the shutdown signal, when
    /// every call has ended or the drain time has passed.
    pub async fn stopped(self) {
        let _ = self.done.await;
    }
}

/// Places dialouts (two-stage outbound calls) on a running SIP core.
#[derive(Clone)]
pub struct Dialer {
    ctx: Arc<Ctx>,
}

impl Dialer {
    /// Starts the two-stage call of `dialout` in a task of its own and
    /// returns at once; the task ends with the call, after it has reported
    /// the outcome through [`router::CallRouter::finish_dialout`].
    pub fn place(&self, dialout: crate::model::dialout::Dialout) -> JoinHandle<()> {
        tokio::spawn(dialout::run(self.ctx.clone(), dialout))
    }
}

/// Starts the SIP core: binds the listeners of `sip`, serves INVITEs
/// routed by `router`, anchors media per `media`. Cancelling `shutdown`
/// starts a graceful stop (new INVITEs get 503, established calls get
/// `sip.drain_secs` to end); [`SipHandle::stopped`] waits for it.
pub async fn start(
    sip: SipConfig,
    media: MediaConfig,
    router: Arc<dyn CallRouter>,
    shutdown: CancellationToken,
) -> Result<SipHandle, SipError> {
    let cfg = sip.validate()?;
    let media = media.validate()?;
    let stack_cancel = CancellationToken::new();
    let endpoint = crate::sip::endpoint::build_endpoint(&cfg, stack_cancel.clone()).await?;
    // Calls can outlast rsipstack's 5-minute idle timeout for TCP; the
    // call, not the stack, decides when a connection is done.
    endpoint
        .inner
        .transport_layer
        .set_stream_idle_timeout(Duration::ZERO);
    let incoming = endpoint.incoming_transactions()?;
    let audio = Arc::new(
        AudioLoader::new(media.fetch.clone())
            .map_err(|e| SipError::Config(format!("audio fetching: {e}")))?,
    );
    let moh = load_moh(&audio, &media.moh).await;
    let prompt = builtin_clip(BUILTIN_PROMPT).await;
    let ctx = Arc::new(Ctx {
        audio,
        pacer: Pacer::start(PACER_SHARDS),
        moh,
        prompt,
        pool: PortPool::new(media.low, media.high, media.bind_ip),
        cfg,
        media,
        router,
        endpoint: endpoint.inner.clone(),
        registry: Arc::new(Registry::default()),
        draining: AtomicBool::new(false),
        hangup_all: CancellationToken::new(),
    });
    let serve = tokio::spawn(async move { endpoint.serve().await });
    let dispatcher = tokio::spawn(dispatch(ctx.clone(), incoming));
    let done = tokio::spawn(supervise(
        ctx.clone(),
        shutdown,
        stack_cancel,
        serve,
        dispatcher,
    ));
    info!(listen = ?ctx.cfg.listen, trunk = ?ctx.cfg.trunk, "SIP core started");
    Ok(SipHandle { ctx, done })
}

async fn supervise(
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
    stack_cancel: CancellationToken,
    serve: JoinHandle<()>,
    dispatcher: JoinHandle<()>,
) {
    shutdown.cancelled().await;
    ctx.draining.store(true, Ordering::SeqCst);
    info!(active = ctx.registry.active(), drain = ?ctx.cfg.drain, "draining");
    let deadline = tokio::time::Instant::now() + ctx.cfg.drain;
    while ctx.registry.active() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ctx.hangup_all.cancel();
    // Bounded: give hang-ups a moment to reach the peers.
    let grace = tokio::time::Instant::now() + Duration::from_secs(5);
    while ctx.registry.active() > 0 && tokio::time::Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack_cancel.cancel();
    dispatcher.abort();
    let _ = tokio::time::timeout(Duration::from_secs(2), serve).await;
    info!("SIP core stopped");
}

fn has_to_tag(tx: &Transaction) -> bool {
    tx.original
        .to_header()
        .ok()
        .and_then(|t| t.tag().ok().flatten())
        .is_some()
}

/// Answers `tx` with `code` (and Allow when `allow`); an ACK is never
/// answered (RFC 3261 §17.1.1.3: it has no response).
async fn reply(mut tx: Transaction, code: u16, allow: bool) {
    if tx.original.method == Method::Ack {
        return;
    }
    let headers = if allow {
        vec![legs::allow_header()]
    } else {
        vec![]
    };
    let _ = tx
        .reply_with(crate::sip::message::status(code), headers, None)
        .await;
}

/// Answers an OPTIONS outside a dialog as an INVITE would be answered
/// (RFC 3261 §11.2): 416 for a Request-URI scheme we do not serve
/// (§8.2.2.1), 420 listing the extensions a Require asks for that we do not
/// support (§8.2.2.3),
/// else 200 with Allow.
async fn options(mut tx: Transaction) {
    let ruri = tx.original.uri.to_string();
    if !crate::sip::message::scheme_supported(&ruri) {
        return reply(tx, 416, false).await;
    }
    let required: Vec<String> = crate::sip::message::required_options(&tx.original)
        .into_iter()
        .filter(|t| !legs::SUPPORTED.iter().any(|s| t.eq_ignore_ascii_case(s)))
        .collect();
    if !required.is_empty() {
        let _ = tx
            .reply_with(
                crate::sip::message::status(420),
                vec![Header::Unsupported(required.join(", ").into())],
                None,
            )
            .await;
        return;
    }
    reply(tx, 200, true).await;
}

/// Hands each new server transaction to its call, or answers it.
async fn dispatch(ctx: Arc<Ctx>, mut incoming: TransactionReceiver) {
    while let Some(tx) = incoming.recv().await {
        let method = tx.original.method.clone();
        debug!(%method, "incoming request");
        // A malformed request is 400 (RFC 3261 §8.1.1, §18.3; RFC 4475
        // §3.1.2, §3.3.8, §3.3.9); an ACK is never answered.
        if method != Method::Ack
            && let Some(why) = crate::sip::message::request_problem(&tx.original)
        {
            info!(why, "malformed request: 400");
            tokio::spawn(reply(tx, 400, false));
            continue;
        }
        let in_dialog = has_to_tag(&tx);
        // 405 for a method we know and do not serve, 501 for one we do not
        // know, both with Allow (RFC 3261 §8.2.1); inside a call the call
        // answers them (with its To tag).
        let refusal = legs::method_refusal(&method);
        match method {
            Method::Invite if !in_dialog => {
                tokio::spawn(binding::handle_invite(ctx.clone(), Box::new(tx)));
            }
            Method::Options if !in_dialog => {
                tokio::spawn(options(tx));
            }
            _ if in_dialog => {
                let found = call_id(&tx.original).and_then(|cid| ctx.registry.lookup(&cid));
                match found {
                    Some((sender, side)) => {
                        if let Err(tokio::sync::mpsc::error::SendError(CallEvent::Request(tx, _))) =
                            sender.send(CallEvent::Request(Box::new(tx), side))
                        {
                            tokio::spawn(reply(*tx, 481, false));
                        }
                    }
                    None => match refusal {
                        Some(code) => {
                            tokio::spawn(reply(tx, code, true));
                        }
                        None => {
                            // RFC 3261 §12.2.2: no such dialog.
                            tokio::spawn(reply(tx, 481, false));
                        }
                    },
                }
            }
            Method::Bye => {
                tokio::spawn(reply(tx, 481, false));
            }
            _ => {
                tokio::spawn(reply(tx, refusal.unwrap_or(405), true));
            }
        }
    }
}

#[allow(dead_code)]
fn _side_is_used(s: Side) -> Side {
    s
}
