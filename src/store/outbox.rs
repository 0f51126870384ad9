//! The callback outbox: one row per call detail record whose account has a
//! `callback_url`, written in the record's own transaction, deleted once
//! the record is delivered (see [`crate::callbacks`]).
//!
//! A delivery worker claims due rows by moving their `next_attempt_at` past
//! a lease: on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so that with
//! several nodes on one database each row is claimed by one node; on SQLite
//! under the process's writer lock. A node that dies holding a claim loses
//! it when the lease runs out, and the row is claimed again (at least once).

use sqlx::{AssertSqlSafe, Row};

use super::list::Dialect;
use super::{Result, Store};
use crate::model::call::Call;

/// A claimed outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The record to deliver.
    pub call_sid: String,
    /// Attempts made before this one.
    pub attempts: i32,
    /// When the row was written (the record stored), ms since the epoch.
    pub date_created: i64,
}

/// What a delivery needs: the record and where and how to send it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The record.
    pub call: Call,
    /// The account's callback URL.
    pub url: String,
    /// The account's signing secret (empty when none is set).
    pub secret: String,
}

/// A row of the outbox as operators see it (`mediator callbacks`, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The record.
    pub call_sid: String,
    /// Attempts made so far.
    pub attempts: i32,
    /// When the next attempt is due, ms since the epoch.
    pub next_attempt_at: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When delivery was given up, ms since the epoch.
    pub failed_at: Option<i64>,
}

impl Store {
    /// Claims at most `limit` rows due at `now_ms` for `lease_ms`: their
    /// next attempt moves to `now_ms + lease_ms`, so no other worker takes
    /// them meanwhile.
    pub async fn claim_callbacks(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<Claim>> {
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE callback_outbox SET next_attempt_at = $2 WHERE call_sid IN \
             (SELECT call_sid FROM callback_outbox WHERE failed_at IS NULL AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $3{lock}) \
             RETURNING call_sid, attempts, date_created"
        );
        let _w = self.writer().await;
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(now_ms)
            .bind(now_ms + lease_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Claim {
                    call_sid: r.try_get("call_sid")?,
                    attempts: r.try_get("attempts")?,
                    date_created: r.try_get("date_created")?,
                })
            })
            .collect()
    }

    /// The record of a claim with its account's URL and secret; `None` when
    /// the record or its account is gone or the URL was removed.
    pub async fn callback_delivery(&self, call_sid: &str) -> Result<Option<Delivery>> {
        let Some(call) = self.call_by_sid(call_sid).await? else {
            return Ok(None);
        };
        let Some(account) = call.account_sid.clone() else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT callback_url, callback_secret FROM accounts WHERE account_sid = $1",
        )
        .bind(account)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let url: Option<String> = row.try_get("callback_url")?;
        let secret: Option<String> = row.try_get("callback_secret")?;
        Ok(url.filter(|u| !u.is_empty()).map(|url| Delivery {
            call,
            url,
            secret: secret.unwrap_or_default(),
        }))
    }

    /// Removes a delivered (or undeliverable) row.
    pub async fn callback_done(&self, call_sid: &str) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query("DELETE FROM callback_outbox WHERE call_sid = $1")
            .bind(call_sid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt: the next one is due at `next_ms`, or, when
    /// `give_up` is set, there is none (`failed_at` = now).
    pub async fn callback_failed(
        &self,
        call_sid: &str,
        next_ms: i64,
        give_up: bool,
        error: &str,
    ) -> Result<()> {
        let _w = self.writer().await;
        let sql = if give_up {
            "UPDATE callback_outbox SET attempts = attempts + 1, failed_at = $2, last_error = $3 WHERE call_sid = $1"
        } else {
            "UPDATE callback_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 WHERE call_sid = $1"
        };
        sqlx::query(sql)
            .bind(call_sid)
            .bind(next_ms)
            .bind(error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every outbox row, oldest first.
    pub async fn outbox(&self) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT call_sid, attempts, next_attempt_at, last_error, failed_at FROM callback_outbox \
             ORDER BY date_created, call_sid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    call_sid: r.try_get("call_sid")?,
                    attempts: r.try_get("attempts")?,
                    next_attempt_at: r.try_get("next_attempt_at")?,
                    last_error: r.try_get("last_error")?,
                    failed_at: r.try_get("failed_at")?,
                })
            })
            .collect()
    }

    /// Sets (or with `None` removes) an account's callback URL and secret.
    ///
    /// Errors: [`super::StoreError::NotFound`] when no account has this login.
    pub async fn set_callback(
        &self,
        login: &str,
        url: Option<&str>,
        secret: Option<&str>,
    ) -> Result<()> {
        let _w = self.writer().await;
        let done = sqlx::query(
            "UPDATE accounts SET callback_url = $2, callback_secret = COALESCE($3, callback_secret) WHERE login = $1",
        )
        .bind(login)
        .bind(url)
        .bind(secret)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(super::StoreError::NotFound);
        }
        Ok(())
    }

    /// An account's callback URL and secret, by login.
    ///
    /// Errors: [`super::StoreError::NotFound`] when no account has this login.
    pub async fn callback_of(&self, login: &str) -> Result<(Option<String>, Option<String>)> {
        let row =
            sqlx::query("SELECT callback_url, callback_secret FROM accounts WHERE login = $1")
                .bind(login)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(super::StoreError::NotFound)?;
        Ok((
            row.try_get("callback_url")?,
            row.try_get("callback_secret")?,
        ))
    }

    /// Wakes the delivery worker's wait for new records.
    pub(crate) fn outbox_notified(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.outbox_notify.clone()
    }
}
