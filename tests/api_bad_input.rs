//! Bad input gets a 4xx that names what is wrong, and nothing in the store
//! changes (both stores, real HTTP).

mod common;

use common::{Backend, TestServer, error_field};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn raw(
    t: &TestServer,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = t
        .http
        .request(method, format!("{}{path}", t.base))
        .basic_auth("alice", Some("alice-pw"))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    let res = req.send().await.unwrap();
    let s = res.status();
    let text = res.text().await.unwrap();
    (
        s,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn bodies_that_are_refused_change_nothing(b: Backend) {
    let t = TestServer::start(b).await;
    let bnd = t.binding("alice", json!({"destination_did": "15162065300", "name": "keep", "attributes": {"cnam": "Keep"}})).await;
    let path = format!("/bindings/{}", bnd["binding_sid"].as_str().unwrap());
    let (_, before) = t.get("alice", &path).await;

    // Malformed JSON.
    for target in ["/bindings", path.as_str()] {
        let method = if target == "/bindings" {
            reqwest::Method::POST
        } else {
            reqwest::Method::PATCH
        };
        let (s, v) = raw(
            &t,
            method,
            target,
            Some("application/json"),
            b"{\"destination_did\": ".to_vec(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(
            v["body"]["message"],
            "cannot parse json. Check json for validity"
        );
        assert_eq!(v["status"], 400);
    }
    // Wrong content type.
    let (s, v) = raw(
        &t,
        reqwest::Method::POST,
        "/bindings",
        Some("text/plain"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(v["status"], 415);
    let (s, _) = raw(&t, reqwest::Method::POST, "/bindings", None, b"{}".to_vec()).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Over 1 MiB.
    let big = format!(
        "{{\"destination_did\": \"15162065300\", \"name\": \"{}\"}}",
        "x".repeat(1024 * 1024 + 10)
    );
    let (s, v) = raw(
        &t,
        reqwest::Method::POST,
        "/bindings",
        Some("application/json"),
        big.into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(v["status"], 413);
    // Not an object.
    let (s, v) = t.post("alice", "/bindings", json!(["15162065300"])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "body");

    // Field errors, on create and on PATCH.
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"destination_did": 15162065300u64}),
            "destination_did",
        ),
        (
            json!({"destination_did": "not a number"}),
            "destination_did",
        ),
        (
            json!({"destination_did": "+1 000 000 0000"}),
            "destination_did",
        ),
        (
            json!({"destination_did": "15162065300", "origination_did": "12"}),
            "origination_did",
        ),
        (
            json!({"destination_did": "15162065300", "colour": "red"}),
            "colour",
        ),
        (
            json!({"destination_did": "15162065300", "maximum_ttl": "soon"}),
            "maximum_ttl",
        ),
        (
            json!({"destination_did": "15162065300", "maximum_ttl": 1.5}),
            "maximum_ttl",
        ),
        (
            json!({"destination_did": "15162065300", "maximum_ttl": -5}),
            "maximum_ttl",
        ),
        (
            json!({"destination_did": "15162065300", "wait_origination_did_ttl": true}),
            "wait_origination_did_ttl",
        ),
        (json!({"destination_did": "15162065300", "name": 7}), "name"),
        (
            json!({"destination_did": "15162065300", "dtmf": "12E4"}),
            "dtmf",
        ),
        (
            json!({"destination_did": "15162065300", "attributes": "moh"}),
            "attributes",
        ),
        (
            json!({"destination_did": "15162065300", "attributes": {"ringback": "loud"}}),
            "attributes.ringback",
        ),
        (
            json!({"destination_did": "15162065300", "attributes": {"sip_header_Foo": "1"}}),
            "attributes.sip_header_Foo",
        ),
        (
            json!({"destination_did": "15162065300", "attributes": {"fix_anonymous_cid": "perhaps"}}),
            "attributes.fix_anonymous_cid",
        ),
        (
            json!({"destination_did": "15162065300", "redirect_did": null}),
            "redirect_did",
        ),
    ];
    for (body, field) in &cases {
        let (s, v) = t.post("alice", "/bindings", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "POST {body}: {v}");
        assert_eq!(&error_field(&v), field, "POST {body}");
        let (s, v) = t.patch("alice", &path, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "PATCH {body}: {v}");
        assert_eq!(&error_field(&v), field, "PATCH {body}");
        let (s, _) = t.put("alice", &path, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "PUT {body}");
    }
    // Query arguments.
    for (q, field) in [
        ("limit=1001", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("offset=-3", "offset"),
        ("include_fields=nope", "include_fields"),
        ("after=a&before=b", "after"),
    ] {
        let (s, v) = t.get("alice", &format!("/bindings?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(error_field(&v), field, "{q}");
    }
    let (s, v) = t
        .patch(
            "alice",
            &format!("{path}?nested_objects=sometimes"),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "nested_objects");
    let (s, v) = t
        .post(
            "alice",
            "/bindings?reuse=maybe",
            json!({"destination_did": "15162065300"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "reuse");

    // Nothing changed: the binding reads back the same, and no binding was added.
    let (_, after) = t.get("alice", &path).await;
    let strip = |mut v: Value| {
        v["body"]["maximum_ttl"] = json!(0);
        v["body"]["wait_origination_did_ttl"] = json!(0);
        v
    };
    assert_eq!(strip(after), strip(before));
    let (_, list) = t.get("alice", "/bindings").await;
    assert_eq!(list["body"]["total"], 1);
    assert_eq!(t.store().count_binding_rows().await.unwrap(), 1);
    t.stop().await;
}

async fn conflicts_change_nothing(b: Backend) {
    let t = TestServer::start(b).await;
    let a = t.binding("alice", json!({"destination_did": "15162065300", "redirect_did": "15162065337", "origination_did": "15162065401"})).await;
    let bb = t.binding("alice", json!({"destination_did": "15162065300", "redirect_did": "15162065338", "origination_did": "15162065401"})).await;
    // Moving b onto a's DID for the same caller would make a call ambiguous.
    let path = format!("/bindings/{}", bb["binding_sid"].as_str().unwrap());
    let (s, v) = t
        .patch(
            "alice",
            &path,
            json!({"redirect_did": "15162065337", "name": "moved"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(error_field(&v), "redirect_did");
    let (_, now) = t.get("alice", &path).await;
    assert_eq!(now["body"]["redirect_did"], "15162065338");
    assert_eq!(now["body"]["name"], "N/A");
    let _ = a;
    t.stop().await;
}

on_both_stores!(
    bodies_that_are_refused_change_nothing,
    conflicts_change_nothing
);
