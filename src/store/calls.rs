//! What call control needs from the store: the binding an inbound call
//! follows, and the call detail record when it ends.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::list::{FieldSpec, Kind, ListQuery, ListSpec, Page};
use super::{BINDING_LIVE, Result, Store, StoreError};
use crate::model::binding::Binding;
use crate::model::call::Call;
use crate::model::{new_sid, now_ms};

/// A finished call, as stored in `calls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDetail {
    /// The binding the call followed, if one matched.
    pub binding_sid: Option<String>,
    /// `binding` (inbound masked call) or `dialout`.
    pub kind: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// The caller's number (E.164 digits, or what the caller presented).
    pub number_src: String,
    /// The destination's number.
    pub number_dst: String,
    /// The redirect DID.
    pub number_redirect: String,
    /// When the INVITE arrived, ms since the epoch.
    pub date_start: i64,
    /// When the destination answered, ms since the epoch.
    pub date_answer: Option<i64>,
    /// When the call ended, ms since the epoch.
    pub date_stop: i64,
    /// Talk time in whole seconds (answer to stop; 0 if never answered).
    pub duration: i64,
    /// The final SIP status sent to the caller (200 for answered calls).
    pub sip_status: u16,
    /// `caller`, `callee` or `system`, when known.
    pub hangup_side: Option<String>,
}

const BINDING_COLUMNS: &str = "b.binding_sid, b.account_sid, b.name, b.destination_did, b.origination_did, b.redirect_did, \
     b.dtmf, b.attributes, b.date_created, b.max_expires_at, b.wait_expires_at, \
     d.country_code, d.in_country_format, d.international_format";

fn map(row: &AnyRow) -> Result<Binding> {
    super::bindings::map_row(row)
}

/// Which binding of the candidates a call follows, by precedence.
enum Pick<'a> {
    Own(&'a Binding),
    Waiting(&'a Binding),
    Open(&'a Binding),
    None,
}

/// The documented precedence over `candidates` (oldest first), each live
/// at `now_ms`: the caller's own binding, else one waiting for its first
/// caller (not for an anonymous caller), else an open one.
fn pick<'a>(candidates: &'a [Binding], caller: Option<&str>, now_ms: i64) -> Pick<'a> {
    let live = || candidates.iter().filter(|b| b.is_live(now_ms));
    if let Some(c) = caller {
        if let Some(b) = live().find(|b| b.origination_did.as_deref() == Some(c)) {
            return Pick::Own(b);
        }
        if let Some(b) = live().find(|b| b.origination_did.is_none() && b.wait_expires_at.is_some())
        {
            return Pick::Waiting(b);
        }
    }
    match live().find(|b| b.origination_did.is_none() && b.wait_expires_at.is_none()) {
        Some(b) => Pick::Open(b),
        None => Pick::None,
    }
}

