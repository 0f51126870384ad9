//! Dialouts: stored, listed, changed and deleted while scheduled.
//!
//! Uniqueness (reference, "Create Dialout"; DESIGN.md): two scheduled
//! dialouts of an account may not share a number in their `redirect_did`,
//! `stage_one_destination_did` and `stage_two_destination_did` fields (any
//! of the three against any of the three). Writes run in
//! [`Store::begin_write`] so concurrent creates cannot both pass the check.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::calls::CallDetail;
use super::list::{Dialect, FieldSpec, Kind, ListQuery, ListSpec, Page};
use super::{Result, Store, StoreError, WriteTx, json_map};
use crate::model::dialout::{Dialout, DialoutDraft};
use crate::model::phone::PhoneNumber;
use crate::model::{new_sid, now_ms};

const COLUMNS: &str = "dialout_sid, account_sid, redirect_did, stage_one_destination_did, stage_two_destination_did, \
     attributes, date_created, fire_at";

fn map(row: &AnyRow) -> Result<Dialout> {
    Ok(Dialout {
        dialout_sid: row.try_get("dialout_sid")?,
        account_sid: row.try_get("account_sid")?,
        redirect_did: row.try_get("redirect_did")?,
        stage_one_destination_did: row.try_get("stage_one_destination_did")?,
        stage_two_destination_did: row.try_get("stage_two_destination_did")?,
        attributes: json_map(row, "attributes")?,
        date_created: row.try_get("date_created")?,
        fire_at: row.try_get("fire_at")?,
    })
}

/// The API's dialout list: scheduled dialouts of the account.
pub const LIST: ListSpec = ListSpec {
    from: "dialouts",
    columns: COLUMNS,
    base_where: "account_sid = $1 AND state = 'scheduled' AND $2 = $2",
    sid: "dialout_sid",
    fields: &[
        FieldSpec {
            name: "account_sid",
            expr: "account_sid",
            kind: Kind::Text,
            nullable: false,
        },
        FieldSpec {
            name: "date_created",
            expr: "date_created",
            kind: Kind::Time,
            nullable: false,
        },
        FieldSpec {
            name: "delay",
            expr: "(CASE WHEN fire_at < $2 THEN 0 ELSE (fire_at - $2 + 999) / 1000 END)",
            kind: Kind::Int,
            nullable: false,
        },
        FieldSpec {
            name: "dialout_sid",
            expr: "dialout_sid",
            kind: Kind::Text,
            nullable: false,
        },
        FieldSpec {
            name: "redirect_did",
            expr: "redirect_did",
            kind: Kind::Phone,
            nullable: false,
        },
        FieldSpec {
            name: "stage_one_destination_did",
            expr: "stage_one_destination_did",
            kind: Kind::Phone,
            nullable: false,
        },
        FieldSpec {
            name: "stage_two_destination_did",
            expr: "stage_two_destination_did",
            kind: Kind::Phone,
            nullable: false,
        },
    ],
    attributes: Some("attributes"),
    nested: &[],
};

fn conflict(field: &str, message: String) -> StoreError {
    StoreError::Conflict {
        field: field.into(),
        message,
    }
}

impl Store {
    /// Creates a scheduled dialout; picks a redirect DID when the draft has
    /// none (stage one's country first, then `fallback_country`, then any).
    pub async fn create_dialout(
        &self,
        account_sid: &str,
        draft: &DialoutDraft,
        fallback_country: Option<&str>,
    ) -> Result<Dialout> {
        let mut tx = self.begin_write(account_sid).await?;
        let now = now_ms();
        let redirect = match &draft.redirect_did {
            Some(r) => r.clone(),
            None => allocate(&mut tx, account_sid, draft, fallback_country).await?,
        };
        check_unique(&mut tx, account_sid, &redirect, draft, None).await?;
        let sid = new_sid();
        sqlx::query(
            "INSERT INTO dialouts (dialout_sid, account_sid, redirect_did, stage_one_destination_did, \
             stage_two_destination_did, attributes, date_created, fire_at, state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'scheduled')",
        )
        .bind(&sid)
        .bind(account_sid)
        .bind(&redirect)
        .bind(&draft.stage_one_destination_did)
        .bind(&draft.stage_two_destination_did)
        .bind(serde_json::Value::Object(draft.attributes.clone()).to_string())
        .bind(now)
        .bind(now + draft.delay.unwrap_or(0) * 1000)
        .execute(tx.conn())
        .await?;
        let created = fetch(tx.conn(), account_sid, &sid)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        self.dialout_notify.notify_one();
        Ok(created)
    }

