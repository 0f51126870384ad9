//! Bindings: create with redirect DID allocation, read (live only), list,
//! change, delete, and the expiry sweep.
//!
//! Uniqueness (DESIGN.md, "REST API decisions"): two live bindings on one
//! redirect DID must differ in `origination_did`, and a binding with no
//! `origination_did` takes its redirect DID alone. Every write that can
//! break this runs in [`Store::begin_write`], so concurrent requests see
//! each other's bindings.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::list::{FieldSpec, Kind, ListQuery, ListSpec, Page};
use super::{BINDING_LIVE, Result, Store, StoreError, WriteTx, json_map};
use crate::model::binding::{Binding, BindingDraft};
use crate::model::phone::{NumberInfo, PhoneNumber};
use crate::model::{new_sid, now_ms};

const COLUMNS: &str = "b.binding_sid, b.account_sid, b.name, b.destination_did, b.origination_did, b.redirect_did, \
     b.dtmf, b.attributes, b.date_created, b.max_expires_at, b.wait_expires_at, \
     d.country_code, d.in_country_format, d.international_format";
const FROM: &str = "bindings b LEFT JOIN dids d ON d.phonenumber = b.redirect_did";

pub(crate) fn map_row(row: &AnyRow) -> Result<Binding> {
    let redirect_did: String = row.try_get("redirect_did")?;
    let country: Option<String> = row.try_get("country_code")?;
    let redirect_did_info = match country {
        Some(country_code) => NumberInfo {
            country_code,
            in_country_format: row
                .try_get::<Option<String>, _>("in_country_format")?
                .unwrap_or_default(),
            international_format: row
                .try_get::<Option<String>, _>("international_format")?
                .unwrap_or_default(),
            phonenumber: redirect_did.clone(),
        },
        // The DID row is gone (removed from the account): compute the formats.
        None => match PhoneNumber::parse(&redirect_did) {
            Ok(p) => p.info(),
            Err(_) => NumberInfo {
                country_code: String::new(),
                in_country_format: redirect_did.clone(),
                international_format: format!("+{redirect_did}"),
                phonenumber: redirect_did.clone(),
            },
        },
    };
    Ok(Binding {
        binding_sid: row.try_get("binding_sid")?,
        account_sid: row.try_get("account_sid")?,
        name: row.try_get("name")?,
        destination_did: row.try_get("destination_did")?,
        origination_did: row.try_get("origination_did")?,
        redirect_did,
        dtmf: row.try_get("dtmf")?,
        attributes: json_map(row, "attributes")?,
        date_created: row.try_get("date_created")?,
        max_expires_at: row.try_get("max_expires_at")?,
        wait_expires_at: row.try_get("wait_expires_at")?,
        redirect_did_info,
    })
}

/// The API's binding list: live bindings of the account.
pub const LIST: ListSpec = ListSpec {
    from: FROM,
    columns: COLUMNS,
    base_where: concat!(
        "b.account_sid = $1 AND (b.max_expires_at IS NULL OR b.max_expires_at > $2) ",
        "AND (b.origination_did IS NOT NULL OR b.wait_expires_at IS NULL OR b.wait_expires_at > $2)"
    ),
    sid: "b.binding_sid",
    fields: &[
        FieldSpec {
            name: "account_sid",
            expr: "b.account_sid",
            kind: Kind::Text,
            nullable: false,
        },
        FieldSpec {
            name: "binding_sid",
            expr: "b.binding_sid",
            kind: Kind::Text,
            nullable: false,
        },
        FieldSpec {
            name: "date_created",
            expr: "b.date_created",
            kind: Kind::Time,
            nullable: false,
        },
        FieldSpec {
            name: "destination_did",
            expr: "b.destination_did",
            kind: Kind::Phone,
            nullable: false,
        },
        FieldSpec {
            name: "dtmf",
            expr: "b.dtmf",
            kind: Kind::Text,
            nullable: true,
        },
        FieldSpec {
            name: "maximum_ttl",
            expr: "(CASE WHEN b.max_expires_at IS NULL THEN -1 ELSE (b.max_expires_at - $2 + 999) / 1000 END)",
            kind: Kind::Int,
            nullable: false,
        },
        FieldSpec {
            name: "name",
            expr: "b.name",
            kind: Kind::Text,
            nullable: false,
        },
        FieldSpec {
            name: "origination_did",
            expr: "b.origination_did",
            kind: Kind::Phone,
            nullable: true,
        },
        FieldSpec {
            name: "redirect_did",
            expr: "b.redirect_did",
            kind: Kind::Phone,
            nullable: false,
        },
        FieldSpec {
            name: "wait_origination_did_ttl",
            expr: "(CASE WHEN b.wait_expires_at IS NULL THEN -1 WHEN b.wait_expires_at < $2 THEN 0 ELSE (b.wait_expires_at - $2 + 999) / 1000 END)",
            kind: Kind::Int,
            nullable: false,
        },
    ],
    attributes: Some("b.attributes"),
    nested: &[
        ("redirect_did_info.country_code", "d.country_code"),
        ("redirect_did_info.e164_format", "('+' || b.redirect_did)"),
        ("redirect_did_info.in_country_format", "d.in_country_format"),
        (
            "redirect_did_info.international_format",
            "d.international_format",
        ),
        ("redirect_did_info.phonenumber", "b.redirect_did"),
    ],
};

