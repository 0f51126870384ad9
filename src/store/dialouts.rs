//! Dialouts: stored, listed, changed and deleted while scheduled.
//!
//! Uniqueness (reference, "Create Dialout"; DESIGN.md): two scheduled
//! dialouts of an account may not share a number in their `redirect_did`,
//! `stage_one_destination_did` and `stage_two_destination_did` fields (any
//! of the three against any of the three). Writes run in
//! [`Store::begin_write`] so concurrent creates cannot both pass the check.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::list::{FieldSpec, Kind, ListQuery, ListSpec, Page};
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
        Ok(created)
    }

    /// The scheduled dialout `sid` of the account.
    pub async fn get_dialout(&self, account_sid: &str, sid: &str) -> Result<Dialout> {
        let mut conn = self.pool.acquire().await?;
        fetch(&mut conn, account_sid, sid)
            .await?
            .ok_or(StoreError::NotFound)
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
        let current = fetch(tx.conn(), account_sid, sid)
            .await?
            .ok_or(StoreError::NotFound)?;
        let redirect = draft
            .redirect_did
            .clone()
            .unwrap_or(current.redirect_did.clone());
        check_unique(&mut tx, account_sid, &redirect, draft, Some(sid)).await?;
        let fire_at = match draft.delay {
            Some(d) => now + d * 1000,
            None => current.fire_at,
        };
        sqlx::query(
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
        let updated = fetch(tx.conn(), account_sid, sid)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
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
            return Err(StoreError::NotFound);
        }
        Ok(())
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
