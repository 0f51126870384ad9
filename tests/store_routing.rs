//! The binding lookup for inbound calls and call detail records, on both
//! stores: the documented order, the atomic first-caller claim, expiry.

mod common;

use std::time::Duration;

use common::{Backend, TestServer};
use mediator::model::now_ms;
use mediator::store::calls::CallDetail;
use serde_json::json;

async fn lookup_follows_the_documented_order(b: Backend) {
    let t = TestServer::start(b).await;
    let store = t.store().clone();
    // DID ...37: one binding per known caller.
    let own = t.binding("alice", json!({"destination_did": "15162065301", "redirect_did": "15162065337", "origination_did": "15162065401"})).await;
    let hit = store
        .route_inbound("15162065337", Some("15162065401"), now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.binding_sid, own["binding_sid"].as_str().unwrap());
    assert!(
        store
            .route_inbound("15162065337", Some("15162065402"), now_ms())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .route_inbound("15162065337", None, now_ms())
            .await
            .unwrap()
            .is_none()
    );
    // DID ...38: an open binding (waiting disabled) serves anyone and stays open.
    let open = t.binding("alice", json!({"destination_did": "15162065302", "redirect_did": "15162065338", "wait_origination_did_ttl": -1})).await;
    for caller in [Some("15162065401"), Some("15162065499"), None] {
        let hit = store
            .route_inbound("15162065338", caller, now_ms())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hit.binding_sid, open["binding_sid"].as_str().unwrap());
        assert_eq!(hit.origination_did, None);
    }
    // DID ...39: a waiting binding takes its first caller, which the API then shows.
    let waiting = t
        .binding(
            "alice",
            json!({"destination_did": "15162065303", "redirect_did": "15162065339"}),
        )
        .await;
    assert!(
        store
            .route_inbound("15162065339", None, now_ms())
            .await
            .unwrap()
            .is_none(),
        "anonymous cannot take it"
    );
    let first = store
        .route_inbound("15162065339", Some("15162065411"), now_ms())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.origination_did.as_deref(), Some("15162065411"));
    let (_, v) = t
        .get(
            "alice",
            &format!("/bindings/{}", waiting["binding_sid"].as_str().unwrap()),
        )
        .await;
    assert_eq!(v["body"]["origination_did"], "15162065411");
    assert!(
        store
            .route_inbound("15162065339", Some("15162065412"), now_ms())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .route_inbound("15162065339", Some("15162065411"), now_ms())
            .await
            .unwrap()
            .is_some()
    );
    // Unknown DID, expired binding.
    assert!(
        store
            .route_inbound("15162065300", Some("15162065411"), now_ms())
            .await
            .unwrap()
            .is_none()
    );
    t.binding("alice", json!({"destination_did": "15162065304", "redirect_did": "15162065340", "maximum_ttl": 1, "wait_origination_did_ttl": -1})).await;
    assert!(
        store
            .route_inbound("15162065340", Some("15162065411"), now_ms())
            .await
            .unwrap()
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(
        store
            .route_inbound("15162065340", Some("15162065411"), now_ms())
            .await
            .unwrap()
            .is_none()
    );
    t.stop().await;
}

