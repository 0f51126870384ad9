//! Live calls by Call-ID, so in-dialog requests (BYE, re-INVITE) reach the
//! call they belong to.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rsipstack::sip::Response;
use rsipstack::transaction::Transaction;
use tokio::sync::mpsc::UnboundedSender;

use crate::media::relay::Side;

/// What reaches a call task.
pub(crate) enum CallEvent {
    /// A's CANCEL (the stack already answered it 200, RFC 3261 §9.2).
    ACancel,
    /// A's ACK to our final response, with its SDP body (the answer, when
    /// A's INVITE had no offer).
    AAck(Option<String>),
    /// A's INVITE server transaction ended (binding call); A's INVITE
    /// client transaction ended without a final response (dialout).
    AGone,
    /// A response on A's INVITE, when we are A's UAC (dialout stage one).
    AResponse(Box<Response>),
    /// A response on the B leg's INVITE.
    BResponse(Box<Response>),
    /// The B leg's INVITE client transaction ended.
    BGone,
    /// A new request inside one of the call's dialogs.
    Request(Box<Transaction>, Side),
    /// The final response to a request the call sent in a dialog (numbered
    /// by the call), or the status it failed with (408: no final response
    /// within 64*T1; 503: not sent).
    Outcome(u64, Result<Box<Response>, u16>),
    /// Mediator's own media for the call.
    Media(MediaEvent),
}

/// Events of the call's generated media.
pub(crate) enum MediaEvent {
    /// The announcement was fetched and decoded, or could not be (`None`:
    /// the call goes on without it).
    AnnounceLoaded(Option<std::sync::Arc<crate::media::audio::Clip>>),
    /// The announcement has played to its end.
    AnnounceDone,
}

/// Call-ID to call task.
#[derive(Default)]
pub(crate) struct Registry {
    map: Mutex<HashMap<String, (UnboundedSender<CallEvent>, Side)>>,
    active: AtomicUsize,
}

impl Registry {
    /// The sender and leg for a Call-ID.
    pub fn lookup(&self, call_id: &str) -> Option<(UnboundedSender<CallEvent>, Side)> {
        self.map.lock().ok()?.get(call_id).cloned()
    }

    /// Calls in progress.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Counts a new call; the guard un-counts it and forgets its Call-IDs.
    pub fn enter(self: &Arc<Self>) -> CallGuard {
        self.active.fetch_add(1, Ordering::SeqCst);
        CallGuard {
            registry: self.clone(),
            ids: Vec::new(),
        }
    }
}

/// Keeps a call registered while it lives.
pub(crate) struct CallGuard {
    registry: Arc<Registry>,
    ids: Vec<String>,
}

impl CallGuard {
    /// Routes `call_id` (leg `side`) to `sender` until the guard drops.
    pub fn add(&mut self, call_id: &str, side: Side, sender: UnboundedSender<CallEvent>) {
        if let Ok(mut m) = self.registry.map.lock() {
            m.insert(call_id.to_string(), (sender, side));
            self.ids.push(call_id.to_string());
        }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if let Ok(mut m) = self.registry.map.lock() {
            for id in &self.ids {
                m.remove(id);
            }
        }
        self.registry.active.fetch_sub(1, Ordering::SeqCst);
    }
}
