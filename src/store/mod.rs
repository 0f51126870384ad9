//! Persistence over SQLite (the embedded default, WAL mode) and PostgreSQL
//! through sqlx's `Any` driver: one set of runtime queries, migrations per
//! database run at start.
//!
//! Times are stored as milliseconds since the epoch (`BIGINT`), attributes
//! as JSON text. Writes that must see a consistent picture of an account
//! (redirect DID allocation, dialout uniqueness) run in a write transaction
//! that serialises per account: `SELECT ... FOR UPDATE` on the account row
//! in PostgreSQL, `BEGIN IMMEDIATE` behind one in-process writer lock in
//! SQLite.

pub mod accounts;
pub mod bindings;
pub mod calls;
pub mod dialouts;
pub mod dids;
pub mod list;
pub mod outbox;
pub(crate) mod route_cache;

use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, AssertSqlSafe, Executor, Row, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::DatabaseConfig;
use list::{Dialect, Param};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// What can go wrong in the store. The API maps these to HTTP statuses in
/// `api::error`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connection refused, pool timed out):
    /// the API answers 503 and the pool reconnects by itself.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A rule of the data was broken (no free redirect DID, a duplicate
    /// dialout); `field` names the field at fault.
    #[error("conflict on {field}: {message}")]
    Conflict {
        /// The field at fault.
        field: String,
        /// What the conflict is.
        message: String,
    },
    /// No such object for this account.
    #[error("not found")]
    NotFound,
    /// A filter, order or cursor that cannot be run; `field` is the query
    /// argument at fault (`filter`, `order`, `after`, `before`).
    #[error("{field}: {message}")]
    BadQuery {
        /// The query argument.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A stored value that does not decode (for example attributes that are
    /// not JSON).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// Migrations failed at start.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let err = Self::classify(e);
        crate::metrics::db_error(&err);
        err
    }
}

impl StoreError {
    fn classify(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            sqlx::Error::Database(ref db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c == "57P01" || c == "57P03") =>
            {
                // PostgreSQL connection exceptions and "admin shutdown".
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Database(other),
        }
    }
}

impl StoreError {
    /// A short label of the error's class, for the database error counter
    /// (`unavailable`, `database`, ...); `None` for errors that are not the
    /// database's fault (not found, conflicts, bad queries).
    pub fn metric_kind(&self) -> Option<&'static str> {
        match self {
            StoreError::Unavailable(_) => Some("unavailable"),
            StoreError::Database(_) => Some("database"),
            StoreError::Corrupt(_) => Some("corrupt"),
            StoreError::Migrate(_) => Some("migrate"),
            _ => None,
        }
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The store: a pool over SQLite or PostgreSQL.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite has one writer at a time; waiting here instead of in
    /// SQLite's busy handler keeps writes fast and fair.
    sqlite_writer: Arc<Mutex<()>>,
    /// Bindings by SID, on SQLite only (see [`bindings::BindingCache`]).
    pub(crate) binding_cache: Option<bindings::BindingCache>,
    /// Candidate bindings of inbound calls, on SQLite only (see
    /// [`route_cache::RouteCache`]).
    pub(crate) route_cache: Option<route_cache::RouteCache>,
    /// Formats of DIDs by (account, number), for 60 s: they only change
    /// when a DID is re-added, and whether the account still owns the DID is
    /// checked inside every write that uses it.
    pub(crate) did_formats: moka::sync::Cache<(String, String), crate::model::phone::NumberInfo>,
    /// Group commit of call detail records.
    pub(crate) call_recorder: calls::CallRecorder,
    /// Group commit of binding inserts, on SQLite only.
    pub(crate) insert_batcher: Option<bindings::InsertBatcher>,
    /// Woken when a call record (and maybe its callback) was written.
    pub(crate) outbox_notify: Arc<tokio::sync::Notify>,
    /// Woken when a dialout was created or rescheduled (the dialout
    /// scheduler waits on it, see [`crate::scheduler::run_dialouts`]).
    pub(crate) dialout_notify: Arc<tokio::sync::Notify>,
}