impl Store {
    /// The live binding an inbound call to `redirect_did` from `caller`
    /// follows (DESIGN.md, "SIP and media decisions"): the binding whose
    /// `origination_did` is the caller; else a binding waiting for its first
    /// caller, which takes this caller atomically (two racing first callers
    /// cannot both win); else a binding with no `origination_did` and waiting
    /// disabled. An anonymous caller (`None`) cannot take a waiting binding.
    ///
    /// One query reads every candidate (on SQLite usually none: they come
    /// from the [`RouteCache`](super::route_cache::RouteCache)); only the
    /// first caller of a waiting binding writes.
    pub async fn route_inbound(
        &self,
        redirect_did: &str,
        caller: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<Binding>> {
        let candidates = match &self.route_cache {
            Some(cache) => match cache.get(redirect_did, caller) {
                Some(hit) => hit,
                None => {
                    let generation = cache.generation(redirect_did);
                    let read = self.route_candidates(redirect_did, caller, now_ms).await?;
                    cache.put(redirect_did, caller, generation, read)
                }
            },
            None => std::sync::Arc::new(super::route_cache::Candidates::uncached(
                self.route_candidates(redirect_did, caller, now_ms).await?,
            )),
        };
        match pick(&candidates.bindings, caller, now_ms) {
            Pick::Own(b) | Pick::Open(b) => Ok(Some(b.clone())),
            Pick::None => Ok(None),
            Pick::Waiting(b) => {
                let Some(c) = caller else {
                    return Ok(None);
                };
                let mut binding = b.clone();
                drop(candidates);
                let _w = self.writer().await;
                let claimed = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE bindings SET origination_did = $3 WHERE binding_sid = $1 AND origination_did IS NULL \
                     AND binding_sid IN (SELECT b.binding_sid FROM bindings b WHERE b.binding_sid = $1 AND {BINDING_LIVE})"
                )))
                .bind(&binding.binding_sid)
                .bind(now_ms)
                .bind(c)
                .execute(&self.pool)
                .await?;
                if claimed.rows_affected() == 1 {
                    binding.origination_did = Some(c.to_string());
                    if let Some(cache) = &self.binding_cache {
                        cache.wrote(&binding.binding_sid, Some(&binding));
                    }
                }
                // Either way the DID's bindings changed (this claim, or the
                // one that beat it).
                if let Some(cache) = &self.route_cache {
                    cache.changed(redirect_did);
                }
                drop(_w);
                if claimed.rows_affected() == 1 {
                    return Ok(Some(binding));
                }
                // Another caller took it first: this caller may still be
                // served by a binding of its own made meanwhile; else 404.
                let fresh = self.route_candidates(redirect_did, caller, now_ms).await?;
                Ok(match pick(&fresh, caller, now_ms) {
                    Pick::Own(b) => Some(b.clone()),
                    _ => None,
                })
            }
        }
    }

    /// Every binding live at `now_ms` that a call to `redirect_did` from
    /// `caller` could follow, oldest first: one statement, two index
    /// lookups (the caller's own bindings, the DID's bindings without an
    /// `origination_did`).
    async fn route_candidates(
        &self,
        redirect_did: &str,
        caller: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<Binding>> {
        let part = |extra: &str| {
            format!(
                "SELECT {BINDING_COLUMNS} FROM bindings b LEFT JOIN dids d ON d.phonenumber = b.redirect_did \
                 WHERE b.redirect_did = $1 AND {extra} AND {BINDING_LIVE}"
            )
        };
        let unowned = part("b.origination_did IS NULL");
        let rows = match caller {
            Some(c) => {
                let sql = format!("{} UNION ALL {unowned}", part("b.origination_did = $3"));
                sqlx::query(AssertSqlSafe(sql))
                    .bind(redirect_did)
                    .bind(now_ms)
                    .bind(c)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(unowned))
                    .bind(redirect_did)
                    .bind(now_ms)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut bindings = rows.iter().map(map).collect::<Result<Vec<_>>>()?;
        bindings.sort_by(|a, b| {
            (a.date_created, &a.binding_sid).cmp(&(b.date_created, &b.binding_sid))
        });
        Ok(bindings)
    }

    /// Stores a call detail record; returns its SID. The account is the
    /// binding's, else the redirect DID's owner. Concurrent records share
    /// one statement and one commit (see [`CallRecorder`]).
    ///
    /// Errors: [`StoreError::Unavailable`] when the database cannot be
    /// reached; any other database error.
    pub async fn insert_call(&self, call: &CallDetail) -> Result<String> {
        let sid = new_sid();
        self.insert_call_as(&sid, call).await?;
        Ok(sid)
    }

    /// Stores a call detail record under `sid` (the SID call control gave
    /// the call when it began, so that its log lines carry it). With the
    /// record, in the same transaction: the DTMF and attributes of the
    /// binding or dialout it followed, and a row of the callback outbox
    /// when its account has a `callback_url` (see [`crate::callbacks`]).
    ///
    /// Errors: as [`Store::insert_call`]; a SID already stored is a
    /// database error.
    pub async fn insert_call_as(&self, sid: &str, call: &CallDetail) -> Result<()> {
        self.call_recorder
            .record(sid.to_string(), call.clone())
            .await?;
        self.outbox_notify.notify_one();
        Ok(())
    }

    /// The account's call detail records, a page of them (calls API).
    pub async fn list_calls(&self, account_sid: &str, q: &ListQuery) -> Result<Page<Call>> {
        self.run_list(&LIST, account_sid, now_ms(), q, map_call)
            .await
    }

    /// One call detail record of the account.
    ///
    /// Errors: [`StoreError::NotFound`] when the account has no record with
    /// this SID.
    pub async fn get_call(&self, account_sid: &str, call_sid: &str) -> Result<Call> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CALL_COLUMNS} FROM calls c WHERE c.account_sid = $1 AND c.call_sid = $2"
        )))
        .bind(account_sid)
        .bind(call_sid)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        map_call(&row)
    }

    /// Any call detail record by SID, whatever its account (callbacks).
    pub(crate) async fn call_by_sid(&self, call_sid: &str) -> Result<Option<Call>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CALL_COLUMNS} FROM calls c WHERE c.call_sid = $1"
        )))
        .bind(call_sid)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(map_call).transpose()
    }

    /// The call detail records of a binding, oldest first (for tests and
    /// operators until the calls API exists).
    pub async fn calls_of_binding(&self, binding_sid: &str) -> Result<Vec<CallDetail>> {
        let rows = sqlx::query(
            "SELECT binding_sid, type, direction, number_src, number_dst, number_redirect, date_start, date_answer, \
             date_stop, duration, sip_status, hangup_side FROM calls WHERE binding_sid = $1 ORDER BY date_stop, call_sid",
        )
        .bind(binding_sid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CallDetail {
                    binding_sid: r.try_get("binding_sid")?,
                    kind: r.try_get("type")?,
                    direction: r.try_get("direction")?,
                    number_src: r.try_get("number_src")?,
                    number_dst: r.try_get("number_dst")?,
                    number_redirect: r.try_get("number_redirect")?,
                    date_start: r.try_get("date_start")?,
                    date_answer: r.try_get("date_answer")?,
                    date_stop: r.try_get("date_stop")?,
                    duration: r.try_get("duration")?,
                    sip_status: u16::try_from(r.try_get::<i32, _>("sip_status")?).unwrap_or(0),
                    hangup_side: r.try_get("hangup_side")?,
                })
            })
            .collect()
    }
}

