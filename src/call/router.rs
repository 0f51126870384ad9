//! The one coupling between call control and the store: [`CallRouter`].
//! [`StaticRouter`] is an in-memory implementation for tests (the server
//! routes through the store, `crate::routing::StoreRouter`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;

/// What a binding tells call control to do with an inbound call.
#[derive(Debug, Clone)]
pub struct CallRoute {
    /// SID of the matched binding.
    pub binding_sid: String,
    /// The DID the caller dialled. E.164 digits, no '+'.
    pub redirect_did: String,
    /// Where the B leg goes. E.164 digits, no '+'.
    pub destination_did: String,
    /// Present the redirect DID instead of the caller's number.
    pub hide_origination_did: bool,
    /// Present the redirect DID for anonymous callers.
    pub fix_anonymous_cid: bool,
    /// Display name on the B leg.
    pub cnam: Option<String>,
    /// ("X-Foo", "value") from sip_header_X-Foo attributes.
    pub sip_headers: Vec<(String, String)>,
    /// What the caller hears before the bridge, and DTMF after answer.
    pub media: CallMedia,
}

impl CallRoute {
    /// The route with `dtmf` digits for the B leg.
    pub fn with_dtmf(mut self, dtmf: Option<String>) -> CallRoute {
        self.media.dtmf = dtmf;
        self
    }
}

/// The `ringback` attribute (docs/media.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ringback {
    /// Unset (or `true`): ringing, relayed 180 or an in-band tone.
    #[default]
    Ring,
    /// `false`: silence until answer.
    Silence,
    /// `moh`: music on hold.
    Music,
    /// `passthrough`: B's 180/183 and early media as they come.
    Passthrough,
}

impl Ringback {
    /// From the attribute's value; unknown values ring.
    pub fn parse(v: Option<&str>) -> Ringback {
        match v.map(str::to_ascii_lowercase).as_deref() {
            Some("false") => Ringback::Silence,
            Some("moh") => Ringback::Music,
            Some("passthrough") => Ringback::Passthrough,
            _ => Ringback::Ring,
        }
    }
}

/// The media attributes of a binding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallMedia {
    /// `announce`: audio source (URL or local path) played to the caller
    /// before the bridge.
    pub announce: Option<String>,
    /// `ringback`.
    pub ringback: Ringback,
    /// `dtmf`: digits sent to the B leg after it answers.
    pub dtmf: Option<String>,
}

/// One finished (or failed) inbound call, for the call log.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The call's SID (on its log lines; the record is stored under it).
    pub call_sid: String,
    /// The binding that routed the call; `None` when none matched.
    pub binding_sid: Option<String>,
    /// Caller number (E.164 digits), empty when unknown.
    pub number_src: String,
    /// Destination number, empty when not routed.
    pub number_dst: String,
    /// The redirect DID dialled.
    pub number_redirect: String,
    /// When the INVITE arrived.
    pub date_start: chrono::DateTime<chrono::Utc>,
    /// When the callee answered.
    pub date_answer: Option<chrono::DateTime<chrono::Utc>>,
    /// When the call ended (final failure response or BYE).
    pub date_stop: chrono::DateTime<chrono::Utc>,
    /// Seconds from answer to stop (0 when not answered).
    pub duration_secs: i64,
    /// Final status sent to the caller.
    pub sip_status: u16,
    /// "caller" | "callee" | "system".
    pub hangup_side: Option<String>,
}

/// How a dialout ended: one value per outcome the call detail record
/// keeps (issue 6; docs/call-flows.md, "Dialouts").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialoutOutcome {
    /// Both parties answered and were bridged.
    Connected,
    /// Stage one answered busy (486, 600).
    StageOneBusy,
    /// Stage one did not answer: no final response before the ring
    /// timeout, or 408/480/487.
    StageOneNoAnswer,
    /// Stage one's INVITE failed otherwise (another 3xx-6xx, an
    /// unreachable trunk, a challenge we cannot answer).
    StageOneFailed,
    /// Stage one answered but did not press 1 (`use_call_confirmation`).
    NotConfirmed,
    /// Stage one hung up before stage two answered.
    StageOneHungUp,
    /// Stage two answered busy (486, 600).
    StageTwoBusy,
    /// Stage two did not answer.
    StageTwoNoAnswer,
    /// Stage two's INVITE failed otherwise.
    StageTwoFailed,
    /// Ended by Mediator before the bridge (shutdown, drain).
    Cancelled,
    /// Due while no process ran, and older than the allowed lateness when
    /// one started: never placed.
    Missed,
}

