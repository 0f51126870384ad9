//! Test harness: a real server (the library's `server::start`, listening on
//! a loopback port) over a real store, SQLite in a temporary file or a
//! fresh database on the PostgreSQL server at 127.0.0.1:5432, and an HTTP
//! client speaking to it over a socket.
//!
//! PostgreSQL must be reachable: a test on it fails loudly when it is not
//! (`.ci/run` starts it). `MEDIATOR_TEST_PG` overrides the admin URL
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

#![allow(dead_code)]

use std::path::PathBuf;

use mediator::config::{AccountSeed, Config};
use mediator::server::{self, Running};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::Connection;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one test per backend from an `async fn NAME(Backend)`.
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        )*
    };
}

/// The admin URL of the test PostgreSQL server.
pub fn pg_admin_url() -> String {
    std::env::var("MEDIATOR_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty database and how to drop it.
pub struct TestDb {
    pub url: String,
    backend: Backend,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path: PathBuf = dir.path().join("mediator.db");
                TestDb {
                    url: format!("sqlite://{}", path.display()),
                    backend,
                    name: String::new(),
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = pg_admin_url();
                let name = format!("mediator_t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for this test and is not reachable: {e}"));
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or(admin.clone());
                TestDb {
                    url: format!("{base}/{name}"),
                    backend,
                    name,
                    _dir: None,
                }
            }
        }
    }

    pub async fn drop_db(&self) {
        if self.backend == Backend::Postgres
            && let Ok(mut conn) = sqlx::PgConnection::connect(&pg_admin_url()).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

/// Two accounts: `alice` (four US DIDs, a UK and a German one, no
/// permissions) and `bob` (one US DID, permission hide_origination_did).
pub fn default_accounts() -> Vec<AccountSeed> {
    vec![
        AccountSeed {
            name: "Alice".into(),
            login: "alice".into(),
            password: "alice-pw".into(),
            dids: vec![
                "15162065337".into(),
                "15162065338".into(),
                "15162065339".into(),
                "+15162065340".into(),
                "442079460958".into(),
                "4930123456".into(),
            ],
            permissions: vec![],
            callback_url: None,
            callback_secret: None,
        },
        AccountSeed {
            name: "Bob".into(),
            login: "bob".into(),
            password: "bob-pw".into(),
            dids: vec!["12025550143".into()],
            permissions: vec!["hide_origination_did".into()],
            callback_url: None,
            callback_secret: None,
        },
    ]
}

/// A config for tests on `db_url`, API on a free loopback port.
pub fn test_config(db_url: &str, accounts: Vec<AccountSeed>) -> Config {
    let mut c =
        Config::from_toml("", "test", Vec::<(String, String)>::new()).expect("default config");
    c.api.listen = "127.0.0.1:0".into();
    // SIP on an ephemeral loopback port so that tests can run side by side.
    c.sip.listen = vec!["udp:127.0.0.1:0".into()];
    c.database.url = db_url.into();
    c.accounts = accounts;
    // The API tests look at dialouts while they are scheduled; the tests
    // of the scheduler (tests/dialout_schedule.rs) turn it on.
    c.dialouts.enabled = false;
    c
}

/// A running server with its database and a client.
pub struct TestServer {
    pub db: TestDb,
    pub running: Option<Running>,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(backend, default_accounts(), |_| {}).await
    }

    pub async fn start_with(
        backend: Backend,
        accounts: Vec<AccountSeed>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestServer {
        let db = TestDb::new(backend).await;
        let mut config = test_config(&db.url, accounts);
        tweak(&mut config);
        let running = server::start(&config).await.expect("server starts");
        let base = format!("http://{}/mediator/v1", running.api_addr);
        TestServer {
            db,
            running: Some(running),
            base,
            http: {
                mediator::media::audio::install_tls_provider();
                reqwest::Client::new()
            },
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        self.db.drop_db().await;
    }

    pub fn store(&self) -> &mediator::store::Store {
        &self.running.as_ref().expect("running").store
    }

    /// Sends a request as `login` (password `<login>-pw`); `body` as JSON.
    pub async fn call(
        &self,
        login: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        };
        let mut req = self
            .http
            .request(method, url)
            .basic_auth(login, Some(format!("{login}-pw")));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let text = res.text().await.expect("body read");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, login: &str, path: &str) -> (StatusCode, Value) {
        self.call(login, Method::GET, path, None).await
    }

    pub async fn post(&self, login: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(login, Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, login: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(login, Method::PATCH, path, Some(body)).await
    }

    pub async fn put(&self, login: &str, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(login, Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, login: &str, path: &str) -> (StatusCode, Value) {
        self.call(login, Method::DELETE, path, None).await
    }

    /// Creates a binding as `login` and returns its body; panics unless 200.
    pub async fn binding(&self, login: &str, body: Value) -> Value {
        let (s, v) = self.post(login, "/bindings", body).await;
        assert_eq!(s, StatusCode::OK, "create binding: {v}");
        v["body"].clone()
    }
}

/// The `field` of the first error in an error envelope.
pub fn error_field(v: &Value) -> String {
    v["body"]["errors"][0]["field"]
        .as_str()
        .unwrap_or("")
        .to_string()
}