/// Bindings by SID in memory, on SQLite only: there every write of a
/// binding goes through this process's writer lock, and the cache is
/// updated under that lock (writers overwrite; a reader fills a missing
/// entry only if nobody wrote it meanwhile; a delete leaves a tombstone), so
/// a read never sees an older state than the last write. Liveness is checked
/// at read time, so expiry needs no invalidation. Entries live 60 s at most,
/// which bounds how stale a change made by another process (the `mediator`
/// command line deleting an account) can look. Not used on PostgreSQL,
/// where other nodes write too.
#[derive(Clone)]
pub(crate) struct BindingCache(moka::sync::Cache<String, Option<std::sync::Arc<Binding>>>);

impl BindingCache {
    pub(crate) fn new() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(std::time::Duration::from_secs(60))
                .build(),
        )
    }

    /// Forgets every entry (under the writer lock, after a write that can
    /// touch any binding).
    pub(crate) fn clear(&self) {
        self.0.invalidate_all();
    }

    /// Records the state a writer just committed (under the writer lock).
    pub(crate) fn wrote(&self, sid: &str, state: Option<&Binding>) {
        self.0.insert(
            sid.to_string(),
            state.map(|b| std::sync::Arc::new(b.clone())),
        );
    }
}

/// Options of POST /bindings (reference, "Create Binding", query arguments).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// `reuse=true`: return a live binding with the same destination,
    /// origination and (when given) redirect DID instead of a new one.
    pub reuse: bool,
    /// `fallback_country`: ISO 3166-1 alpha-3 country to pick the redirect
    /// DID from when the caller's country has none free.
    pub fallback_country: Option<String>,
}

fn no_did(message: impl Into<String>) -> StoreError {
    StoreError::Conflict {
        field: "redirect_did".into(),
        message: message.into(),
    }
}

