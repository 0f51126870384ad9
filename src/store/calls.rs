//! What call control needs from the store: the binding an inbound call
//! follows, and the call detail record when it ends.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{BINDING_LIVE, Result, Store};
use crate::model::binding::Binding;
use crate::model::new_sid;

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

impl Store {
    /// The live binding an inbound call to `redirect_did` from `caller`
    /// follows (DESIGN.md, "SIP and media decisions"): the binding whose
    /// `origination_did` is the caller; else a binding waiting for its first
    /// caller, which takes this caller atomically (two racing first callers
    /// cannot both win); else a binding with no `origination_did` and waiting
    /// disabled. An anonymous caller (`None`) cannot take a waiting binding.
    pub async fn route_inbound(
        &self,
        redirect_did: &str,
        caller: Option<&str>,
        now_ms: i64,
    ) -> Result<Option<Binding>> {
        let select = |extra: &str| {
            format!(
                "SELECT {BINDING_COLUMNS} FROM bindings b LEFT JOIN dids d ON d.phonenumber = b.redirect_did \
                 WHERE b.redirect_did = $1 AND {BINDING_LIVE} AND {extra} ORDER BY b.date_created LIMIT 1"
            )
        };
        if let Some(c) = caller {
            let row = sqlx::query(AssertSqlSafe(select("b.origination_did = $3")))
                .bind(redirect_did)
                .bind(now_ms)
                .bind(c)
                .fetch_optional(&self.pool)
                .await?;
            if let Some(r) = row {
                return Ok(Some(map(&r)?));
            }
            let waiting = sqlx::query(AssertSqlSafe(select(
                "b.origination_did IS NULL AND b.wait_expires_at IS NOT NULL",
            )))
            .bind(redirect_did)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(r) = waiting {
                let mut binding = map(&r)?;
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
                    return Ok(Some(binding));
                }
                // Another caller took it first: this caller may still be
                // served by a binding of its own made meanwhile; else 404.
                drop(_w);
                let row = sqlx::query(AssertSqlSafe(select("b.origination_did = $3")))
                    .bind(redirect_did)
                    .bind(now_ms)
                    .bind(c)
                    .fetch_optional(&self.pool)
                    .await?;
                return row.as_ref().map(map).transpose();
            }
        }
        let open = sqlx::query(AssertSqlSafe(select(
            "b.origination_did IS NULL AND b.wait_expires_at IS NULL",
        )))
        .bind(redirect_did)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        open.as_ref().map(map).transpose()
    }

    /// Stores a call detail record; returns its SID. The account is the
    /// binding's, else the redirect DID's owner.
    pub async fn insert_call(&self, call: &CallDetail) -> Result<String> {
        let sid = new_sid();
        let _w = self.writer().await;
        sqlx::query(
            "INSERT INTO calls (call_sid, account_sid, binding_sid, type, direction, number_src, number_dst, number_redirect, \
             date_start, date_answer, date_stop, duration, sip_status, hangup_side) VALUES ($1, \
             COALESCE((SELECT account_sid FROM bindings WHERE binding_sid = $2), (SELECT account_sid FROM dids WHERE phonenumber = $7)), \
             $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&sid)
        .bind(call.binding_sid.clone())
        .bind(&call.kind)
        .bind(&call.direction)
        .bind(&call.number_src)
        .bind(&call.number_dst)
        .bind(&call.number_redirect)
        .bind(call.date_start)
        .bind(call.date_answer)
        .bind(call.date_stop)
        .bind(call.duration)
        .bind(i32::from(call.sip_status))
        .bind(call.hangup_side.clone())
        .execute(&self.pool)
        .await?;
        Ok(sid)
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
