//! Dialouts over real HTTP on both stores: stored, listed, changed and
//! deleted while scheduled (placing the calls is another issue's work).

mod common;

use std::time::Duration;

use common::{Backend, TestServer, error_field};
use reqwest::StatusCode;
use serde_json::json;

async fn dialout_life_cycle(b: Backend) {
    let t = TestServer::start(b).await;
    let (s, v) = t
        .post("alice", "/dialouts", json!({"stage_one_destination_did": "15162065339", "stage_two_destination_did": "+15162065338",
            "redirect_did": "15162065340", "attributes": {"ringback": "false"}, "delay": "1800"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let d = v["body"].clone();
    assert_eq!(
        d["attributes"],
        json!({"hide_origination_did": "true", "ringback": "false"})
    );
    assert_eq!(d["delay"], 1800);
    assert_eq!(d["redirect_did"], "15162065340");
    assert_eq!(d["stage_two_destination_did"], "15162065338");
    let path = format!("/dialouts/{}", d["dialout_sid"].as_str().unwrap());
    // Get by SID returns the object itself.
    let (s, v) = t.get("alice", &path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"]["dialout_sid"], d["dialout_sid"]);
    assert!(v["body"].get("items").is_none());
    // The delay counts down.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, v) = t.get("alice", &path).await;
    assert_eq!(v["body"]["delay"], 1799);
    // PATCH restarts it; merges attributes.
    let (s, v) = t
        .patch(
            "alice",
            &path,
            json!({"delay": "600", "attributes": {"cnam": "Dispatch"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["delay"], 600);
    assert_eq!(v["body"]["attributes"]["cnam"], "Dispatch");
    assert_eq!(v["body"]["attributes"]["ringback"], "false");
    // PUT replaces.
    let (s, v) = t.put("alice", &path, json!({"stage_one_destination_did": "15162065301", "stage_two_destination_did": "15162065302"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["body"]["attributes"],
        json!({"hide_origination_did": "true"})
    );
    assert_eq!(v["body"]["delay"], 0);
    assert_eq!(v["body"]["redirect_did"], "15162065340");
    // Lists, filters, field filtering.
    let (s, v) = t
        .get(
            "alice",
            "/dialouts?filter=stage_one_destination_did+eq+15162065301&include_fields=dialout_sid",
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"]["total"], 1);
    assert_eq!(
        v["body"]["items"][0],
        json!({"dialout_sid": d["dialout_sid"]})
    );
    let (s, _) = t.get("bob", &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t.delete("alice", &path).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t.get("alice", &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    t.stop().await;
}

async fn dialout_rules(b: Backend) {
    let t = TestServer::start(b).await;
    let body = |one: &str, two: &str| json!({"stage_one_destination_did": one, "stage_two_destination_did": two, "delay": 600});
    let (s, v) = t
        .post("alice", "/dialouts", body("15162065301", "15162065302"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // The redirect DID was picked from the account.
    assert!(
        v["body"]["redirect_did"]
            .as_str()
            .unwrap()
            .starts_with("1516206533")
            || v["body"]["redirect_did"] == "15162065340"
    );
    // A number already in a scheduled dialout: 409 naming the field.
    let (s, v) = t
        .post("alice", "/dialouts", body("15162065302", "15162065303"))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(error_field(&v), "stage_one_destination_did");
    // Required fields, bad numbers, bad delay, same party twice.
    for (b2, field) in [
        (
            json!({"stage_one_destination_did": "15162065301"}),
            "stage_two_destination_did",
        ),
        (
            json!({"stage_one_destination_did": "x", "stage_two_destination_did": "15162065302"}),
            "stage_one_destination_did",
        ),
        (
            json!({"stage_one_destination_did": "15162065304", "stage_two_destination_did": "15162065305", "delay": -1}),
            "delay",
        ),
        (
            json!({"stage_one_destination_did": "15162065304", "stage_two_destination_did": "15162065304"}),
            "stage_two_destination_did",
        ),
        (
            json!({"stage_one_destination_did": "15162065304", "stage_two_destination_did": "15162065305", "attributes": {"sip_header_Via": "x"}}),
            "attributes.sip_header_Via",
        ),
    ] {
        let (s, v) = t.post("alice", "/dialouts", b2.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{b2}");
        assert_eq!(error_field(&v), field, "{b2}");
    }
    // hide_origination_did defaults to true; flipping it needs the permission.
    let (s, v) = t
        .post("alice", "/dialouts", json!({"stage_one_destination_did": "15162065306", "stage_two_destination_did": "15162065307", "attributes": {"hide_origination_did": "false"}}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(error_field(&v), "attributes.hide_origination_did");
    let (s, v) = t
        .post("bob", "/dialouts", json!({"stage_one_destination_did": "15162065306", "stage_two_destination_did": "15162065307", "attributes": {"hide_origination_did": "false"}}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["attributes"]["hide_origination_did"], "false");
    let (_, list) = t.get("alice", "/dialouts").await;
    assert_eq!(list["body"]["total"], 1);
    t.stop().await;
}

on_both_stores!(dialout_life_cycle, dialout_rules);
