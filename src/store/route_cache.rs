//! The candidate bindings of an inbound call, cached per (redirect DID,
//! caller) on SQLite, so that a call to a known DID costs no round trip to
//! SQLite's worker thread (docs/performance.md, "SIP call rate").
//!
//! An entry holds the bindings a call to that DID from that caller can
//! follow (the caller's own, and the DID's bindings without an
//! `origination_did`), as read at some moment, tagged with the DID's
//! *generation* at that moment. Every write of a binding bumps the
//! generation of the DIDs it touches, after its commit and under the
//! store's writer lock; an entry whose tag is not the DID's current
//! generation is ignored. A reader reads the generation *before* its
//! query, so a write that lands between the two makes its entry stale
//! instead of wrong. Liveness is checked at read time, and a binding only
//! ever leaves liveness with time (never enters it), so entries need no
//! invalidation for expiry. Entries live 60 s at most, which bounds how
//! stale a change made by another process (the `mediator` command line)
//! can look. Not used on PostgreSQL, where other nodes write too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::binding::Binding;

/// The key of an entry: the redirect DID and the caller (`None` for an
/// anonymous caller), both as E.164 digits.
type Key = (String, Option<String>);

/// The bindings a call can follow, read at generation `generation`.
pub(crate) struct Candidates {
    generation: u64,
    /// Bindings live when read, oldest first.
    pub(crate) bindings: Vec<Binding>,
}

/// See the module documentation.
#[derive(Clone)]
pub(crate) struct RouteCache {
    entries: moka::sync::Cache<Key, Arc<Candidates>>,
    generations: Arc<Mutex<Generations>>,
    next: Arc<AtomicU64>,
}

/// The generation of each DID written since start; `other` for the rest.
#[derive(Default)]
struct Generations {
    by_did: HashMap<String, u64>,
    other: u64,
}

impl Candidates {
    /// Candidates read without a cache (PostgreSQL).
    pub(crate) fn uncached(bindings: Vec<Binding>) -> Self {
        Self {
            generation: 0,
            bindings,
        }
    }
}

impl RouteCache {
    pub(crate) fn new() -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
            generations: Arc::new(Mutex::new(Generations::default())),
            next: Arc::new(AtomicU64::new(1)),
        }
    }

    /// The current generation of `did` (0 if it was never written).
    pub(crate) fn generation(&self, did: &str) -> u64 {
        match self.generations.lock() {
            Ok(g) => g.by_did.get(did).copied().unwrap_or(g.other),
            // A poisoned map cannot vouch for any entry: a fresh
            // generation makes every lookup a miss.
            Err(_) => self.next.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Marks every entry of `did` stale. Call after the write's commit,
    /// under the writer lock.
    pub(crate) fn changed(&self, did: &str) {
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.generations.lock() {
            g.by_did.insert(did.to_string(), generation);
        }
    }

    /// Marks every entry stale (after a write that can touch any DID, such
    /// as deleting an account).
    pub(crate) fn changed_all(&self) {
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut g) = self.generations.lock() {
            g.by_did.clear();
            g.other = generation;
        }
    }

    /// The entry for `did` and `caller`, if it is current.
    pub(crate) fn get(&self, did: &str, caller: Option<&str>) -> Option<Arc<Candidates>> {
        let key = (did.to_string(), caller.map(str::to_string));
        let entry = self.entries.get(&key)?;
        (entry.generation == self.generation(did)).then_some(entry)
    }

    /// Stores what a reader read at `generation` (taken before its query).
    pub(crate) fn put(
        &self,
        did: &str,
        caller: Option<&str>,
        generation: u64,
        bindings: Vec<Binding>,
    ) -> Arc<Candidates> {
        let entry = Arc::new(Candidates {
            generation,
            bindings,
        });
        self.entries
            .insert((did.to_string(), caller.map(str::to_string)), entry.clone());
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_read_before_a_write_is_stale_after_it() {
        let cache = RouteCache::new();
        let g = cache.generation("15162060001");
        cache.put("15162060001", Some("12127360001"), g, Vec::new());
        assert!(cache.get("15162060001", Some("12127360001")).is_some());
        assert!(cache.get("15162060001", None).is_none());
        // A write on another DID leaves this entry current.
        cache.changed("15162060002");
        assert!(cache.get("15162060001", Some("12127360001")).is_some());
        cache.changed("15162060001");
        assert!(cache.get("15162060001", Some("12127360001")).is_none());
        // A reader that took the generation before a write stores an entry
        // that is stale at once.
        let before = cache.generation("15162060001");
        cache.changed("15162060001");
        cache.put("15162060001", Some("12127360001"), before, Vec::new());
        assert!(cache.get("15162060001", Some("12127360001")).is_none());
        // Deleting an account makes every entry stale.
        let g = cache.generation("15162060003");
        cache.put("15162060003", None, g, Vec::new());
        assert!(cache.get("15162060003", None).is_some());
        cache.changed_all();
        assert!(cache.get("15162060003", None).is_none());
    }
}
