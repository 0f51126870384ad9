//! Accounts: seeding from config, the `mediator account` subcommands, and
//! the API's reads. Passwords are stored as argon2id hashes (PHC strings).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::list::{FieldSpec, Kind, ListQuery, ListSpec, Page};
use super::{Result, Store, StoreError};
use crate::model::account::Account;
use crate::model::{new_sid, now_ms};

/// Hashes `password` with argon2id and a random salt.
pub fn hash_password(password: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    let Ok(salt) = SaltString::encode_b64(&bytes) else {
        return String::new();
    };
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
}

/// Checks `password` against a stored PHC hash (constant time in the hash
/// comparison, as argon2's verifier is).
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

const COLUMNS: &str = "account_sid, name, login, permissions, date_created";

fn map(row: &AnyRow) -> Result<Account> {
    let perms: String = row.try_get("permissions")?;
    Ok(Account {
        account_sid: row.try_get("account_sid")?,
        name: row.try_get("name")?,
        login: row.try_get("login")?,
        permissions: perms
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        date_created: row.try_get("date_created")?,
    })
}

/// The API's list of accounts: an account sees itself only.
pub const LIST: ListSpec = ListSpec {
    from: "accounts",
    columns: COLUMNS,
    base_where: "account_sid = $1 AND $2 = $2",
    sid: "account_sid",
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
            name: "login",
            expr: "login",
            kind: Kind::Text,
            nullable: false,
        },
        FieldSpec {
            name: "name",
            expr: "name",
            kind: Kind::Text,
            nullable: false,
        },
    ],
    attributes: None,
    nested: &[],
};

impl Store {
    /// Creates an account, or updates name, password and permissions of the
    /// account with this login. Returns it.
    pub async fn upsert_account(
        &self,
        name: &str,
        login: &str,
        password: &str,
        permissions: &[String],
    ) -> Result<Account> {
        let perms = permissions.join(",");
        let existing = self.account_by_login(login).await?;
        let _w = self.writer().await;
        match existing {
            Some((acc, hash)) => {
                let hash = if verify_password(password, &hash) {
                    hash
                } else {
                    hash_password(password)
                };
                sqlx::query("UPDATE accounts SET name = $1, password_hash = $2, permissions = $3 WHERE account_sid = $4")
                    .bind(name)
                    .bind(hash)
                    .bind(perms)
                    .bind(&acc.account_sid)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO accounts (account_sid, name, login, password_hash, permissions, date_created) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(new_sid())
                .bind(name)
                .bind(login)
                .bind(hash_password(password))
                .bind(perms)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            }
        }
        drop(_w);
        self.account_by_login(login)
            .await?
            .map(|(a, _)| a)
            .ok_or(StoreError::NotFound)
    }

    /// The account with `login` and its password hash.
    pub async fn account_by_login(&self, login: &str) -> Result<Option<(Account, String)>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS}, password_hash FROM accounts WHERE login = $1"
        )))
        .bind(login)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some((map(&r)?, r.try_get("password_hash")?))),
        }
    }

    /// All accounts, by login (for the command line).
    pub async fn all_accounts(&self) -> Result<Vec<Account>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM accounts ORDER BY login"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(map).collect()
    }

    /// Deletes the account with `login` and everything it owns.
    pub async fn delete_account(&self, login: &str) -> Result<()> {
        let _w = self.writer().await;
        let done = sqlx::query("DELETE FROM accounts WHERE login = $1")
            .bind(login)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // Its bindings are gone with it (ON DELETE CASCADE).
        if let Some(cache) = &self.binding_cache {
            cache.clear();
        }
        if let Some(routes) = &self.route_cache {
            routes.changed_all();
        }
        Ok(())
    }

    /// The API's account list for `account_sid`.
    pub async fn list_accounts(&self, account_sid: &str, q: &ListQuery) -> Result<Page<Account>> {
        self.run_list(&LIST, account_sid, now_ms(), q, map).await
    }

    /// The account `sid`, if it is the caller's own.
    pub async fn get_account(&self, account_sid: &str, sid: &str) -> Result<Account> {
        if account_sid != sid {
            return Err(StoreError::NotFound);
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM accounts WHERE account_sid = $1"
        )))
        .bind(sid)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        map(&row)
    }
}