/// A write serialised per account (see the module doc): in PostgreSQL a
/// transaction holding the account row's lock; in SQLite a connection in
/// autocommit mode behind the process's single writer lock (every write of
/// bindings and dialouts goes through that lock, so its statements see no
/// interleaved writes, and each statement is atomic on its own; this saves
/// the BEGIN and COMMIT round trips to SQLite's worker thread).
pub struct WriteTx {
    conn: WriteConn,
    writer: Option<OwnedMutexGuard<()>>,
}

enum WriteConn {
    Tx(Transaction<'static, Any>),
    Autocommit(sqlx::pool::PoolConnection<Any>),
}

impl Store {
    /// Connects to `config.url`, creating a SQLite file (and its folder) if
    /// needed, and runs the migrations.
    ///
    /// Errors: [`StoreError::Unavailable`] when the database cannot be
    /// reached, [`StoreError::Migrate`] when the schema cannot be brought up
    /// to date.
    pub async fn connect(config: &DatabaseConfig) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let dialect = if config.url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        };
        let mut url = config.url.clone();
        if dialect == Dialect::Sqlite {
            let path = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let path = path.split('?').next().unwrap_or("");
            if !path.is_empty() && path != ":memory:" {
                if let Some(parent) = std::path::Path::new(path).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                if !url.contains("mode=") {
                    url.push_str(if url.contains('?') {
                        "&mode=rwc"
                    } else {
                        "?mode=rwc"
                    });
                }
            }
        }
        let options: AnyConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| StoreError::Unavailable(format!("bad database.url: {e}")))?;
        let is_sqlite = dialect == Dialect::Sqlite;
        let pool = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_millis(config.acquire_timeout_ms))
            // A ping before every checkout doubles the round trips of a
            // read; a dead connection fails its query instead (503 once)
            // and is replaced.
            .test_before_acquire(false)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if is_sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        let sqlite_writer = Arc::new(Mutex::new(()));
        let binding_cache = (dialect == Dialect::Sqlite).then(bindings::BindingCache::new);
        let route_cache = (dialect == Dialect::Sqlite).then(route_cache::RouteCache::new);
        let insert_batcher = (dialect == Dialect::Sqlite).then(|| {
            bindings::InsertBatcher::start(
                pool.clone(),
                sqlite_writer.clone(),
                binding_cache.clone(),
                route_cache.clone(),
            )
        });
        let call_recorder = calls::CallRecorder::start(
            pool.clone(),
            (dialect == Dialect::Sqlite).then(|| sqlite_writer.clone()),
        );
        let store = Store {
            outbox_notify: Arc::new(tokio::sync::Notify::new()),
            dialout_notify: Arc::new(tokio::sync::Notify::new()),
            call_recorder,
            pool,
            dialect,
            sqlite_writer,
            binding_cache,
            route_cache,
            insert_batcher,
            did_formats: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        };
        match dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS.run(&store.pool).await?,
            Dialect::Postgres => POSTGRES_MIGRATIONS.run(&store.pool).await?,
        }
        Ok(store)
    }

    /// Which database this store is on.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction that holds the account's write lock until
    /// commit or drop.
    pub async fn begin_write(&self, account_sid: &str) -> Result<WriteTx> {
        match self.dialect {
            Dialect::Sqlite => {
                let guard = self.sqlite_writer.clone().lock_owned().await;
                let conn = self.pool.acquire().await?;
                Ok(WriteTx {
                    conn: WriteConn::Autocommit(conn),
                    writer: Some(guard),
                })
            }
            Dialect::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT account_sid FROM accounts WHERE account_sid = $1 FOR UPDATE")
                    .bind(account_sid)
                    .execute(&mut *tx)
                    .await?;
                Ok(WriteTx {
                    conn: WriteConn::Tx(tx),
                    writer: None,
                })
            }
        }
    }

    /// A plain write (one statement) that needs no account lock; in SQLite
    /// it still waits for the writer lock.
    pub(crate) async fn writer(&self) -> Option<OwnedMutexGuard<()>> {
        match self.dialect {
            Dialect::Sqlite => Some(self.sqlite_writer.clone().lock_owned().await),
            Dialect::Postgres => None,
        }
    }

    /// Runs a list query built by [`list`] and maps its rows.
    pub(crate) async fn run_list<T>(
        &self,
        spec: &list::ListSpec,
        account_sid: &str,
        now_ms: i64,
        q: &list::ListQuery,
        map: impl Fn(&AnyRow) -> Result<T>,
    ) -> Result<list::Page<T>> {
        let count = list::count_sql(spec, q, self.dialect)?;
        let total: i64 = bind_all(
            sqlx::query(AssertSqlSafe(count.sql.clone())),
            account_sid,
            now_ms,
            &count.params,
        )
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        let cursor_value = match &q.cursor {
            None => None,
            Some(list::Cursor::After(sid) | list::Cursor::Before(sid)) => {
                let (built, kind) = list::cursor_sql(spec, q, self.dialect, sid)?;
                let row = bind_all(
                    sqlx::query(AssertSqlSafe(built.sql.clone())),
                    account_sid,
                    now_ms,
                    &built.params,
                )
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| StoreError::BadQuery {
                    field: if matches!(q.cursor, Some(list::Cursor::After(_))) {
                        "after"
                    } else {
                        "before"
                    }
                    .into(),
                    message: format!("no item with SID `{sid}` to page from"),
                })?;
                Some(match kind {
                    list::Kind::Int | list::Kind::Time => Param::Int(row.try_get(0)?),
                    list::Kind::Text | list::Kind::Phone => Param::Text(row.try_get(0)?),
                })
            }
        };
        let built = list::page_sql(spec, q, self.dialect, cursor_value)?;
        let rows = bind_all(
            sqlx::query(AssertSqlSafe(built.sql.clone())),
            account_sid,
            now_ms,
            &built.params,
        )
        .fetch_all(&self.pool)
        .await?;
        let has_more = rows.len() as i64 > q.limit;
        let mut items = rows
            .iter()
            .take(q.limit as usize)
            .map(map)
            .collect::<Result<Vec<T>>>()?;
        if matches!(q.cursor, Some(list::Cursor::Before(_))) {
            items.reverse();
        }
        Ok(list::Page {
            items,
            total,
            has_more,
        })
    }
}

