//! The database at start and at run time: an unreachable database stops
//! start-up with a clear message and a non-zero exit; a database lost while
//! running gives 503 and the server recovers by itself when it is back.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, TestDb, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

fn run_binary(config: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_mediator"))
        .args(["serve", "--config"])
        .arg(&path)
        .env_remove("MEDIATOR_DATABASE_URL")
        .output()
        .unwrap()
}

#[test]
fn unreachable_database_at_start_is_a_clear_error() {
    let started = Instant::now();
    let out = run_binary(
        "[api]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"postgres://postgres@127.0.0.1:1/nothing\"\nacquire_timeout_ms = 1000\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must exit non-zero");
    assert_eq!(
        out.status.code(),
        Some(1),
        "an error exit, not a panic or a signal: {stderr}"
    );
    assert!(
        stderr.contains("cannot open the database at postgres://postgres@127.0.0.1:1/nothing"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));

    let out = run_binary(
        "[api]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite:///proc/no/such/dir/m.db\"\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot open the database"), "{stderr}");
}

#[test]
fn invalid_config_names_the_key() {
    let out = run_binary("[sip]\ntrusted = [\"10.0.0.0/33\"]\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("sip.trusted[0]"), "{stderr}");
    let out = run_binary("[database]\nurl = \"mysql://x\"\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("database.url"));
}

/// A TCP forwarder to PostgreSQL that can cut every connection and refuse
/// new ones, then come back: the database "lost" and "back".
struct Link {
    addr: std::net::SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Link {
    async fn start(target: &'static str) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Link { addr, up, conns }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_lost_while_running_gives_503_then_recovers() {
    let link = Link::start("127.0.0.1:5432").await;
    // The test database, reached through the link.
    let db = TestDb::new(Backend::Postgres).await;
    let via_link = db.url.replace("127.0.0.1:5432", &link.addr.to_string());
    assert_ne!(
        via_link, db.url,
        "the test database URL must go through 127.0.0.1:5432"
    );
    let t = TestServer::start_with(Backend::Sqlite, common::default_accounts(), |c| {
        c.database.url = via_link.clone();
        c.database.acquire_timeout_ms = 1000;
    })
    .await;
    let bnd = t
        .binding("alice", json!({"destination_did": "15162065300"}))
        .await;
    let path = format!("/bindings/{}", bnd["binding_sid"].as_str().unwrap());

    link.cut();
    let (s, v) = t.get("alice", &path).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["status"], 503);
    assert_eq!(v["body"]["errors"][0]["field"], "database");
    let (s, _) = t
        .post(
            "alice",
            "/bindings",
            json!({"destination_did": "15162065301"}),
        )
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);

    link.restore();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, v) = t.get("alice", &path).await;
        if s == StatusCode::OK {
            assert_eq!(v["body"]["binding_sid"], bnd["binding_sid"]);
            break;
        }
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Writes work again too, and nothing was half-written while it was down.
    let (s, _) = t
        .post(
            "alice",
            "/bindings",
            json!({"destination_did": "15162065301", "origination_did": "15162065302"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, list) = t.get("alice", "/bindings").await;
    assert_eq!(list["body"]["total"], 2);
    t.stop().await;
    db.drop_db().await;
}
