//! Housekeeping on a timer: deleting bindings whose TTL ran out.
//! (Reads never show an expired binding even between sweeps: the store
//! filters on the deadlines; the sweep only reclaims the rows.)

use std::time::Duration;

use tokio::sync::watch;

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