    /// The scheduled dialout `sid` of the account.
    pub async fn get_dialout(&self, account_sid: &str, sid: &str) -> Result<Dialout> {
        let mut conn = self.pool.acquire().await?;
        fetch(&mut conn, account_sid, sid)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// The scheduled dialout `sid` of the account, to be changed.
    ///
    /// Errors: [`StoreError::Conflict`] on `dialout_sid`, naming the state,
    /// when the dialout has begun (claimed by a scheduler: it can no longer
    /// be changed); [`StoreError::NotFound`] when there is none.
    pub async fn dialout_to_change(&self, account_sid: &str, sid: &str) -> Result<Dialout> {
        let mut conn = self.pool.acquire().await?;
        match fetch(&mut conn, account_sid, sid).await? {
            Some(d) => Ok(d),
            None => Err(not_scheduled(&mut conn, account_sid, sid).await),
        }
    }

    /// The API's dialout list.
    pub async fn list_dialouts(
        &self,
        account_sid: &str,
        now: i64,
        q: &ListQuery,
    ) -> Result<Page<Dialout>> {
        self.run_list(&LIST, account_sid, now, q, map).await
    }

    /// Replaces the state of scheduled dialout `sid` with `draft`.
    pub async fn update_dialout(
        &self,
        account_sid: &str,
        sid: &str,
        draft: &DialoutDraft,
    ) -> Result<Dialout> {
        let mut tx = self.begin_write(account_sid).await?;
        let now = now_ms();
        let Some(current) = fetch(tx.conn(), account_sid, sid).await? else {
            return Err(not_scheduled(tx.conn(), account_sid, sid).await);
        };
        let redirect = draft
            .redirect_did
            .clone()
            .unwrap_or(current.redirect_did.clone());
        check_unique(&mut tx, account_sid, &redirect, draft, Some(sid)).await?;
        let fire_at = match draft.delay {
            Some(d) => now + d * 1000,
            None => current.fire_at,
        };
        let done = sqlx::query(
            "UPDATE dialouts SET redirect_did = $1, stage_one_destination_did = $2, stage_two_destination_did = $3, \
             attributes = $4, fire_at = $5 WHERE dialout_sid = $6 AND account_sid = $7 AND state = 'scheduled'",
        )
        .bind(&redirect)
        .bind(&draft.stage_one_destination_did)
        .bind(&draft.stage_two_destination_did)
        .bind(serde_json::Value::Object(draft.attributes.clone()).to_string())
        .bind(fire_at)
        .bind(sid)
        .bind(account_sid)
        .execute(tx.conn())
        .await?;
        if done.rows_affected() == 0 {
            // Claimed by a scheduler between the read and the write.
            return Err(not_scheduled(tx.conn(), account_sid, sid).await);
        }
        let updated = fetch(tx.conn(), account_sid, sid)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        self.dialout_notify.notify_one();
        Ok(updated)
    }

    /// Deletes (cancels) the scheduled dialout `sid`.
    pub async fn delete_dialout(&self, account_sid: &str, sid: &str) -> Result<()> {
        let _w = self.writer().await;
        let done = sqlx::query("DELETE FROM dialouts WHERE dialout_sid = $1 AND account_sid = $2 AND state = 'scheduled'")
            .bind(sid)
            .bind(account_sid)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            let mut conn = self.pool.acquire().await?;
            return Err(not_scheduled(&mut conn, account_sid, sid).await);
        }
        Ok(())
    }

