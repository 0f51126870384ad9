//! Work on a timer: deleting bindings whose TTL ran out (reads never show
//! an expired binding even between sweeps: the store filters on the
//! deadlines; the sweep only reclaims the rows), and starting dialouts
//! when they are due (issue 6, `docs/dialouts.md`).

use std::time::Duration;

use tokio::sync::watch;

use crate::call::router::DialoutOutcome;
use crate::model::dialout::Dialout;
use crate::model::now_ms;
use crate::store::Store;

/// Sweeps expired bindings every `every` until `shutdown` turns true.
pub async fn run_expiry(store: Store, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        match store.sweep_expired_bindings(now_ms()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired bindings deleted"),
            Err(e) => tracing::warn!(error = %e, "binding expiry sweep failed; will retry"),
        }
    }
}

/// How the dialout scheduler runs (from `[dialouts]`, see
/// [`crate::config::DialoutsConfig`]).
#[derive(Debug, Clone)]
pub struct DialoutSchedule {
    /// This node's name, stored in `dialouts.claimed_by`.
    pub node: String,
    /// Longest wait between two polls of the store.
    pub poll: Duration,
    /// A dialout claimed later than this after its `fire_at` is missed.
    pub max_lateness: Duration,
    /// A `started` dialout older than this whose call never ended is
    /// recorded as cancelled.
    pub stale_started: Duration,
    /// Most dialouts claimed at once.
    pub batch: i64,
}

impl DialoutSchedule {
    /// The schedule of `config`; the node name is `config.node_id`, else
    /// `<hostname>-<pid>`.
    pub fn from_config(config: &crate::config::DialoutsConfig) -> Self {
        let node = if config.node_id.trim().is_empty() {
            default_node_id()
        } else {
            config.node_id.trim().to_string()
        };
        Self {
            node,
            poll: Duration::from_millis(config.poll_ms),
            max_lateness: Duration::from_secs(config.max_lateness_secs),
            stale_started: Duration::from_secs(config.stale_started_secs),
            batch: i64::from(config.batch),
        }
    }
}

/// `<hostname>-<pid>`: unique per process on a machine, readable in the
/// `dialouts.claimed_by` column.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}

/// Starts dialouts when they are due, until `stop` is cancelled.
///
/// Each round claims the due dialouts in the store
/// ([`Store::claim_due_dialouts`]: exactly one node gets each). A claimed
/// dialout whose `fire_at` is more than `max_lateness` ago (no node ran
/// when it was due) is not placed: it is recorded with outcome `missed`
/// and removed ([`Store::finish_dialout`]). Every other one is handed to
/// `place`, which starts its call; the call records its outcome when it
/// ends. Between rounds the scheduler sleeps until the next dialout is
/// due, a dialout is created or changed on this node (the store's notify),
/// or `poll` has passed (dialouts written by other nodes). Once a round it
/// also records as `cancelled` the dialouts claimed longer than
/// `stale_started` ago that never ended (their node died mid-call).
pub async fn run_dialouts<F>(
    store: Store,
    schedule: DialoutSchedule,
    place: F,
    stop: tokio_util::sync::CancellationToken,
) where
    F: Fn(Dialout) + Send + Sync + 'static,
{
    let notify = store.dialout_notify.clone();
    let lateness_ms = i64::try_from(schedule.max_lateness.as_millis()).unwrap_or(i64::MAX);
    let stale_ms = i64::try_from(schedule.stale_started.as_millis()).unwrap_or(i64::MAX);
    let poll_ms = i64::try_from(schedule.poll.as_millis()).unwrap_or(1000);
    let mut next_stale_check = 0i64;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let now = now_ms();
        let wait_ms = match store
            .claim_due_dialouts(now, &schedule.node, schedule.batch)
            .await
        {
            Ok(claimed) => {
                let full = claimed.len() as i64 >= schedule.batch;
                for d in claimed {
                    if now.saturating_sub(d.fire_at) > lateness_ms {
                        tracing::warn!(dialout = %d.dialout_sid, fire_at = d.fire_at, "dialout missed: due too long ago");
                        finish_unplaced(
                            &store,
                            &d.dialout_sid,
                            &d.account_sid,
                            DialoutOutcome::Missed,
                        )
                        .await;
                    } else {
                        tracing::info!(dialout = %d.dialout_sid, node = %schedule.node, "dialout placed");
                        crate::metrics::dialout_placed(now.saturating_sub(d.fire_at));
                        place(d);
                    }
                }
                if now >= next_stale_check {
                    next_stale_check = now + poll_ms.max(1000) * 10;
                    cancel_stale(&store, now.saturating_sub(stale_ms)).await;
                }
                if full {
                    0
                } else {
                    match store.next_dialout_due().await {
                        Ok(Some(due)) => due.saturating_sub(now_ms()).clamp(0, poll_ms),
                        Ok(None) => poll_ms,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot read the next dialout due; will retry");
                            poll_ms
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "dialout claim failed; will retry");
                poll_ms
            }
        };
        if wait_ms == 0 {
            tokio::task::yield_now().await;
            continue;
        }
        let wait = Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0));
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Records a dialout that was claimed but not placed, with `outcome`.
async fn finish_unplaced(store: &Store, sid: &str, account: &str, outcome: DialoutOutcome) {
    match store
        .finish_dialout(sid, account, outcome.as_str(), &[])
        .await
    {
        Ok(()) => crate::metrics::dialout_ended(outcome.as_str()),
        // The row stays 'started' and is picked up by the stale cleanup.
        Err(e) => tracing::warn!(dialout = %sid, error = %e, "dialout outcome not recorded"),
    }
}

/// Records as cancelled the dialouts claimed before `before_ms` whose call
/// never ended.
async fn cancel_stale(store: &Store, before_ms: i64) {
    match store.stale_started_dialouts(before_ms).await {
        Ok(stale) => {
            for (sid, account) in stale {
                tracing::warn!(dialout = %sid, "dialout started long ago never ended (its node died?): recorded as cancelled");
                finish_unplaced(store, &sid, &account, DialoutOutcome::Cancelled).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read stale dialouts; will retry"),
    }
}
