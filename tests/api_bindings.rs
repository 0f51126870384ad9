//! Bindings over real HTTP on both stores: create, read, PATCH merge, PUT,
//! DELETE, read-only fields, numeric strings, permissions, redirect DID
//! picking (fallback_country, reuse) and the TTL countdowns.

mod common;

use std::time::Duration;

use common::{Backend, TestServer, error_field};
use reqwest::StatusCode;
use serde_json::json;

async fn create_read_and_delete(b: Backend) {
    let t = TestServer::start(b).await;
    let bnd = t
        .binding(
            "alice",
            json!({"destination_did": "+15162065300", "attributes": {"ringback": "moh"}}),
        )
        .await;
    assert_eq!(bnd["destination_did"], "15162065300");
    assert_eq!(bnd["name"], "N/A");
    assert_eq!(bnd["dtmf"], json!(null));
    assert_eq!(bnd["origination_did"], json!(null));
    assert_eq!(bnd["maximum_ttl"], 3600);
    assert_eq!(bnd["wait_origination_did_ttl"], 300);
    assert_eq!(bnd["attributes"], json!({"ringback": "moh"}));
    assert_eq!(bnd["redirect_did_info"]["country_code"], "USA");
    assert_eq!(
        bnd["redirect_did_info"]["e164_format"],
        format!("+{}", bnd["redirect_did"].as_str().unwrap())
    );
    let sid = bnd["binding_sid"].as_str().unwrap().to_string();
    let date = bnd["date_created"].as_str().unwrap();
    assert_eq!(date.len(), "2018-10-09T20:40:57.675Z".len(), "{date}");

    let (s, v) = t.get("alice", &format!("/bindings/{sid}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"]["binding_sid"], sid.as_str());
    assert_eq!(v["body"]["date_created"], bnd["date_created"]);
    // Another account's binding is invisible.
    let (s, _) = t.get("bob", &format!("/bindings/{sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t.delete("bob", &format!("/bindings/{sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, v) = t.delete("alice", &format!("/bindings/{sid}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(v, json!(null));
    let (s, _) = t.get("alice", &format!("/bindings/{sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t.delete("alice", &format!("/bindings/{sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    t.stop().await;
}

async fn patch_merges_and_replaces_nested_objects(b: Backend) {
    let t = TestServer::start(b).await;
    let bnd = t
        .binding("alice", json!({"destination_did": "15162065300", "attributes": {"ringback": "moh", "cnam": "ACME", "order": "1"}}))
        .await;
    let path = format!("/bindings/{}", bnd["binding_sid"].as_str().unwrap());
    // Rules 1-3: replace by key, add new keys, null removes.
    let (s, v) = t
        .patch(
            "alice",
            &path,
            json!({"attributes": {"cnam": "New Co", "order": null, "extra": "x"}, "name": "job 7"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["body"]["attributes"],
        json!({"ringback": "moh", "cnam": "New Co", "extra": "x"})
    );
    assert_eq!(v["body"]["name"], "job 7");
    assert_eq!(v["body"]["destination_did"], "15162065300");
    assert_eq!(v["body"]["redirect_did"], bnd["redirect_did"]);
    // Rule 4: nested_objects=replace.
    let (s, v) = t
        .patch(
            "alice",
            &format!("{path}?nested_objects=replace"),
            json!({"attributes": {"only": "this"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["attributes"], json!({"only": "this"}));
    // dtmf set and cleared.
    let (s, v) = t.patch("alice", &path, json!({"dtmf": ",,,,1357#"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"]["dtmf"], ",,,,1357#");
    let (s, v) = t.patch("alice", &path, json!({"dtmf": null})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"]["dtmf"], json!(null));
    t.stop().await;
}

async fn put_replaces_the_object(b: Backend) {
    let t = TestServer::start(b).await;
    let bnd = t
        .binding("alice", json!({"destination_did": "15162065300", "name": "old", "dtmf": "1", "maximum_ttl": -1, "attributes": {"cnam": "X"}}))
        .await;
    let path = format!("/bindings/{}", bnd["binding_sid"].as_str().unwrap());
    let (s, v) = t
        .put("alice", &path, json!({"destination_did": "15162065301"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let body = &v["body"];
    assert_eq!(body["destination_did"], "15162065301");
    assert_eq!(body["name"], "N/A");
    assert_eq!(body["dtmf"], json!(null));
    assert_eq!(body["attributes"], json!({}));
    assert_eq!(body["maximum_ttl"], 3600);
    // The redirect DID callers know is kept.
    assert_eq!(body["redirect_did"], bnd["redirect_did"]);
    // PUT without the required field is a 400 and changes nothing.
    let (s, v) = t.put("alice", &path, json!({"name": "x"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "destination_did");
    let (_, after) = t.get("alice", &path).await;
    assert_eq!(after["body"]["destination_did"], "15162065301");
    // A client may send back what it read, read-only fields included.
    let mut whole = after["body"].clone();
    whole["name"] = json!("round trip");
    let (s, v) = t.put("alice", &path, whole).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["name"], "round trip");
    t.stop().await;
}

async fn read_only_fields_and_numeric_strings(b: Backend) {
    let t = TestServer::start(b).await;
    let (s, v) = t
        .post(
            "alice",
            "/bindings",
            json!({"destination_did": "15162065300", "binding_sid": "mine"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "binding_sid");
    let bnd = t.binding("alice", json!({"destination_did": "15162065300", "maximum_ttl": "1800", "wait_origination_did_ttl": "-1"})).await;
    assert_eq!(bnd["maximum_ttl"], 1800);
    assert_eq!(bnd["wait_origination_did_ttl"], -1);
    let path = format!("/bindings/{}", bnd["binding_sid"].as_str().unwrap());
    for (field, value) in [
        ("account_sid", json!("someone-else")),
        ("date_created", json!("2018-10-09T20:40:57.675Z")),
        ("redirect_did_info", json!({"country_code": "GBR"})),
    ] {
        let (s, v) = t.patch("alice", &path, json!({ field: value })).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{field}");
        assert_eq!(error_field(&v), field);
    }
    t.stop().await;
}

async fn hide_origination_did_needs_the_permission(b: Backend) {
    let t = TestServer::start(b).await;
    let (s, v) = t.post("alice", "/bindings", json!({"destination_did": "15162065300", "attributes": {"hide_origination_did": "true"}})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(error_field(&v), "attributes.hide_origination_did");
    assert_eq!(v["status"], 403);
    // Setting it to its default is allowed.
    let bnd = t.binding("alice", json!({"destination_did": "15162065300", "attributes": {"hide_origination_did": false}})).await;
    assert_eq!(bnd["attributes"]["hide_origination_did"], "false");
    let path = format!("/bindings/{}", bnd["binding_sid"].as_str().unwrap());
    let (s, _) = t
        .patch(
            "alice",
            &path,
            json!({"attributes": {"hide_origination_did": true}}),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, after) = t.get("alice", &path).await;
    assert_eq!(after["body"]["attributes"]["hide_origination_did"], "false");
    // Bob holds the permission.
    let bob = t
        .binding(
            "bob",
            json!({"destination_did": "15162065300", "attributes": {"hide_origination_did": true}}),
        )
        .await;
    assert_eq!(bob["attributes"]["hide_origination_did"], "true");
    t.stop().await;
}

async fn redirect_did_picking_fallback_country_and_reuse(b: Backend) {
    let t = TestServer::start(b).await;
    // A UK caller gets the UK DID.
    let uk = t
        .binding(
            "alice",
            json!({"destination_did": "15162065300", "origination_did": "+447400123456"}),
        )
        .await;
    assert_eq!(uk["redirect_did"], "442079460958");
    // A French caller: the account has no French DID, so fallback_country decides.
    let fr = t
        .post(
            "alice",
            "/bindings?fallback_country=deu",
            json!({"destination_did": "15162065300", "origination_did": "+33142685300"}),
        )
        .await;
    assert_eq!(fr.0, StatusCode::OK, "{}", fr.1);
    assert_eq!(fr.1["body"]["redirect_did"], "4930123456");
    // Fallback to a country the account has no DID in: 409 naming redirect_did.
    let (s, v) = t
        .post(
            "alice",
            "/bindings?fallback_country=FRA",
            json!({"destination_did": "15162065300", "origination_did": "+33142685301"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(error_field(&v), "redirect_did");
    let (s, v) = t
        .post(
            "alice",
            "/bindings?fallback_country=XYZ",
            json!({"destination_did": "15162065300"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "fallback_country");
    // reuse=true returns the same live binding.
    let again = t
        .post(
            "alice",
            "/bindings?reuse=true",
            json!({"destination_did": "15162065300", "origination_did": "+447400123456"}),
        )
        .await;
    assert_eq!(again.0, StatusCode::OK);
    assert_eq!(again.1["body"]["binding_sid"], uk["binding_sid"]);
    // Without reuse the same caller gets another DID (the UK one is taken for it).
    let other = t
        .binding(
            "alice",
            json!({"destination_did": "15162065300", "origination_did": "+447400123456"}),
        )
        .await;
    assert_ne!(other["redirect_did"], uk["redirect_did"]);
    // An explicit redirect DID of another account is refused.
    let (s, v) = t
        .post(
            "alice",
            "/bindings",
            json!({"destination_did": "15162065300", "redirect_did": "12025550143"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(error_field(&v), "redirect_did");
    // A binding with no origination takes its DID alone; a second one on it is refused.
    let open = t
        .binding(
            "alice",
            json!({"destination_did": "15162065300", "redirect_did": "15162065340"}),
        )
        .await;
    assert_eq!(open["redirect_did"], "15162065340");
    let (s, _) = t.post("alice", "/bindings", json!({"destination_did": "15162065301", "redirect_did": "15162065340", "origination_did": "15162065399"})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    t.stop().await;
}

async fn ttls_count_down_restart_on_write_and_expire(b: Backend) {
    let t = TestServer::start_with(b, common::default_accounts(), |c| {
        c.bindings.expiry_sweep_secs = 3600
    })
    .await;
    let bnd = t.binding("alice", json!({"destination_did": "15162065300", "maximum_ttl": 5, "wait_origination_did_ttl": -1})).await;
    assert_eq!(bnd["maximum_ttl"], 5);
    let path = format!("/bindings/{}", bnd["binding_sid"].as_str().unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, v) = t.get("alice", &path).await;
    let left = v["body"]["maximum_ttl"].as_i64().unwrap();
    assert!((2..=3).contains(&left), "after 2.1 s of 5 s: {left}");
    // A write restarts the count.
    let (_, v) = t.patch("alice", &path, json!({"maximum_ttl": 5})).await;
    assert_eq!(v["body"]["maximum_ttl"], 5);
    // Short TTLs expire; reads never show them, even though no sweep ran.
    let short = t.binding("alice", json!({"destination_did": "15162065301", "maximum_ttl": 1, "wait_origination_did_ttl": -1, "origination_did": "15162065302"})).await;
    let waiting = t.binding("alice", json!({"destination_did": "15162065303", "maximum_ttl": -1, "wait_origination_did_ttl": 1})).await;
    assert_eq!(waiting["maximum_ttl"], -1);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for gone in [&short, &waiting] {
        let (s, _) = t
            .get(
                "alice",
                &format!("/bindings/{}", gone["binding_sid"].as_str().unwrap()),
            )
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (_, list) = t.get("alice", "/bindings").await;
    assert_eq!(list["body"]["total"], 1);
    // The expired DID is free again: a new open binding may take it.
    let reuse_did = t.binding("alice", json!({"destination_did": "15162065304", "redirect_did": waiting["redirect_did"].clone()})).await;
    assert_eq!(reuse_did["redirect_did"], waiting["redirect_did"]);
    t.stop().await;
}

async fn the_sweep_deletes_expired_rows(b: Backend) {
    let t = TestServer::start_with(b, common::default_accounts(), |c| {
        c.bindings.expiry_sweep_secs = 1
    })
    .await;
    t.binding("alice", json!({"destination_did": "15162065301", "maximum_ttl": 1, "origination_did": "15162065302"})).await;
    t.binding("alice", json!({"destination_did": "15162065301", "maximum_ttl": -1, "origination_did": "15162065303"})).await;
    assert_eq!(t.store().count_binding_rows().await.unwrap(), 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.store().count_binding_rows().await.unwrap() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the expiry task did not delete the expired binding"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    t.stop().await;
}

on_both_stores!(
    create_read_and_delete,
    patch_merges_and_replaces_nested_objects,
    put_replaces_the_object,
    read_only_fields_and_numeric_strings,
    hide_origination_did_needs_the_permission,
    redirect_did_picking_fallback_country_and_reuse,
    ttls_count_down_restart_on_write_and_expire,
    the_sweep_deletes_expired_rows,
);