impl Store {
    /// Creates a binding from `draft`, picking a redirect DID when the draft
    /// has none.
    ///
    /// Errors: [`StoreError::Conflict`] on `redirect_did` when the given DID
    /// is not the account's or is taken for this caller, or when no DID is
    /// free.
    pub async fn create_binding(
        &self,
        account_sid: &str,
        draft: &BindingDraft,
        opts: &CreateOptions,
    ) -> Result<Binding> {
        // The formats of a given DID are read before the write lock is
        // taken (they only change when a DID is re-added), so that the lock
        // is held for one statement; ownership is checked again inside it.
        let given = match &draft.redirect_did {
            Some(r) => Some(self.did_formats(account_sid, r).await?),
            None => None,
        };
        // With a given DID and no reuse, the insert is one conditional
        // statement: on SQLite it joins a group commit.
        if let (Some(info), false, Some(batcher)) = (&given, opts.reuse, &self.insert_batcher) {
            let now = now_ms();
            let created = built(new_sid(), account_sid, draft, info.clone(), now, now);
            if batcher.insert(created.clone()).await? {
                return Ok(created);
            }
            let mut tx = self.begin_write(account_sid).await?;
            let origination = created.origination_did.as_deref();
            check_redirect(
                &mut tx,
                account_sid,
                &created.redirect_did,
                origination,
                None,
                now,
            )
            .await?;
            return Err(no_did(format!(
                "{} is taken for this caller",
                created.redirect_did
            )));
        }
        let mut tx = self.begin_write(account_sid).await?;
        let now = now_ms();
        if opts.reuse
            && let Some(existing) = find_same(&mut tx, account_sid, draft, now).await?
        {
            tx.commit().await?;
            return Ok(existing);
        }
        let info = match given {
            Some(info) => info,
            None => {
                allocate(
                    &mut tx,
                    account_sid,
                    draft,
                    opts.fallback_country.as_deref(),
                    now,
                )
                .await?
            }
        };
        let created = built(new_sid(), account_sid, draft, info, now, now);
        let inserted = insert_if_free(tx.conn(), &created, now).await?;
        if !inserted {
            // Say whether the DID is gone or which binding is in the way.
            check_redirect(
                &mut tx,
                account_sid,
                &created.redirect_did,
                created.origination_did.as_deref(),
                None,
                now,
            )
            .await?;
            return Err(no_did(format!(
                "{} is taken for this caller",
                created.redirect_did
            )));
        }
        let lock = tx.commit().await?;
        if let Some(cache) = &self.binding_cache {
            cache.wrote(&created.binding_sid, Some(&created));
        }
        if let Some(routes) = &self.route_cache {
            routes.changed(&created.redirect_did);
        }
        drop(lock);
        Ok(created)
    }

    /// The formats of the account's DID `number`, or a conflict on
    /// `redirect_did` when the account has no such DID. Read without a
    /// write lock.
    async fn did_formats(&self, account_sid: &str, number: &str) -> Result<NumberInfo> {
        let key = (account_sid.to_string(), number.to_string());
        if let Some(info) = self.did_formats.get(&key) {
            return Ok(info);
        }
        let mut conn = self.pool.acquire().await?;
        let info = query_did_formats(&mut conn, account_sid, number).await?;
        self.did_formats.insert(key, info.clone());
        Ok(info)
    }

