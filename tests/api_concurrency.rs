//! Redirect DID allocation and dialout uniqueness under concurrent
//! requests, on both stores.

mod common;

use std::collections::HashSet;

use common::{Backend, TestServer};
use mediator::config::AccountSeed;
use reqwest::StatusCode;
use serde_json::json;

fn ten_did_account() -> Vec<AccountSeed> {
    vec![AccountSeed {
        name: "Busy".into(),
        login: "busy".into(),
        password: "busy-pw".into(),
        dids: (0..10).map(|i| format!("1516206{:04}", 5500 + i)).collect(),
        permissions: vec![],
        callback_url: None,
        callback_secret: None,
    }]
}

async fn fifty_racing_creates_on_ten_dids(b: Backend) {
    let t = TestServer::start_with(b, ten_did_account(), |_| {}).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let http = t.http.clone();
        let url = format!("{}/bindings", t.base);
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .basic_auth("busy", Some("busy-pw"))
                .json(&json!({"destination_did": format!("1212736{:04}", 1000 + i)}))
                .send()
                .await
                .expect("sent");
            let status = res.status();
            let v: serde_json::Value = res.json().await.expect("json");
            (status, v)
        }));
    }
    let mut dids = HashSet::new();
    let (mut ok, mut conflict) = (0, 0);
    for task in tasks {
        let (status, v) = task.await.unwrap();
        match status {
            StatusCode::OK => {
                ok += 1;
                assert!(
                    dids.insert(v["body"]["redirect_did"].as_str().unwrap().to_string()),
                    "DID given twice: {v}"
                );
            }
            StatusCode::CONFLICT => {
                conflict += 1;
                assert_eq!(v["status"], 409);
                assert_eq!(v["body"]["errors"][0]["field"], "redirect_did");
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((ok, conflict), (10, 40));
    assert_eq!(dids.len(), 10);
    let (_, list) = t.get("busy", "/bindings?limit=100").await;
    assert_eq!(list["body"]["total"], 10);
    t.stop().await;
}

async fn racing_dialouts_stay_unique(b: Backend) {
    let t = TestServer::start_with(b, ten_did_account(), |_| {}).await;
    // Twenty creates for the same stage-one party: exactly one may be scheduled.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let http = t.http.clone();
        let url = format!("{}/dialouts", t.base);
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .basic_auth("busy", Some("busy-pw"))
                .json(&json!({"stage_one_destination_did": "12127361999", "stage_two_destination_did": format!("1212736{:04}", 2000 + i), "delay": 600}))
                .send()
                .await
                .expect("sent")
                .status()
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
    let (_, list) = t.get("busy", "/dialouts").await;
    assert_eq!(list["body"]["total"], 1);
    t.stop().await;
}

async fn post_all(
    t: &TestServer,
    bodies: Vec<serde_json::Value>,
) -> Vec<(StatusCode, serde_json::Value)> {
    let mut tasks = Vec::new();
    for body in bodies {
        let http = t.http.clone();
        let url = format!("{}/bindings", t.base);
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .basic_auth("busy", Some("busy-pw"))
                .json(&body)
                .send()
                .await
                .expect("sent");
            let status = res.status();
            (status, res.json::<serde_json::Value>().await.expect("json"))
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

async fn racing_creates_on_a_given_did_keep_it_unambiguous(b: Backend) {
    let t = TestServer::start_with(b, ten_did_account(), |_| {}).await;
    // Forty distinct callers on one DID: all fit (grouped commits on SQLite).
    let distinct: Vec<_> = (0..40)
        .map(|i| json!({"destination_did": "12127361000", "redirect_did": "15162065500", "origination_did": format!("1212736{:04}", 3000 + i)}))
        .collect();
    let results = post_all(&t, distinct).await;
    assert!(
        results.iter().all(|(s, _)| *s == StatusCode::OK),
        "{results:?}"
    );
    // Thirty racing creates for one caller on one DID: exactly one wins.
    let same: Vec<_> = (0..30)
        .map(|_| json!({"destination_did": "12127361000", "redirect_did": "15162065501", "origination_did": "12127364000"}))
        .collect();
    let results = post_all(&t, same).await;
    let ok = results.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{results:?}");
    for (s, v) in &results {
        if *s != StatusCode::OK {
            assert_eq!(*s, StatusCode::CONFLICT, "{v}");
            assert_eq!(v["body"]["errors"][0]["field"], "redirect_did");
        }
    }
    // Open bindings (no caller) racing with callers on one DID: an open
    // binding has the DID alone.
    let mixed: Vec<_> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                json!({"destination_did": "12127361000", "redirect_did": "15162065502"})
            } else {
                json!({"destination_did": "12127361000", "redirect_did": "15162065502", "origination_did": format!("1212736{:04}", 5000 + i)})
            }
        })
        .collect();
    post_all(&t, mixed).await;
    let (_, list) = t
        .get(
            "busy",
            "/bindings?limit=100&filter=redirect_did+eq+15162065502",
        )
        .await;
    let items = list["body"]["items"].as_array().unwrap();
    let open = items
        .iter()
        .filter(|b| b["origination_did"].is_null())
        .count();
    assert!(!items.is_empty());
    assert!(
        open == 0 || items.len() == 1,
        "an open binding must have its DID alone: {items:?}"
    );
    let (_, list) = t.get("busy", "/bindings?limit=1").await;
    assert_eq!(
        list["body"]["total"].as_i64().unwrap(),
        41 + items.len() as i64
    );
    t.stop().await;
}

on_both_stores!(
    fifty_racing_creates_on_ten_dids,
    racing_dialouts_stay_unique,
    racing_creates_on_a_given_did_keep_it_unambiguous
);
