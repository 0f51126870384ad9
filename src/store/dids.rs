//! DIDs: the account's rented numbers, with their formats computed once
//! from the numbering metadata when they are added.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::list::{FieldSpec, Kind, ListQuery, ListSpec, Page};
use super::{Result, Store, StoreError};
use crate::model::did::Did;
use crate::model::phone::{NumberInfo, PhoneNumber};
use crate::model::{new_sid, now_ms};

const COLUMNS: &str =
    "did_sid, account_sid, phonenumber, country_code, in_country_format, international_format";

fn map(row: &AnyRow) -> Result<Did> {
    Ok(Did {
        did_sid: row.try_get("did_sid")?,
        account_sid: row.try_get("account_sid")?,
        info: NumberInfo {
            country_code: row.try_get("country_code")?,
            in_country_format: row.try_get("in_country_format")?,
            international_format: row.try_get("international_format")?,
            phonenumber: row.try_get("phonenumber")?,
        },
    })
}

/// The API's DID list.
pub const LIST: ListSpec = ListSpec {
    from: "dids",
    columns: COLUMNS,
    base_where: "account_sid = $1 AND $2 = $2",
    sid: "did_sid",
    fields: &[
        FieldSpec {
            name: "account_sid",
            expr: "account_sid",
            kind: Kind::Text,
            nullable: false,
        },
        FieldSpec {
            name: "country_code",
            expr: "country_code",
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
            name: "did_sid",
            expr: "did_sid",
            kind: Kind::Text,
            nullable: false,
        },
        FieldSpec {
            name: "in_country_format",
            expr: "in_country_format",
            kind: Kind::Text,
            nullable: false,
        },
        FieldSpec {
            name: "international_format",
            expr: "international_format",
            kind: Kind::Text,
            nullable: false,
        },
        FieldSpec {
            name: "phonenumber",
            expr: "phonenumber",
            kind: Kind::Phone,
            nullable: false,
        },
    ],
    attributes: None,
    nested: &[],
};

impl Store {
    /// Gives `number` to the account `account_sid`. Adding a number the
    /// account already has is a no-op; a number of another account is a
    /// conflict.
    pub async fn add_did(&self, account_sid: &str, number: &PhoneNumber) -> Result<Did> {
        let _w = self.writer().await;
        let existing = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM dids WHERE phonenumber = $1"
        )))
        .bind(number.digits())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = existing {
            let did = map(&row)?;
            if did.account_sid != account_sid {
                return Err(StoreError::Conflict {
                    field: "phonenumber".into(),
                    message: format!("{} belongs to another account", number.digits()),
                });
            }
            return Ok(did);
        }
        let info = number.info();
        let did = Did {
            did_sid: new_sid(),
            account_sid: account_sid.to_string(),
            info,
        };
        sqlx::query(
            "INSERT INTO dids (did_sid, account_sid, phonenumber, country_code, in_country_format, international_format, date_created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&did.did_sid)
        .bind(&did.account_sid)
        .bind(&did.info.phonenumber)
        .bind(&did.info.country_code)
        .bind(&did.info.in_country_format)
        .bind(&did.info.international_format)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(did)
    }

    /// Removes the DID `number`; refused while a live binding or a scheduled
    /// dialout uses it.
    pub async fn delete_did(&self, number: &PhoneNumber) -> Result<()> {
        let _w = self.writer().await;
        let now = now_ms();
        let busy = sqlx::query(AssertSqlSafe(format!(
            "SELECT 1 FROM bindings b WHERE b.redirect_did = $1 AND {} \
             UNION ALL SELECT 1 FROM dialouts WHERE redirect_did = $1 AND state = 'scheduled'",
            super::BINDING_LIVE
        )))
        .bind(number.digits())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if busy.is_some() {
            return Err(StoreError::Conflict {
                field: "phonenumber".into(),
                message: format!(
                    "{} is the redirect_did of a live binding or scheduled dialout",
                    number.digits()
                ),
            });
        }
        let done = sqlx::query("DELETE FROM dids WHERE phonenumber = $1")
            .bind(number.digits())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// All DIDs of the account (for the command line and allocation).
    pub async fn account_dids(&self, account_sid: &str) -> Result<Vec<Did>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM dids WHERE account_sid = $1 ORDER BY phonenumber"
        )))
        .bind(account_sid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(map).collect()
    }

    /// The API's DID list.
    pub async fn list_dids(&self, account_sid: &str, q: &ListQuery) -> Result<Page<Did>> {
        self.run_list(&LIST, account_sid, now_ms(), q, map).await
    }

    /// One DID of the account.
    pub async fn get_did(&self, account_sid: &str, sid: &str) -> Result<Did> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM dids WHERE did_sid = $1 AND account_sid = $2"
        )))
        .bind(sid)
        .bind(account_sid)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        map(&row)
    }
}