    /// The live binding `sid` of the account.
    pub async fn get_binding(&self, account_sid: &str, sid: &str) -> Result<Binding> {
        let now = now_ms();
        let Some(cache) = &self.binding_cache else {
            let mut conn = self.pool.acquire().await?;
            return fetch(&mut conn, account_sid, sid, now)
                .await?
                .ok_or(StoreError::NotFound);
        };
        let entry = match cache.0.get(sid) {
            Some(entry) => entry,
            None => {
                let row = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM {FROM} WHERE b.binding_sid = $1"
                )))
                .bind(sid)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else {
                    return Err(StoreError::NotFound);
                };
                let read = std::sync::Arc::new(map_row(&row)?);
                // Fill only if no writer recorded a newer state meanwhile.
                cache
                    .0
                    .entry(sid.to_string())
                    .or_insert(Some(read))
                    .into_value()
            }
        };
        match entry {
            Some(b) if b.account_sid == account_sid && b.is_live(now) => Ok((*b).clone()),
            _ => Err(StoreError::NotFound),
        }
    }

    /// The API's binding list.
    pub async fn list_bindings(
        &self,
        account_sid: &str,
        now: i64,
        q: &ListQuery,
    ) -> Result<Page<Binding>> {
        self.run_list(&LIST, account_sid, now, q, map_row).await
    }

    /// Replaces the stored state of binding `sid` with `draft` (PATCH and
    /// PUT have already merged it); the same DID rules as on create.
    pub async fn update_binding(
        &self,
        account_sid: &str,
        sid: &str,
        draft: &BindingDraft,
    ) -> Result<Binding> {
        let mut tx = self.begin_write(account_sid).await?;
        let now = now_ms();
        let current = fetch(tx.conn(), account_sid, sid, now)
            .await?
            .ok_or(StoreError::NotFound)?;
        let redirect = draft
            .redirect_did
            .clone()
            .ok_or_else(|| no_did("a binding keeps its redirect_did"))?;
        let info = check_redirect(
            &mut tx,
            account_sid,
            &redirect,
            draft.origination_did.as_deref(),
            Some(sid),
            now,
        )
        .await?;
        let updated = built(
            sid.to_string(),
            account_sid,
            draft,
            info,
            current.date_created,
            now,
        );
        sqlx::query(
            "UPDATE bindings SET name = $1, destination_did = $2, origination_did = $3, redirect_did = $4, dtmf = $5, \
             attributes = $6, max_expires_at = $7, wait_expires_at = $8 WHERE binding_sid = $9 AND account_sid = $10",
        )
        .bind(&updated.name)
        .bind(&updated.destination_did)
        .bind(updated.origination_did.clone())
        .bind(&updated.redirect_did)
        .bind(updated.dtmf.clone())
        .bind(serde_json::Value::Object(updated.attributes.clone()).to_string())
        .bind(updated.max_expires_at)
        .bind(updated.wait_expires_at)
        .bind(sid)
        .bind(account_sid)
        .execute(tx.conn())
        .await?;
        let lock = tx.commit().await?;
        if let Some(cache) = &self.binding_cache {
            cache.wrote(sid, Some(&updated));
        }
        if let Some(routes) = &self.route_cache {
            routes.changed(&current.redirect_did);
            routes.changed(&updated.redirect_did);
        }
        drop(lock);
        Ok(updated)
    }

    /// Deletes the live binding `sid` of the account.
    pub async fn delete_binding(&self, account_sid: &str, sid: &str) -> Result<()> {
        let _w = self.writer().await;
        let done = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM bindings WHERE binding_sid = $1 AND account_sid = $3 AND binding_sid IN \
             (SELECT b.binding_sid FROM bindings b WHERE b.binding_sid = $1 AND {BINDING_LIVE}) \
             RETURNING redirect_did"
        )))
        .bind(sid)
        .bind(now_ms())
        .bind(account_sid)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = done else {
            return Err(StoreError::NotFound);
        };
        if let Some(cache) = &self.binding_cache {
            cache.wrote(sid, None);
        }
        if let Some(routes) = &self.route_cache {
            routes.changed(&row.try_get::<String, _>("redirect_did")?);
        }
        Ok(())
    }

    /// How many binding rows the table holds, expired ones included (for
    /// operators and tests of the expiry sweep).
    pub async fn count_binding_rows(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM bindings")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Deletes every binding whose TTL ran out before `now_ms`; returns how
    /// many.
    pub async fn sweep_expired_bindings(&self, now_ms: i64) -> Result<u64> {
        let _w = self.writer().await;
        // Two index range scans (max_expires_at, wait_expires_at), not a
        // scan of the whole table under the writer lock.
        let by_max = sqlx::query(
            "DELETE FROM bindings WHERE max_expires_at IS NOT NULL AND max_expires_at <= $1",
        )
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        let by_wait = sqlx::query(
            "DELETE FROM bindings WHERE wait_expires_at IS NOT NULL AND wait_expires_at <= $1 AND origination_did IS NULL",
        )
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(by_max.rows_affected() + by_wait.rows_affected())
    }
}

