//! The `mediator` binary: help, the shipped config with environment
//! overrides, account and DID subcommands, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mediator"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn run(args: &[&str], db_url: &str) -> (bool, String, String) {
    let out = bin()
        .args(args)
        .env("MEDIATOR_DATABASE_URL", db_url)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn help_lists_every_command() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "serve",
        "account",
        "did",
        "check-config",
        "openapi",
        "--config",
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}:\n{text}");
    }
}

#[test]
fn account_and_did_subcommands_manage_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let (ok, out, err) = run(
        &[
            "account",
            "add",
            "--login",
            "carol",
            "--name",
            "Carol",
            "--password",
            "s3cret",
            "--permission",
            "hide_origination_did",
        ],
        &db,
    );
    assert!(ok, "{err}");
    assert!(out.contains("carol"));
    let (ok, _, err) = run(
        &[
            "account",
            "add",
            "--login",
            "dave",
            "--name",
            "D",
            "--password",
            "x",
            "--permission",
            "root",
        ],
        &db,
    );
    assert!(!ok);
    assert!(err.contains("unknown permission"), "{err}");
    let (ok, out, err) = run(
        &[
            "did",
            "add",
            "--account",
            "carol",
            "+442079460958",
            "15162065337",
        ],
        &db,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("442079460958\tGBR") && out.contains("15162065337\tUSA"),
        "{out}"
    );
    let (ok, _, err) = run(&["did", "add", "--account", "carol", "12"], &db);
    assert!(!ok);
    assert!(err.contains("not a valid"), "{err}");
    let (ok, _, err) = run(&["did", "add", "--account", "nobody", "15162065338"], &db);
    assert!(!ok);
    assert!(err.contains("no account with login nobody"), "{err}");
    let (ok, out, _) = run(&["did", "list", "--account", "carol"], &db);
    assert!(ok);
    assert_eq!(out.lines().count(), 2);
    let (ok, _, _) = run(&["did", "delete", "15162065337"], &db);
    assert!(ok);
    let (_, out, _) = run(&["account", "list"], &db);
    assert!(out.contains("carol\tCarol\thide_origination_did"), "{out}");
    // Only the DID that was not deleted is left.
    let (_, out, _) = run(&["did", "list"], &db);
    assert_eq!(out.lines().count(), 1);
    let (ok, _, _) = run(&["account", "delete", "--login", "carol"], &db);
    assert!(ok);
    let (ok, _, err) = run(&["account", "delete", "--login", "carol"], &db);
    assert!(!ok && err.contains("no account"), "{err}");
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn shipped_config_runs_with_environment_overrides_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("serve.db").display());
    let mut child = bin()
        .args(["serve"])
        .env("MEDIATOR_DATABASE_URL", &db)
        .env("MEDIATOR_API_LISTEN", "127.0.0.1:0")
        .env(
            "MEDIATOR_SIP_LISTEN",
            r#"["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]"#,
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut server = Server(child);
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let line = lines
            .next()
            .expect("server log ended before it started")
            .unwrap();
        if let Some(rest) = line.split("api=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no start line");
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // reqwest is built without a default TLS provider (the server
        // installs ring's; this process has no server).
        mediator::callbacks::install_crypto_provider();
        let res = reqwest::Client::new()
            .get(format!("http://{addr}/mediator/v1/dids"))
            .basic_auth("demo", Some("demo-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let v: serde_json::Value = res.json().await.unwrap();
        assert_eq!(v["body"]["total"], 4, "the shipped config's demo DIDs: {v}");
    });
    let pid = server.0.id();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(code) = server.0.try_wait().unwrap() {
            assert!(code.success(), "exit after SIGTERM: {code}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn account_callback_sets_shows_and_clears_url_and_secret() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let add = [
        "account",
        "add",
        "--login",
        "erin",
        "--name",
        "Erin",
        "--password",
        "pw",
    ];
    assert!(run(&add, &db).0);
    // Nothing set yet.
    let (ok, out, err) = run(&["account", "callback", "--login", "erin"], &db);
    assert!(ok, "{err}");
    assert_eq!(out, "\t\n");
    // A URL without a secret gets a random one (64 hex digits).
    let set = [
        "account",
        "callback",
        "--login",
        "erin",
        "--url",
        "https://app.example/cdr",
    ];
    let (ok, out, err) = run(&set, &db);
    assert!(ok, "{err}");
    let (url, secret) = out.trim_end().split_once('\t').unwrap();
    assert_eq!(url, "https://app.example/cdr");
    assert_eq!(secret.len(), 64);
    assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
    // Changing the URL keeps the secret; --secret sets it.
    let (_, out, _) = run(&set, &db);
    assert_eq!(out.trim_end(), format!("https://app.example/cdr\t{secret}"));
    let (_, out, _) = run(
        &["account", "callback", "--login", "erin", "--secret", "k3y"],
        &db,
    );
    assert_eq!(out.trim_end(), "https://app.example/cdr\tk3y");
    // --new-secret replaces it; --clear removes the URL.
    let (_, out, _) = run(
        &["account", "callback", "--login", "erin", "--new-secret"],
        &db,
    );
    assert!(!out.contains("k3y") && out.starts_with("https://app.example/cdr\t"));
    let (_, out, _) = run(&["account", "callback", "--login", "erin", "--clear"], &db);
    assert!(out.starts_with('\t'), "{out}");
    // Refusals: bad URL, unknown login.
    let (ok, _, err) = run(
        &["account", "callback", "--login", "erin", "--url", "ftp://x"],
        &db,
    );
    assert!(!ok && err.contains("--url"), "{err}");
    let (ok, _, err) = run(&["account", "callback", "--login", "nobody"], &db);
    assert!(!ok && err.contains("no account"), "{err}");
}