impl WriteTx {
    /// The connection to run statements on.
    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.conn {
            WriteConn::Tx(tx) => tx,
            WriteConn::Autocommit(c) => c,
        }
    }

    /// Commits; returns the SQLite writer lock, still held, so that the
    /// caller can update in-memory state in the same order as the writes.
    pub async fn commit(self) -> Result<Option<OwnedMutexGuard<()>>> {
        if let WriteConn::Tx(tx) = self.conn {
            tx.commit().await?;
        }
        Ok(self.writer)
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>;

/// Binds `$1` = account, `$2` = now, then `params`.
fn bind_all<'q>(
    mut q: AnyQuery<'q>,
    account_sid: &str,
    now_ms: i64,
    params: &[Param],
) -> AnyQuery<'q> {
    q = q.bind(account_sid.to_string()).bind(now_ms);
    for p in params {
        q = match p {
            Param::Text(s) => q.bind(s.clone()),
            Param::Int(i) => q.bind(*i),
        };
    }
    q
}

/// Reads a JSON object column.
pub(crate) fn json_map(
    row: &AnyRow,
    col: &str,
) -> Result<serde_json::Map<String, serde_json::Value>> {
    let text: String = row.try_get(col)?;
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(StoreError::Corrupt(format!("{col} is not a JSON object"))),
    }
}

/// The SQL condition "binding `b` is live at `$2`".
pub(crate) const BINDING_LIVE: &str = "(b.max_expires_at IS NULL OR b.max_expires_at > $2) \
     AND (b.origination_did IS NOT NULL OR b.wait_expires_at IS NULL OR b.wait_expires_at > $2)";

/// The SQL condition "binding `b` is live at the time in placeholder `now`".
pub(crate) fn binding_live_at(now: &str) -> String {
    BINDING_LIVE.replace("$2", now)
}