/// Inserts `b` only if its DID is still the account's and no live binding
/// blocks it for this caller (DESIGN.md's uniqueness rule), in one
/// statement; returns whether it was inserted.
async fn insert_if_free(conn: &mut sqlx::AnyConnection, b: &Binding, now: i64) -> Result<bool> {
    let sql = format!(
        "INSERT INTO bindings (binding_sid, account_sid, name, destination_did, origination_did, redirect_did, dtmf, \
         attributes, date_created, max_expires_at, wait_expires_at) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 \
         WHERE EXISTS (SELECT 1 FROM dids WHERE account_sid = $2 AND phonenumber = $6) AND {}",
        free_condition("$6", "$5", "$12", b.origination_did.as_deref())
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(&b.binding_sid)
        .bind(&b.account_sid)
        .bind(&b.name)
        .bind(&b.destination_did)
        .bind(b.origination_did.clone())
        .bind(&b.redirect_did)
        .bind(b.dtmf.clone())
        .bind(serde_json::Value::Object(b.attributes.clone()).to_string())
        .bind(b.date_created)
        .bind(b.max_expires_at)
        .bind(b.wait_expires_at)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Group commit of binding inserts on SQLite.
///
/// A SQLite commit costs far more than an insert (the WAL frames of every
/// page the insert touched are written per transaction), so concurrent
/// creates are queued to one task that runs whatever has queued up, up to
/// 64, in one transaction under the writer lock, then answers each. Alone,
/// an insert runs at once in its own transaction; under load the commits
/// are shared. Each insert keeps its own uniqueness check (the statement
/// sees the inserts before it in the same transaction).
#[derive(Clone)]
pub(crate) struct InsertBatcher {
    jobs: tokio::sync::mpsc::Sender<(Binding, tokio::sync::oneshot::Sender<Result<bool>>)>,
}

impl InsertBatcher {
    /// Starts the batch task over `store`'s pool and writer lock.
    pub(crate) fn start(
        pool: sqlx::AnyPool,
        writer: std::sync::Arc<tokio::sync::Mutex<()>>,
        cache: Option<BindingCache>,
        routes: Option<super::route_cache::RouteCache>,
    ) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(
            Binding,
            tokio::sync::oneshot::Sender<Result<bool>>,
        )>(1024);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < 64 {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                let _lock = writer.lock().await;
                let results = run_batch(&pool, &jobs).await;
                for ((binding, reply), result) in jobs.into_iter().zip(results) {
                    if let (Ok(true), Some(cache)) = (&result, &cache) {
                        cache.wrote(&binding.binding_sid, Some(&binding));
                    }
                    if let (Ok(true), Some(routes)) = (&result, &routes) {
                        routes.changed(&binding.redirect_did);
                    }
                    let _ = reply.send(result);
                }
            }
        });
        Self { jobs: tx }
    }

    /// Inserts `b` if free (see [`insert_if_free`]); whether it was.
    pub(crate) async fn insert(&self, b: Binding) -> Result<bool> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send((b, reply))
            .await
            .map_err(|_| StoreError::Unavailable("the insert queue is closed".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the insert queue stopped".into()))?
    }
}

/// Runs one batch; one result per job, in order.
async fn run_batch(
    pool: &sqlx::AnyPool,
    jobs: &[(Binding, tokio::sync::oneshot::Sender<Result<bool>>)],
) -> Vec<Result<bool>> {
    let now = now_ms();
    let fail_all = |e: sqlx::Error| -> Vec<Result<bool>> {
        let msg = e.to_string();
        jobs.iter()
            .map(|_| Err(StoreError::from(sqlx::Error::Protocol(msg.clone()))))
            .collect()
    };
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => {
            let unavailable = StoreError::from(e).to_string();
            return jobs
                .iter()
                .map(|_| Err(StoreError::Unavailable(unavailable.clone())))
                .collect();
        }
    };
    if jobs.len() == 1 {
        return vec![insert_if_free(&mut conn, &jobs[0].0, now).await];
    }
    if let Err(e) = sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await {
        return fail_all(e);
    }
    let mut results = Vec::with_capacity(jobs.len());
    for (b, _) in jobs {
        results.push(insert_if_free(&mut conn, b, now).await);
    }
    if let Err(e) = sqlx::query("COMMIT").execute(&mut *conn).await {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        return fail_all(e);
    }
    results
}

/// The binding a write produces, without reading it back.
fn built(
    sid: String,
    account_sid: &str,
    draft: &BindingDraft,
    info: NumberInfo,
    date_created: i64,
    now: i64,
) -> Binding {
    Binding {
        binding_sid: sid,
        account_sid: account_sid.to_string(),
        name: draft.name.clone(),
        destination_did: draft.destination_did.clone(),
        origination_did: draft.origination_did.clone(),
        redirect_did: info.phonenumber.clone(),
        dtmf: draft.dtmf.clone(),
        attributes: draft.attributes.clone(),
        date_created,
        max_expires_at: draft.maximum_ttl.deadline(now),
        wait_expires_at: draft.wait_origination_did_ttl.deadline(now),
        redirect_did_info: info,
    }
}