async fn racing_first_callers_cannot_both_win(b: Backend) {
    let t = TestServer::start(b).await;
    t.binding(
        "alice",
        json!({"destination_did": "15162065303", "redirect_did": "15162065339"}),
    )
    .await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = t.store().clone();
        tasks.push(tokio::spawn(async move {
            let caller = format!("1516206{:04}", 5600 + i);
            store
                .route_inbound("15162065339", Some(&caller), now_ms())
                .await
                .unwrap()
                .map(|b| (caller, b))
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        if let Some((caller, b)) = task.await.unwrap() {
            assert_eq!(b.origination_did.as_deref(), Some(caller.as_str()));
            winners.push(caller);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    t.stop().await;
}

async fn call_records_are_kept(b: Backend) {
    let t = TestServer::start(b).await;
    let bnd = t.binding("alice", json!({"destination_did": "15162065301", "redirect_did": "15162065337", "origination_did": "15162065401"})).await;
    let sid = bnd["binding_sid"].as_str().unwrap().to_string();
    let cdr = CallDetail {
        binding_sid: Some(sid.clone()),
        kind: "binding".into(),
        direction: "inbound".into(),
        number_src: "15162065401".into(),
        number_dst: "15162065301".into(),
        number_redirect: "15162065337".into(),
        date_start: 1_000,
        date_answer: Some(3_000),
        date_stop: 63_000,
        duration: 60,
        sip_status: 200,
        hangup_side: Some("caller".into()),
    };
    t.store().insert_call(&cdr).await.unwrap();
    assert_eq!(t.store().calls_of_binding(&sid).await.unwrap(), vec![cdr]);
    t.stop().await;
}

/// The destination the next call from `caller` to `did` would reach.
async fn reaches(t: &TestServer, did: &str, caller: Option<&str>) -> Option<String> {
    t.store()
        .route_inbound(did, caller, now_ms())
        .await
        .unwrap()
        .map(|b| b.destination_did)
}

/// Lookups are cached on SQLite (src/store/route_cache.rs): every change
/// made through the API shows in the very next lookup, on both stores.
async fn lookups_follow_every_change_of_a_binding(b: Backend) {
    let t = TestServer::start(b).await;
    let caller = Some("15162065401");
    let open = t.binding("alice", json!({"destination_did": "15162065302", "redirect_did": "15162065338", "wait_origination_did_ttl": -1})).await;
    let path = format!("/bindings/{}", open["binding_sid"].as_str().unwrap());
    assert_eq!(
        reaches(&t, "15162065338", caller).await.as_deref(),
        Some("15162065302")
    );
    assert_eq!(
        reaches(&t, "15162065338", None).await.as_deref(),
        Some("15162065302")
    );
    // A new destination.
    let (s, v) = t
        .patch("alice", &path, json!({"destination_did": "15162065305"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        reaches(&t, "15162065338", caller).await.as_deref(),
        Some("15162065305")
    );
    assert_eq!(
        reaches(&t, "15162065338", None).await.as_deref(),
        Some("15162065305")
    );
    // Moved to another DID: the old one routes nowhere, the new one does.
    let (s, v) = t
        .patch("alice", &path, json!({"redirect_did": "15162065337"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(reaches(&t, "15162065338", caller).await, None);
    assert_eq!(
        reaches(&t, "15162065337", caller).await.as_deref(),
        Some("15162065305")
    );
    // Now only for one caller.
    let (s, v) = t
        .patch("alice", &path, json!({"origination_did": "15162065401"}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        reaches(&t, "15162065337", caller).await.as_deref(),
        Some("15162065305")
    );
    assert_eq!(reaches(&t, "15162065337", Some("15162065402")).await, None);
    assert_eq!(reaches(&t, "15162065337", None).await, None);
    // Deleted: nobody; re-created: found again.
    let (s, v) = t.delete("alice", &path).await;
    assert_eq!(s, 204, "{v}");
    assert_eq!(reaches(&t, "15162065337", caller).await, None);
    t.binding("alice", json!({"destination_did": "15162065306", "redirect_did": "15162065337", "origination_did": "15162065401"})).await;
    assert_eq!(
        reaches(&t, "15162065337", caller).await.as_deref(),
        Some("15162065306")
    );
    // A binding for another caller on the same DID leaves this one alone.
    t.binding("alice", json!({"destination_did": "15162065307", "redirect_did": "15162065337", "origination_did": "15162065402"})).await;
    assert_eq!(
        reaches(&t, "15162065337", caller).await.as_deref(),
        Some("15162065306")
    );
    assert_eq!(
        reaches(&t, "15162065337", Some("15162065402"))
            .await
            .as_deref(),
        Some("15162065307")
    );
    t.stop().await;
}

fn record(binding_sid: &str, i: usize) -> CallDetail {
    // PostgreSQL refuses a NUL character in text; SQLite stores it.
    let number_src = if i == 150 {
        "1516\u{0}2065401".to_string()
    } else {
        format!("1516206{i:04}")
    };
    CallDetail {
        binding_sid: Some(binding_sid.to_string()),
        kind: "binding".into(),
        direction: "inbound".into(),
        number_src,
        number_dst: "15162065301".into(),
        number_redirect: "15162065337".into(),
        date_start: 1_000 + i as i64,
        date_answer: None,
        date_stop: 2_000 + i as i64,
        duration: 0,
        sip_status: 486,
        hangup_side: Some("callee".into()),
    }
}

/// Records written at once share statements (group commit); each is
/// stored once, and one record the database refuses does not lose the
/// others in its batch.
async fn concurrent_call_records_are_each_stored_once(b: Backend) {
    let t = TestServer::start(b).await;
    let bnd = t.binding("alice", json!({"destination_did": "15162065301", "redirect_did": "15162065337", "origination_did": "15162065401"})).await;
    let sid = bnd["binding_sid"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = t.store().clone();
        let cdr = record(&sid, i);
        tasks.push(tokio::spawn(async move {
            store.insert_call(&cdr).await.map(|_| ())
        }));
    }
    let mut failed = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        if task.await.unwrap().is_err() {
            failed.push(i);
        }
    }
    let refused: Vec<usize> = match b {
        Backend::Sqlite => vec![],
        Backend::Postgres => vec![150],
    };
    assert_eq!(failed, refused);
    let expected: Vec<CallDetail> = (0..300)
        .filter(|i| !refused.contains(i))
        .map(|i| record(&sid, i))
        .collect();
    assert_eq!(t.store().calls_of_binding(&sid).await.unwrap(), expected);
    t.stop().await;
}

on_both_stores!(
    lookup_follows_the_documented_order,
    racing_first_callers_cannot_both_win,
    call_records_are_kept,
    lookups_follow_every_change_of_a_binding,
    concurrent_call_records_are_each_stored_once
);
