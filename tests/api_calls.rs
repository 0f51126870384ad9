//! The calls API (an extension, docs/api.md "Calls") over real HTTP on both
//! stores: call detail records listed by date_stop with offset and
//! after/before pagination, filters, field filtering, get by SID, other
//! accounts' records invisible; and the callback outbox rows written with
//! the records, claimed once each by two nodes on one database.

mod common;

use common::{Backend, TestServer, error_field};
use mediator::store::calls::CallDetail;
use reqwest::StatusCode;
use serde_json::json;

fn record(binding_sid: Option<&str>, i: i64, status: u16, redirect: &str) -> CallDetail {
    CallDetail {
        binding_sid: binding_sid.map(str::to_string),
        kind: "binding".into(),
        direction: "inbound".into(),
        number_src: format!("1212736{i:04}"),
        number_dst: "15162065301".into(),
        number_redirect: redirect.into(),
        date_start: 1_700_000_000_000 + i * 10_000,
        date_answer: (status == 200).then_some(1_700_000_001_000 + i * 10_000),
        date_stop: 1_700_000_005_000 + i * 10_000,
        duration: if status == 200 { 4 } else { 0 },
        sip_status: status,
        hangup_side: Some("caller".into()),
    }
}

async fn calls_are_listed_paged_filtered_and_private(b: Backend) {
    let t = TestServer::start(b).await;
    let bnd = t
        .binding(
            "alice",
            json!({"destination_did": "15162065301", "redirect_did": "15162065337",
               "dtmf": "12#", "attributes": {"ringback": "moh", "crm_id": "42"}}),
        )
        .await;
    let bsid = bnd["binding_sid"].as_str().unwrap().to_string();
    // Five records of alice's binding, written out of date order, and one
    // of bob's (by his DID, no binding).
    let mut sids = Vec::new();
    for i in [3, 0, 4, 1, 2] {
        let status = if i % 2 == 0 { 200 } else { 486 };
        let sid = t
            .store()
            .insert_call(&record(Some(&bsid), i, status, "15162065337"))
            .await
            .unwrap();
        sids.push((i, sid));
    }
    sids.sort();
    let sid_of = |i: usize| sids[i].1.clone();
    let bob_sid = t
        .store()
        .insert_call(&record(None, 9, 404, "12025550143"))
        .await
        .unwrap();

    // The list: by date_stop, the binding's dtmf and attributes copied.
    let (s, v) = t.get("alice", "/calls").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let body = &v["body"];
    assert_eq!(body["total"], 5);
    let got: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_sid"].as_str().unwrap())
        .collect();
    let want: Vec<String> = (0..5).map(sid_of).collect();
    assert_eq!(got, want);
    let first = &body["items"][0];
    assert_eq!(first["reference_sid"], bsid.as_str());
    assert_eq!(first["type"], "binding");
    assert_eq!(first["direction"], "inbound");
    assert_eq!(first["number_src"], "12127360000");
    assert_eq!(first["number_redirect"], "15162065337");
    assert_eq!(first["dtmf"], "12#");
    assert_eq!(first["attributes"]["crm_id"], "42");
    assert_eq!(first["attributes"]["ringback"], "moh");
    assert_eq!(first["sip_status"], 200);
    assert_eq!(first["duration"], 4);
    assert_eq!(first["date_start"], "2023-11-14T22:13:20.000Z");
    assert_eq!(first["date_talk"], "2023-11-14T22:13:21.000Z");
    assert_eq!(first["date_stop"], "2023-11-14T22:13:25.000Z");
    assert_eq!(body["items"][1]["date_talk"], serde_json::Value::Null);

    // after / before cursors, limit, has_more and links.
    let (s, v) = t
        .get("alice", &format!("/calls?after={}&limit=2", sid_of(1)))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got: Vec<&str> = v["body"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_sid"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![sid_of(2), sid_of(3)]);
    assert_eq!(v["body"]["has_more"], true);
    let (_, v) = t
        .get("alice", &format!("/calls?before={}&limit=2", sid_of(3)))
        .await;
    let got: Vec<&str> = v["body"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["call_sid"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![sid_of(1), sid_of(2)]);
    let (_, v) = t.get("alice", "/calls?offset=3&limit=10").await;
    assert_eq!(v["body"]["count"], 2);
    // Order the other way.
    let (_, v) = t.get("alice", "/calls?order=date_stop+desc&limit=1").await;
    assert_eq!(v["body"]["items"][0]["call_sid"], sid_of(4).as_str());

    // Filters: status, numbers (with +), attributes, dates.
    let (_, v) = t.get("alice", "/calls?filter=sip_status+eq+486").await;
    assert_eq!(v["body"]["total"], 2);
    let (_, v) = t
        .get("alice", "/calls?filter=number_src+eq+%2B12127360004")
        .await;
    assert_eq!(v["body"]["items"][0]["call_sid"], sid_of(4).as_str());
    let (_, v) = t
        .get(
            "alice",
            "/calls?filter=attributes.crm_id+eq+42+and+duration+gt+0",
        )
        .await;
    assert_eq!(v["body"]["total"], 3);
    let (_, v) = t
        .get(
            "alice",
            "/calls?filter=date_stop+ge+2023-11-14T22:13:45.000Z",
        )
        .await;
    assert_eq!(v["body"]["total"], 3);
    let (s, v) = t.get("alice", "/calls?filter=nosuch+eq+1").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_field(&v), "filter");

    // Field filtering.
    let (_, v) = t
        .get("alice", "/calls?include_fields=call_sid,sip_status&limit=1")
        .await;
    let item = v["body"]["items"][0].as_object().unwrap();
    assert_eq!(item.len(), 2, "{item:?}");
    let (s, v) = t.get("alice", "/calls?exclude_fields=nosuch").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // By SID; other accounts' records are not found.
    let (s, v) = t.get("alice", &format!("/calls/{}", sid_of(2))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"]["call_sid"], sid_of(2).as_str());
    let (s, _) = t.get("alice", &format!("/calls/{bob_sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = t.get("bob", "/calls").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"]["total"], 1);
    assert_eq!(v["body"]["items"][0]["number_redirect"], "12025550143");
    assert_eq!(
        v["body"]["items"][0]["reference_sid"],
        serde_json::Value::Null
    );
    t.stop().await;
}

/// Records of an account with a callback URL get an outbox row in the same
/// transaction, others none; rows are claimed once each, also by two
/// stores (nodes) claiming at the same time.
async fn outbox_rows_follow_records_and_are_claimed_once(b: Backend) {
    // The server's own delivery worker sleeps (it polls once an hour and
    // is never woken: records are written through other stores).
    let t = TestServer::start_with(b, common::default_accounts(), |c| {
        c.callbacks.poll_ms = 3_600_000;
    })
    .await;
    let config = mediator::config::DatabaseConfig {
        url: t.db.url.clone(),
        ..Default::default()
    };
    let connect = || mediator::store::Store::connect(&config);
    let other1 = connect().await.unwrap();
    let other2 = connect().await.unwrap();
    other1
        .set_callback("alice", Some("http://127.0.0.1:9/cb"), Some("s3cret"))
        .await
        .unwrap();
    let bnd = t
        .binding(
            "alice",
            json!({"destination_did": "15162065301", "redirect_did": "15162065337"}),
        )
        .await;
    let bsid = bnd["binding_sid"].as_str().unwrap();
    let mut alice = Vec::new();
    for i in 0..20 {
        alice.push(
            other1
                .insert_call(&record(Some(bsid), i, 200, "15162065337"))
                .await
                .unwrap(),
        );
    }
    other1
        .insert_call(&record(None, 99, 404, "12025550143"))
        .await
        .unwrap();
    let rows = other1.outbox().await.unwrap();
    let mut got: Vec<String> = rows.iter().map(|r| r.call_sid.clone()).collect();
    got.sort();
    alice.sort();
    assert_eq!(
        got, alice,
        "one outbox row per record of alice, none of bob's"
    );
    assert!(
        rows.iter()
            .all(|r| r.attempts == 0 && r.failed_at.is_none())
    );

    // Two stores on one database claim at the same time, as two nodes
    // would: every due row goes to exactly one of them.
    let now = mediator::model::now_ms() + 1_000;
    let claim_all = async |s: &mediator::store::Store| {
        let mut v = Vec::new();
        for _ in 0..10 {
            v.extend(s.claim_callbacks(now, 600_000, 2).await.unwrap());
            tokio::task::yield_now().await;
        }
        v
    };
    let (a, b2) = tokio::join!(claim_all(&other1), claim_all(&other2));
    let mut claimed: Vec<String> = a
        .iter()
        .chain(b2.iter())
        .map(|c| c.call_sid.clone())
        .collect();
    claimed.sort();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!(claimed.len(), before, "a row was claimed twice");
    assert_eq!(claimed, alice, "every row claimed by one of the two");
    // Claimed rows are not due again before their lease ends; then they are.
    assert!(
        other1
            .claim_callbacks(now, 600_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        other2
            .claim_callbacks(now + 600_000, 1_000, 100)
            .await
            .unwrap()
            .len(),
        20
    );
    // A failed attempt counts and reschedules; a given-up row is never due.
    other1
        .callback_failed(&alice[0], now, false, "receiver answered 500")
        .await
        .unwrap();
    other1
        .callback_failed(&alice[1], now, true, "receiver answered 500")
        .await
        .unwrap();
    other1.callback_done(&alice[2]).await.unwrap();
    let due = other1.claim_callbacks(now, 1_000, 100).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].call_sid, alice[0]);
    assert_eq!(due[0].attempts, 1);
    let rows = other1.outbox().await.unwrap();
    assert_eq!(rows.len(), 19);
    let given_up = rows.iter().find(|r| r.call_sid == alice[1]).unwrap();
    assert!(given_up.failed_at.is_some());
    assert_eq!(
        given_up.last_error.as_deref(),
        Some("receiver answered 500")
    );
    other1.close().await;
    other2.close().await;
    t.stop().await;
}

on_both_stores!(
    calls_are_listed_paged_filtered_and_private,
    outbox_rows_follow_records_and_are_claimed_once
);