async fn fetch(
    conn: &mut sqlx::AnyConnection,
    account_sid: &str,
    sid: &str,
    now: i64,
) -> Result<Option<Binding>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE b.account_sid = $1 AND {BINDING_LIVE} AND b.binding_sid = $3"
    )))
    .bind(account_sid)
    .bind(now)
    .bind(sid)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(map_row).transpose()
}

/// A live binding with the draft's destination, origination and (if given)
/// redirect DID.
async fn find_same(
    tx: &mut WriteTx,
    account_sid: &str,
    draft: &BindingDraft,
    now: i64,
) -> Result<Option<Binding>> {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM {FROM} WHERE b.account_sid = $1 AND {BINDING_LIVE} AND b.destination_did = $3"
    );
    let mut n = 4;
    if draft.origination_did.is_some() {
        sql.push_str(&format!(" AND b.origination_did = ${n}"));
        n += 1;
    } else {
        sql.push_str(" AND b.origination_did IS NULL");
    }
    if draft.redirect_did.is_some() {
        sql.push_str(&format!(" AND b.redirect_did = ${n}"));
    }
    sql.push_str(" ORDER BY b.date_created, b.binding_sid LIMIT 1");
    let mut q = sqlx::query(AssertSqlSafe(sql.clone()))
        .bind(account_sid)
        .bind(now)
        .bind(&draft.destination_did);
    if let Some(o) = &draft.origination_did {
        q = q.bind(o.clone());
    }
    if let Some(r) = &draft.redirect_did {
        q = q.bind(r.clone());
    }
    let row = q.fetch_optional(tx.conn()).await?;
    row.as_ref().map(map_row).transpose()
}

/// The query for "a live binding on DID `$3` other than `$5` (or `$4`
/// without origination) that blocks a binding for origination `$4`": a
/// binding with no origination blocks everyone, one with the same
/// origination blocks this caller. Written as exact index lookups
/// (`bindings_redirect`), not an OR that would scan the DID's bindings.
fn conflict_sql(origination: Option<&str>) -> String {
    match origination {
        Some(_) => format!(
            "SELECT b.binding_sid FROM bindings b WHERE b.account_sid = $1 AND b.redirect_did = $3 \
             AND b.origination_did IS NULL AND {BINDING_LIVE} AND b.binding_sid <> $5 \
             UNION ALL SELECT b.binding_sid FROM bindings b WHERE b.account_sid = $1 AND b.redirect_did = $3 \
             AND b.origination_did = $4 AND {BINDING_LIVE} AND b.binding_sid <> $5 LIMIT 1"
        ),
        None => format!(
            "SELECT b.binding_sid FROM bindings b WHERE b.account_sid = $1 AND b.redirect_did = $3 \
             AND {BINDING_LIVE} AND b.binding_sid <> $4 LIMIT 1"
        ),
    }
}

/// The condition "DID `did` is free for origination `orig`" (placeholders),
/// at the time in placeholder `now`: no live binding without origination,
/// and, for a caller, none with the same origination; for no caller, no
/// live binding at all. Exact lookups on the `bindings_redirect` index.
fn free_condition(did: &str, orig: &str, now: &str, origination: Option<&str>) -> String {
    let live = super::binding_live_at(now);
    match origination {
        Some(_) => format!(
            "NOT EXISTS (SELECT 1 FROM bindings b WHERE b.redirect_did = {did} AND b.origination_did IS NULL AND {live}) \
             AND NOT EXISTS (SELECT 1 FROM bindings b WHERE b.redirect_did = {did} AND b.origination_did = {orig} AND {live})"
        ),
        None => {
            format!("NOT EXISTS (SELECT 1 FROM bindings b WHERE b.redirect_did = {did} AND {live})")
        }
    }
}