impl DialoutOutcome {
    /// The name stored in the call detail record's `outcome` and shown by
    /// `GET /calls`: `connected`, `stage_one_busy`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            DialoutOutcome::Connected => "connected",
            DialoutOutcome::StageOneBusy => "stage_one_busy",
            DialoutOutcome::StageOneNoAnswer => "stage_one_no_answer",
            DialoutOutcome::StageOneFailed => "stage_one_failed",
            DialoutOutcome::NotConfirmed => "not_confirmed",
            DialoutOutcome::StageOneHungUp => "stage_one_hung_up",
            DialoutOutcome::StageTwoBusy => "stage_two_busy",
            DialoutOutcome::StageTwoNoAnswer => "stage_two_no_answer",
            DialoutOutcome::StageTwoFailed => "stage_two_failed",
            DialoutOutcome::Cancelled => "cancelled",
            DialoutOutcome::Missed => "missed",
        }
    }
}

/// One dialout that has ended, for the call log: its outcome and a record
/// per leg that was attempted (stage one first, then stage two; none when
/// [`DialoutOutcome::Missed`]). In each leg record `number_src` is the
/// number presented to that leg, `number_dst` the party called,
/// `number_redirect` the dialout's redirect DID, `binding_sid` `None`.
#[derive(Debug, Clone)]
pub struct DialoutRecord {
    /// The dialout's SID.
    pub dialout_sid: String,
    /// Its account.
    pub account_sid: String,
    /// How it ended.
    pub outcome: DialoutOutcome,
    /// Stage one's record, then stage two's (when it was called).
    pub legs: Vec<CallRecord>,
}

/// Errors a router may return; call control answers the caller 500 (or
/// 503 when `Unavailable`).
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The store cannot be reached right now.
    #[error("router unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("router error: {0}")]
    Other(String),
}

/// How call control asks the store what to do with a call.
#[async_trait::async_trait]
pub trait CallRouter: Send + Sync + 'static {
    /// Lookup order: binding whose origination_did == caller; else a binding waiting for its first caller (claims it atomically); else an open binding. None => 404.
    async fn route(
        &self,
        redirect_did: &str,
        caller: Option<&str>,
    ) -> Result<Option<CallRoute>, RouterError>;
    /// Stores a call record at the end of a call.
    async fn record_call(&self, record: CallRecord) -> Result<(), RouterError>;
    /// Stores the records of a dialout that has ended and removes the
    /// dialout from the scheduled ones (the reference: a dialout is not
    /// kept once the parties are connected; one that failed has begun and
    /// can no longer be changed either).
    async fn finish_dialout(&self, record: DialoutRecord) -> Result<(), RouterError>;
}

/// One binding in a [`StaticRouter`] file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticBinding {
    /// SID reported in routes and records.
    pub binding_sid: String,
    /// The DID callers dial.
    pub redirect_did: String,
    /// Where the call goes.
    pub destination_did: String,
    /// Only this caller matches (when set).
    #[serde(default)]
    pub origination_did: Option<String>,
    /// Waits for its first caller, who then becomes `origination_did`.
    #[serde(default)]
    pub wait_origination_did: bool,
    /// Present the redirect DID instead of the caller.
    #[serde(default)]
    pub hide_origination_did: bool,
    /// Present the redirect DID for anonymous callers.
    #[serde(default)]
    pub fix_anonymous_cid: bool,
    /// Display name on the B leg.
    #[serde(default)]
    pub cnam: Option<String>,
    /// Extra `X-` headers, name to value.
    #[serde(default)]
    pub sip_headers: std::collections::BTreeMap<String, String>,
    /// `announce` attribute.
    #[serde(default)]
    pub announce: Option<String>,
    /// `ringback` attribute.
    #[serde(default)]
    pub ringback: Option<String>,
    /// `dtmf` digits.
    #[serde(default)]
    pub dtmf: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StaticFile {
    #[serde(default)]
    bindings: Vec<StaticBinding>,
}

/// An in-memory router over a fixed list of bindings, loaded from a TOML
/// file (`[[bindings]]` tables). Records are kept in memory and, when a
/// path is set, appended to it as JSON lines.
pub struct StaticRouter {
    bindings: Mutex<Vec<StaticBinding>>,
    records: Mutex<Vec<CallRecord>>,
    dialouts: Mutex<Vec<DialoutRecord>>,
    records_path: Option<PathBuf>,
}

impl StaticRouter {
    /// A router over `bindings`.
    pub fn new(bindings: Vec<StaticBinding>) -> Self {
        StaticRouter {
            bindings: Mutex::new(bindings),
            records: Mutex::new(Vec::new()),
            dialouts: Mutex::new(Vec::new()),
            records_path: None,
        }
    }