    /// Claims at most `limit` scheduled dialouts due at `now_ms` for node
    /// `node`: each moves to state `started` (with `claimed_by` and
    /// `started_at`) in one conditional `UPDATE`, so that of several nodes
    /// (or racing schedulers) exactly one gets each dialout; on PostgreSQL
    /// the candidate rows are also locked with `FOR UPDATE SKIP LOCKED`, so
    /// that nodes claiming at once take different rows instead of waiting
    /// for each other. A `started` dialout is never claimed again. Oldest
    /// `fire_at` first.
    ///
    /// Errors: [`StoreError::Unavailable`] and other database errors.
    pub async fn claim_due_dialouts(
        &self,
        now_ms: i64,
        node: &str,
        limit: i64,
    ) -> Result<Vec<Dialout>> {
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE dialouts SET state = 'started', claimed_by = $2, started_at = $1 WHERE dialout_sid IN \
             (SELECT dialout_sid FROM dialouts WHERE state = 'scheduled' AND fire_at <= $1 \
             ORDER BY fire_at LIMIT $3{lock}) AND state = 'scheduled' AND fire_at <= $1 RETURNING {COLUMNS}"
        );
        let _w = self.writer().await;
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now_ms)
            .bind(node.to_string())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        drop(_w);
        let mut claimed = rows.iter().map(map).collect::<Result<Vec<_>>>()?;
        claimed.sort_by(|a, b| (a.fire_at, &a.dialout_sid).cmp(&(b.fire_at, &b.dialout_sid)));
        Ok(claimed)
    }

    /// When the next scheduled dialout is due (ms since the epoch), if any.
    pub async fn next_dialout_due(&self) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MIN(fire_at) FROM dialouts WHERE state = 'scheduled'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    /// Dialouts claimed (state `started`) before `before_ms` and still
    /// there: their call never reported an end, because the node that
    /// claimed them died. Each is returned as (SID, account SID).
    pub async fn stale_started_dialouts(&self, before_ms: i64) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT dialout_sid, account_sid FROM dialouts WHERE state = 'started' AND started_at < $1 \
             ORDER BY started_at LIMIT 1000",
        )
        .bind(before_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Records the end of dialout `dialout_sid` and removes it, in one
    /// transaction: one `calls` row per leg (`type` `dialout`, `direction`
    /// `outbound`, with the dialout's SID, `outcome` and attributes), or,
    /// when no leg was attempted (a missed dialout), one row for it with
    /// `sip_status` 0, `number_src` and `number_redirect` its redirect DID,
    /// `number_dst` its stage one, `date_start` its `fire_at`; then the
    /// callback outbox rows of those records when the account has a
    /// `callback_url`; then the dialout row is deleted (the API answers 404
    /// for it from then on). Each leg is `(call SID, record)`; the leg's
    /// `binding_sid`, `kind` and `direction` are not used.
    ///
    /// Errors: [`StoreError::Unavailable`] and other database errors; on an
    /// error nothing is written.
    pub async fn finish_dialout(
        &self,
        dialout_sid: &str,
        account_sid: &str,
        outcome: &str,
        legs: &[(String, CallDetail)],
    ) -> Result<()> {
        let now = now_ms();
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT attributes FROM dialouts WHERE dialout_sid = $1{lock}"
        )))
        .bind(dialout_sid)
        .fetch_optional(&mut *tx)
        .await?;
        let attributes: String = match &row {
            Some(r) => r.try_get(0)?,
            None => "{}".into(),
        };
        for (sid, leg) in legs {
            sqlx::query(
                "INSERT INTO calls (call_sid, account_sid, binding_sid, type, direction, number_src, number_dst, \
                 number_redirect, date_start, date_answer, date_stop, duration, sip_status, hangup_side, dtmf, \
                 attributes, dialout_sid, outcome) \
                 VALUES ($1, $2, NULL, 'dialout', 'outbound', $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12, $13, $14)",
            )
            .bind(sid.clone())
            .bind(account_sid.to_string())
            .bind(leg.number_src.clone())
            .bind(leg.number_dst.clone())
            .bind(leg.number_redirect.clone())
            .bind(leg.date_start)
            .bind(leg.date_answer)
            .bind(leg.date_stop)
            .bind(leg.duration)
            .bind(i32::from(leg.sip_status))
            .bind(leg.hangup_side.clone())
            .bind(attributes.clone())
            .bind(dialout_sid.to_string())
            .bind(outcome.to_string())
            .execute(&mut *tx)
            .await?;
        }
        if legs.is_empty() {
            sqlx::query(
                "INSERT INTO calls (call_sid, account_sid, binding_sid, type, direction, number_src, number_dst, \
                 number_redirect, date_start, date_answer, date_stop, duration, sip_status, hangup_side, dtmf, \
                 attributes, dialout_sid, outcome) \
                 SELECT $1, account_sid, NULL, 'dialout', 'outbound', redirect_did, stage_one_destination_did, \
                 redirect_did, fire_at, NULL, $2, 0, 0, 'system', NULL, attributes, dialout_sid, $3 \
                 FROM dialouts WHERE dialout_sid = $4",
            )
            .bind(new_sid())
            .bind(now)
            .bind(outcome.to_string())
            .bind(dialout_sid.to_string())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO callback_outbox (call_sid, account_sid, date_created, next_attempt_at, attempts) \
             SELECT c.call_sid, c.account_sid, $1, $1, 0 FROM calls c JOIN accounts a ON a.account_sid = c.account_sid \
             WHERE a.callback_url IS NOT NULL AND a.callback_url <> '' AND c.dialout_sid = $2 \
             AND NOT EXISTS (SELECT 1 FROM callback_outbox o WHERE o.call_sid = c.call_sid)",
        )
        .bind(now)
        .bind(dialout_sid.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM dialouts WHERE dialout_sid = $1")
            .bind(dialout_sid.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        drop(_w);
        self.outbox_notify.notify_one();
        Ok(())
    }
}