/// Columns a [`Call`] is read from (table alias `c`).
const CALL_COLUMNS: &str = "c.call_sid, c.account_sid, COALESCE(c.binding_sid, c.dialout_sid) AS reference_sid, c.type, c.direction, c.number_src, \
     c.number_dst, c.number_redirect, c.date_start, c.date_answer, c.date_stop, c.duration, c.sip_status, \
     c.hangup_side, c.dtmf, c.attributes, c.dialout_sid, c.outcome";

fn map_call(r: &AnyRow) -> Result<Call> {
    Ok(Call {
        call_sid: r.try_get("call_sid")?,
        account_sid: r.try_get("account_sid")?,
        reference_sid: r.try_get("reference_sid")?,
        kind: r.try_get("type")?,
        direction: r.try_get("direction")?,
        number_src: r.try_get("number_src")?,
        number_dst: r.try_get("number_dst")?,
        number_redirect: r.try_get("number_redirect")?,
        date_start: r.try_get("date_start")?,
        date_talk: r.try_get("date_answer")?,
        date_stop: r.try_get("date_stop")?,
        duration: r.try_get("duration")?,
        dtmf: r.try_get("dtmf")?,
        sip_status: u16::try_from(r.try_get::<i32, _>("sip_status")?).unwrap_or(0),
        hangup_side: r.try_get("hangup_side")?,
        attributes: super::json_map(r, "attributes")?,
        dialout_sid: r.try_get("dialout_sid")?,
        outcome: r.try_get("outcome")?,
    })
}

const fn field(name: &'static str, expr: &'static str, kind: Kind, nullable: bool) -> FieldSpec {
    FieldSpec {
        name,
        expr,
        kind,
        nullable,
    }
}

/// The calls API's list: the account's records, ordered by `date_stop`
/// unless the request orders otherwise (the API handler sets it), as the
/// reference orders Call Detail Records.
pub const LIST: ListSpec = ListSpec {
    from: "calls c",
    columns: CALL_COLUMNS,
    base_where: "c.account_sid = $1 AND $2 = $2",
    sid: "c.call_sid",
    fields: &[
        field("account_sid", "c.account_sid", Kind::Text, true),
        field("call_sid", "c.call_sid", Kind::Text, false),
        field("date_start", "c.date_start", Kind::Time, false),
        field("date_stop", "c.date_stop", Kind::Time, false),
        field("date_talk", "c.date_answer", Kind::Time, true),
        field("dialout_sid", "c.dialout_sid", Kind::Text, true),
        field("direction", "c.direction", Kind::Text, false),
        field("dtmf", "c.dtmf", Kind::Text, true),
        field("duration", "c.duration", Kind::Int, false),
        field("hangup_side", "c.hangup_side", Kind::Text, true),
        field("number_dst", "c.number_dst", Kind::Phone, false),
        field("number_redirect", "c.number_redirect", Kind::Phone, false),
        field("number_src", "c.number_src", Kind::Phone, false),
        field("outcome", "c.outcome", Kind::Text, true),
        field(
            "reference_sid",
            "COALESCE(c.binding_sid, c.dialout_sid)",
            Kind::Text,
            true,
        ),
        field("sip_status", "c.sip_status", Kind::Int, false),
        field("type", "c.type", Kind::Text, false),
    ],
    attributes: Some("c.attributes"),
    nested: &[],
};

/// A call detail record waiting for its batch, and who waits for it.
type Job = (String, CallDetail, tokio::sync::oneshot::Sender<Result<()>>);

