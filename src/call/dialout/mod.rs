//! The dialout call (issue 6): Mediator calls stage one through the trunk
//! from the redirect DID, optionally asks it to confirm, calls stage two
//! and bridges them.

use std::sync::Arc;

use super::Ctx;
use super::router::{DialoutOutcome, DialoutRecord};
use crate::model::dialout::Dialout;

/// Runs one dialout to its end and reports its outcome.
pub(crate) async fn run(ctx: Arc<Ctx>, dialout: Dialout) {
    // Placeholder until the two-stage call lands: reported as failed.
    tracing::warn!(dialout = %dialout.dialout_sid, "dialout calls are not built yet");
    let record = DialoutRecord {
        dialout_sid: dialout.dialout_sid,
        account_sid: dialout.account_sid,
        outcome: DialoutOutcome::StageOneFailed,
        legs: Vec::new(),
    };
    if let Err(e) = ctx.router.finish_dialout(record).await {
        tracing::warn!(error = %e, "dialout outcome not recorded");
    }
}