/// The error for a dialout that is not (or no longer) scheduled: a
/// conflict naming its state when it has begun, else not found.
async fn not_scheduled(conn: &mut sqlx::AnyConnection, account_sid: &str, sid: &str) -> StoreError {
    let state =
        sqlx::query("SELECT state FROM dialouts WHERE account_sid = $1 AND dialout_sid = $2")
            .bind(account_sid)
            .bind(sid)
            .fetch_optional(&mut *conn)
            .await;
    match state {
        Ok(Some(row)) => match row.try_get::<String, _>(0) {
            Ok(state) => conflict(
                "dialout_sid",
                format!("dialout {sid} has begun (state {state}) and can no longer be changed"),
            ),
            Err(e) => e.into(),
        },
        Ok(None) => StoreError::NotFound,
        Err(e) => e.into(),
    }
}

async fn fetch(
    conn: &mut sqlx::AnyConnection,
    account_sid: &str,
    sid: &str,
) -> Result<Option<Dialout>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM dialouts WHERE account_sid = $1 AND dialout_sid = $2 AND state = 'scheduled'"
    )))
    .bind(account_sid)
    .bind(sid)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(map).transpose()
}

/// Checks that the redirect DID is the account's and that no other
/// scheduled dialout uses any of the three numbers.
async fn check_unique(
    tx: &mut WriteTx,
    account_sid: &str,
    redirect: &str,
    draft: &DialoutDraft,
    except: Option<&str>,
) -> Result<()> {
    let owned = sqlx::query("SELECT 1 FROM dids WHERE account_sid = $1 AND phonenumber = $2")
        .bind(account_sid)
        .bind(redirect)
        .fetch_optional(tx.conn())
        .await?;
    if owned.is_none() {
        return Err(conflict(
            "redirect_did",
            format!("{redirect} is not a DID of this account"),
        ));
    }
    let numbers = [
        ("redirect_did", redirect),
        (
            "stage_one_destination_did",
            draft.stage_one_destination_did.as_str(),
        ),
        (
            "stage_two_destination_did",
            draft.stage_two_destination_did.as_str(),
        ),
    ];
    for (field, number) in numbers {
        let row = sqlx::query(
            "SELECT dialout_sid FROM dialouts WHERE account_sid = $1 AND state = 'scheduled' AND dialout_sid <> $2 \
             AND (redirect_did = $3 OR stage_one_destination_did = $3 OR stage_two_destination_did = $3) LIMIT 1",
        )
        .bind(account_sid)
        .bind(except.unwrap_or("").to_string())
        .bind(number.to_string())
        .fetch_optional(tx.conn())
        .await?;
        if let Some(row) = row {
            let other: String = row.try_get(0)?;
            return Err(conflict(
                field,
                format!("{number} is already used by scheduled dialout {other}"),
            ));
        }
    }
    Ok(())
}

/// Picks a DID that no scheduled dialout uses.
async fn allocate(
    tx: &mut WriteTx,
    account_sid: &str,
    draft: &DialoutDraft,
    fallback: Option<&str>,
) -> Result<String> {
    let rows = sqlx::query(
        "SELECT d.phonenumber, d.country_code FROM dids d WHERE d.account_sid = $1 AND NOT EXISTS \
         (SELECT 1 FROM dialouts o WHERE o.account_sid = $1 AND o.state = 'scheduled' AND \
          (o.redirect_did = d.phonenumber OR o.stage_one_destination_did = d.phonenumber OR o.stage_two_destination_did = d.phonenumber)) \
         ORDER BY d.phonenumber",
    )
    .bind(account_sid)
    .fetch_all(tx.conn())
    .await?;
    let mut free: Vec<(String, String)> = Vec::with_capacity(rows.len());
    for r in &rows {
        free.push((r.try_get(0)?, r.try_get(1)?));
    }
    let in_country = |c: &str| free.iter().find(|(_, cc)| cc == c).map(|(n, _)| n.clone());
    if let Some(c) = PhoneNumber::parse(&draft.stage_one_destination_did)
        .ok()
        .and_then(|p| p.country_alpha3())
        && let Some(n) = in_country(c)
    {
        return Ok(n);
    }
    if let Some(f) = fallback {
        return in_country(f).ok_or_else(|| {
            conflict(
                "redirect_did",
                format!("no free DID of this account in {f}"),
            )
        });
    }
    free.into_iter().next().map(|(n, _)| n).ok_or_else(|| {
        conflict(
            "redirect_did",
            "cannot find redirect_did: every DID of this account is in a scheduled dialout".into(),
        )
    })
}