/// Group commit of call detail records: calls end at the call rate, and
/// each record written alone would cost a statement and a commit (on SQLite
/// a round trip to its worker thread under the writer lock). A task takes
/// what has queued up, at most [`CallRecorder::MAX_BATCH`] records, and
/// writes them with one multi-row `INSERT`; if that fails, each record is
/// tried alone, so one bad record cannot lose the others.
#[derive(Clone)]
pub(crate) struct CallRecorder {
    jobs: tokio::sync::mpsc::Sender<Job>,
}

impl CallRecorder {
    /// Most records in one statement (14 parameters each).
    pub(crate) const MAX_BATCH: usize = 64;

    /// Starts the batch task over `pool`; on SQLite, `writer` is the
    /// store's writer lock.
    pub(crate) fn start(
        pool: sqlx::AnyPool,
        writer: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    ) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < Self::MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                let _lock = match &writer {
                    Some(w) => Some(w.lock().await),
                    None => None,
                };
                let records: Vec<(&str, &CallDetail)> =
                    jobs.iter().map(|(sid, c, _)| (sid.as_str(), c)).collect();
                if jobs.len() > 1 && insert_calls(&pool, &records).await.is_ok() {
                    for (_, _, reply) in jobs {
                        let _ = reply.send(Ok(()));
                    }
                    continue;
                }
                for (sid, call, reply) in jobs {
                    let _ = reply.send(insert_calls(&pool, &[(sid.as_str(), &call)]).await);
                }
            }
        });
        Self { jobs: tx }
    }

    /// Writes `call` as `sid`; returns once it is committed.
    pub(crate) async fn record(&self, sid: String, call: CallDetail) -> Result<()> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send((sid, call, reply))
            .await
            .map_err(|_| StoreError::Unavailable("the call record queue is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the call record queue stopped".into()))?
    }
}

/// One transaction: one `INSERT` of `records` (SID and record each), with
/// the DTMF and attributes of the binding or dialout each followed, then
/// the callback outbox rows of those whose account has a callback URL.
async fn insert_calls(pool: &sqlx::AnyPool, records: &[(&str, &CallDetail)]) -> Result<()> {
    const PER_ROW: usize = 13;
    let rows: Vec<String> = (0..records.len())
        .map(|i| {
            let p = |n: usize| format!("${}", i * PER_ROW + n);
            format!(
                "({}, COALESCE((SELECT account_sid FROM bindings WHERE binding_sid = {}), \
                 (SELECT account_sid FROM dialouts WHERE dialout_sid = {}), \
                 (SELECT account_sid FROM dids WHERE phonenumber = {})), {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, \
                 (SELECT dtmf FROM bindings WHERE binding_sid = {}), \
                 COALESCE((SELECT attributes FROM bindings WHERE binding_sid = {}), \
                 (SELECT attributes FROM dialouts WHERE dialout_sid = {}), '{{}}'))",
                p(1), p(2), p(2), p(7), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10), p(11), p(12), p(13),
                p(2), p(2), p(2)
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO calls (call_sid, account_sid, binding_sid, type, direction, number_src, number_dst, \
         number_redirect, date_start, date_answer, date_stop, duration, sip_status, hangup_side, dtmf, attributes) VALUES {}",
        rows.join(", ")
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for (sid, call) in records {
        q = q
            .bind(sid.to_string())
            .bind(call.binding_sid.clone())
            .bind(call.kind.clone())
            .bind(call.direction.clone())
            .bind(call.number_src.clone())
            .bind(call.number_dst.clone())
            .bind(call.number_redirect.clone())
            .bind(call.date_start)
            .bind(call.date_answer)
            .bind(call.date_stop)
            .bind(call.duration)
            .bind(i32::from(call.sip_status))
            .bind(call.hangup_side.clone());
    }
    let sids: Vec<String> = (0..records.len()).map(|i| format!("${}", i + 2)).collect();
    let outbox = format!(
        "INSERT INTO callback_outbox (call_sid, account_sid, date_created, next_attempt_at, attempts) \
         SELECT c.call_sid, c.account_sid, $1, $1, 0 FROM calls c JOIN accounts a ON a.account_sid = c.account_sid \
         WHERE a.callback_url IS NOT NULL AND a.callback_url <> '' AND c.call_sid IN ({})",
        sids.join(", ")
    );
    let mut o = sqlx::query(AssertSqlSafe(outbox)).bind(now_ms());
    for (sid, _) in records {
        o = o.bind(sid.to_string());
    }
    let mut tx = pool.begin().await?;
    q.execute(&mut *tx).await?;
    o.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}