    /// Loads `[[bindings]]` from a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self, RouterError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RouterError::Other(format!("{}: {e}", path.display())))?;
        Self::from_toml_str(&text)
    }

    /// Parses `[[bindings]]` from TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, RouterError> {
        let file: StaticFile =
            toml::from_str(text).map_err(|e| RouterError::Other(format!("bindings: {e}")))?;
        Ok(Self::new(file.bindings))
    }

    /// Also append every record to `path` as a JSON line.
    pub fn with_records_file(mut self, path: PathBuf) -> Self {
        self.records_path = Some(path);
        self
    }

    /// The dialouts finished so far.
    pub fn dialouts(&self) -> Vec<DialoutRecord> {
        self.dialouts.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// The records stored so far.
    pub fn records(&self) -> Vec<CallRecord> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn to_route(b: &StaticBinding) -> CallRoute {
        CallRoute {
            binding_sid: b.binding_sid.clone(),
            redirect_did: b.redirect_did.clone(),
            destination_did: b.destination_did.clone(),
            hide_origination_did: b.hide_origination_did,
            fix_anonymous_cid: b.fix_anonymous_cid,
            cnam: b.cnam.clone(),
            sip_headers: b
                .sip_headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            media: CallMedia {
                announce: b.announce.clone(),
                ringback: Ringback::parse(b.ringback.as_deref()),
                dtmf: b.dtmf.clone(),
            },
        }
    }
}

fn record_json(r: &CallRecord) -> serde_json::Value {
    serde_json::json!({
        "binding_sid": r.binding_sid,
        "number_src": r.number_src,
        "number_dst": r.number_dst,
        "number_redirect": r.number_redirect,
        "date_start": r.date_start.to_rfc3339(),
        "date_answer": r.date_answer.map(|d| d.to_rfc3339()),
        "date_stop": r.date_stop.to_rfc3339(),
        "duration_secs": r.duration_secs,
        "sip_status": r.sip_status,
        "hangup_side": r.hangup_side,
    })
}

#[async_trait::async_trait]
impl CallRouter for StaticRouter {
    async fn route(
        &self,
        redirect_did: &str,
        caller: Option<&str>,
    ) -> Result<Option<CallRoute>, RouterError> {
        let mut bindings = self
            .bindings
            .lock()
            .map_err(|_| RouterError::Other("poisoned".into()))?;
        let on_did = |b: &&mut StaticBinding| b.redirect_did == redirect_did;
        if let Some(caller) = caller {
            if let Some(b) = bindings
                .iter_mut()
                .filter(on_did)
                .find(|b| b.origination_did.as_deref() == Some(caller))
            {
                return Ok(Some(Self::to_route(b)));
            }
            // Claim a waiting binding; the lock makes the claim atomic.
            if let Some(b) = bindings
                .iter_mut()
                .filter(on_did)
                .find(|b| b.wait_origination_did && b.origination_did.is_none())
            {
                b.origination_did = Some(caller.to_string());
                b.wait_origination_did = false;
                return Ok(Some(Self::to_route(b)));
            }
        }
        Ok(bindings
            .iter_mut()
            .filter(on_did)
            .find(|b| b.origination_did.is_none() && !b.wait_origination_did)
            .map(|b| Self::to_route(b)))
    }

    async fn record_call(&self, record: CallRecord) -> Result<(), RouterError> {
        if let Some(path) = &self.records_path {
            use std::io::Write;
            let line = format!("{}\n", record_json(&record));
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| f.write_all(line.as_bytes()))
                .map_err(|e| RouterError::Other(format!("{}: {e}", path.display())))?;
        }
        self.records
            .lock()
            .map_err(|_| RouterError::Other("poisoned".into()))?
            .push(record);
        Ok(())
    }

    /// Keeps each leg's record like [`CallRouter::record_call`]; the
    /// outcome is kept in [`StaticRouter::dialouts`].
    async fn finish_dialout(&self, record: DialoutRecord) -> Result<(), RouterError> {
        for leg in record.legs.clone() {
            self.record_call(leg).await?;
        }
        self.dialouts
            .lock()
            .map_err(|_| RouterError::Other("poisoned".into()))?
            .push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[bindings]]
binding_sid = "fixed"
redirect_did = "100"
destination_did = "200"
origination_did = "300"

[[bindings]]
binding_sid = "waiting"
redirect_did = "100"
destination_did = "201"
wait_origination_did = true

[[bindings]]
binding_sid = "open"
redirect_did = "101"
destination_did = "202"
sip_headers = { "X-Foo" = "bar" }
"#;

    #[tokio::test]
    async fn lookup_order_and_claim() {
        let r = StaticRouter::from_toml_str(FILE).expect("parse");
        let sid = |x: Option<CallRoute>| x.map(|r| r.binding_sid);
        assert_eq!(
            sid(r.route("100", Some("300")).await.expect("ok")).as_deref(),
            Some("fixed")
        );
        assert_eq!(
            sid(r.route("100", Some("400")).await.expect("ok")).as_deref(),
            Some("waiting")
        );
        // claimed by 400 now
        assert_eq!(
            sid(r.route("100", Some("400")).await.expect("ok")).as_deref(),
            Some("waiting")
        );
        assert_eq!(sid(r.route("100", Some("500")).await.expect("ok")), None);
        let open = r.route("101", None).await.expect("ok").expect("route");
        assert_eq!(
            open.sip_headers,
            vec![("X-Foo".to_string(), "bar".to_string())]
        );
        assert!(r.route("999", Some("1")).await.expect("ok").is_none());
    }
}