/// The formats of the account's DID `number`, or a conflict on
/// `redirect_did` when the account has no such DID.
async fn query_did_formats(
    conn: &mut sqlx::AnyConnection,
    account_sid: &str,
    number: &str,
) -> Result<NumberInfo> {
    let row = sqlx::query(
        "SELECT country_code, in_country_format, international_format FROM dids WHERE account_sid = $1 AND phonenumber = $2",
    )
    .bind(account_sid)
    .bind(number)
    .fetch_optional(conn)
    .await?;
    let Some(did) = row else {
        return Err(no_did(format!("{number} is not a DID of this account")));
    };
    Ok(NumberInfo {
        country_code: did.try_get(0)?,
        in_country_format: did.try_get(1)?,
        international_format: did.try_get(2)?,
        phonenumber: number.to_string(),
    })
}

/// Checks that `redirect` is the account's and free for `origination`;
/// returns the DID's formats.
async fn check_redirect(
    tx: &mut WriteTx,
    account_sid: &str,
    redirect: &str,
    origination: Option<&str>,
    except_sid: Option<&str>,
    now: i64,
) -> Result<NumberInfo> {
    let info = query_did_formats(tx.conn(), account_sid, redirect).await?;
    let mut q = sqlx::query(AssertSqlSafe(conflict_sql(origination)))
        .bind(account_sid)
        .bind(now)
        .bind(redirect);
    if let Some(o) = origination {
        q = q.bind(o.to_string());
    }
    q = q.bind(except_sid.unwrap_or("").to_string());
    if let Some(row) = q.fetch_optional(tx.conn()).await? {
        let other: String = row.try_get(0)?;
        let message = match origination {
            Some(o) => format!(
                "{redirect} already has a live binding ({other}) that serves {o} or every caller"
            ),
            None => format!(
                "{redirect} already has a live binding ({other}); a binding with no origination_did needs the DID alone"
            ),
        };
        return Err(no_did(message));
    }
    Ok(info)
}

/// Picks a free DID for the draft: the caller's country first, then
/// `fallback_country`; with no `fallback_country`, any free DID (the
/// destination's country first). See `docs/api.md`.
async fn allocate(
    tx: &mut WriteTx,
    account_sid: &str,
    draft: &BindingDraft,
    fallback: Option<&str>,
    now: i64,
) -> Result<NumberInfo> {
    let blocked = free_condition(
        "d.phonenumber",
        "$3",
        "$2",
        draft.origination_did.as_deref(),
    );
    let sql = format!(
        "SELECT d.phonenumber, d.country_code, d.in_country_format, d.international_format FROM dids d \
         WHERE d.account_sid = $1 AND {blocked} ORDER BY d.phonenumber"
    );
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(account_sid).bind(now);
    if let Some(o) = &draft.origination_did {
        q = q.bind(o.clone());
    }
    let rows = q.fetch_all(tx.conn()).await?;
    let mut free: Vec<NumberInfo> = Vec::with_capacity(rows.len());
    for r in &rows {
        free.push(NumberInfo {
            phonenumber: r.try_get(0)?,
            country_code: r.try_get(1)?,
            in_country_format: r.try_get(2)?,
            international_format: r.try_get(3)?,
        });
    }
    let country_of = |n: Option<&str>| {
        n.and_then(|d| PhoneNumber::parse(d).ok())
            .and_then(|p| p.country_alpha3())
    };
    let in_country = |c: &str| free.iter().find(|d| d.country_code == c).cloned();
    if let Some(c) = country_of(draft.origination_did.as_deref())
        && let Some(d) = in_country(c)
    {
        return Ok(d);
    }
    if let Some(f) = fallback {
        return in_country(f).ok_or_else(|| no_did(format!("no free DID of this account in {f}")));
    }
    if let Some(c) = country_of(Some(&draft.destination_did))
        && let Some(d) = in_country(c)
    {
        return Ok(d);
    }
    free.into_iter().next().ok_or_else(|| {
        no_did("cannot find redirect_did: every DID of this account is taken for this caller")
    })
}
