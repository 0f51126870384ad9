//! Pagination, result filtering and field filtering over real HTTP on both
//! stores (reference, "Pagination", "Result Filtering", "Field Filtering").

mod common;

use common::{Backend, TestServer, error_field};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Creates `n` bindings on one DID, distinct callers, names `b00`..; the
/// odd ones have `ringback=moh`.
async fn seed(t: &TestServer, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut attrs = json!({"order": format!("{i:02}")});
        if i % 2 == 1 {
            attrs["ringback"] = json!("moh");
        }
        let body = json!({
            "destination_did": "15162065300",
            "redirect_did": "15162065337",
            "origination_did": format!("1516206{:04}", 5400 + i),
            "name": format!("b{i:02}"),
            "maximum_ttl": 1000 + i as i64 * 100,
            "attributes": attrs,
        });
        out.push(t.binding("alice", body).await);
    }
    out
}

fn names(v: &Value) -> Vec<String> {
    v["body"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect()
}

async fn offset_pagination_with_working_links(b: Backend) {
    let t = TestServer::start(b).await;
    seed(&t, 25).await;
    let (s, v) = t.get("alice", "/bindings").await;
    assert_eq!(s, StatusCode::OK);
    let body = &v["body"];
    assert_eq!(
        (
            body["count"].clone(),
            body["limit"].clone(),
            body["total"].clone()
        ),
        (json!(10), json!(10), json!(25))
    );
    assert_eq!(body["has_more"], true);
    assert!(body["pagination"].get("previous").is_none());
    assert_eq!(names(&v)[0], "b00");
    // Follow `next` to the end, then `previous` back.
    let mut seen = names(&v);
    let mut next = body["pagination"]["next"].as_str().map(str::to_string);
    let mut last = v.clone();
    while let Some(url) = next {
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let (s, v) = t.get("alice", &url).await;
        assert_eq!(s, StatusCode::OK, "{url}");
        seen.extend(names(&v));
        next = v["body"]["pagination"]["next"].as_str().map(str::to_string);
        last = v;
    }
    let expected: Vec<String> = (0..25).map(|i| format!("b{i:02}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(last["body"]["count"], 5);
    assert_eq!(last["body"]["has_more"], false);
    let prev = last["body"]["pagination"]["previous"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, v) = t.get("alice", &prev).await;
    assert_eq!(names(&v)[0], "b10");
    // order, limit and offset together.
    let (_, v) = t
        .get("alice", "/bindings?order=name+desc&limit=3&offset=2")
        .await;
    assert_eq!(names(&v), vec!["b22", "b21", "b20"]);
    let (_, v) = t
        .get("alice", "/bindings?order=maximum_ttl%20desc&limit=1")
        .await;
    assert_eq!(names(&v), vec!["b24"]);
    let (_, v) = t
        .get("alice", "/bindings?order=attributes.order+desc&limit=2")
        .await;
    assert_eq!(names(&v), vec!["b24", "b23"]);
    t.stop().await;
}

async fn cursor_pagination(b: Backend) {
    let t = TestServer::start(b).await;
    let all = seed(&t, 8).await;
    let sid = |i: usize| all[i]["binding_sid"].as_str().unwrap().to_string();
    let (s, v) = t
        .get("alice", &format!("/bindings?after={}&limit=3", sid(2)))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(names(&v), vec!["b03", "b04", "b05"]);
    assert_eq!(v["body"]["has_more"], true);
    let next = v["body"]["pagination"]["next"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(next.contains(&format!("after={}", sid(5))), "{next}");
    let (_, v2) = t.get("alice", &next).await;
    assert_eq!(names(&v2), vec!["b06", "b07"]);
    assert_eq!(v2["body"]["has_more"], false);
    let (_, v) = t
        .get("alice", &format!("/bindings?before={}&limit=3", sid(5)))
        .await;
    assert_eq!(names(&v), vec!["b02", "b03", "b04"]);
    let prev = v["body"]["pagination"]["previous"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, v) = t.get("alice", &prev).await;
    assert_eq!(names(&v), vec!["b00", "b01"]);
    // Cursors follow the requested order.
    let (_, v) = t
        .get(
            "alice",
            &format!("/bindings?order=name+desc&after={}&limit=2", sid(5)),
        )
        .await;
    assert_eq!(names(&v), vec!["b04", "b03"]);
    let (s, v) = t
        .get(
            "alice",
            "/bindings?after=00000000-0000-0000-0000-000000000000",
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "after");
    t.stop().await;
}

async fn all_ten_operators_and_dotted_names(b: Backend) {
    let t = TestServer::start(b).await;
    seed(&t, 6).await;
    let q = |f: &str| format!("/bindings?limit=100&filter={}", urlencode(f));
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("name eq b03", vec!["b03"]),
        ("name ne b03", vec!["b00", "b01", "b02", "b04", "b05"]),
        ("maximum_ttl gt 1300", vec!["b04", "b05"]),
        ("maximum_ttl ge 1300", vec!["b03", "b04", "b05"]),
        ("maximum_ttl lt 1100", vec!["b00"]),
        ("maximum_ttl le 1100", vec!["b00", "b01"]),
        (
            "name like b0%",
            vec!["b00", "b01", "b02", "b03", "b04", "b05"],
        ),
        ("name like B0%", vec![]),
        (
            "name ilike B0%",
            vec!["b00", "b01", "b02", "b03", "b04", "b05"],
        ),
        ("name like %3", vec!["b03"]),
        ("name in (b01, b04)", vec!["b01", "b04"]),
        ("name notin (b01, b04)", vec!["b00", "b02", "b03", "b05"]),
        ("attributes.ringback eq moh", vec!["b01", "b03", "b05"]),
        (
            "attributes.ringback eq moh and maximum_ttl gt 1200",
            vec!["b03", "b05"],
        ),
        ("origination_did eq +15162065402", vec!["b02"]),
        (
            "redirect_did_info.country_code eq USA and name in (b00)",
            vec!["b00"],
        ),
        ("dtmf eq null and name eq b01", vec!["b01"]),
        (
            "date_created gt 2000-01-01T00:00:00.000Z and name eq b05",
            vec!["b05"],
        ),
    ];
    for (f, want) in cases {
        let (s, v) = t.get("alice", &q(f)).await;
        assert_eq!(s, StatusCode::OK, "{f}: {v}");
        assert_eq!(names(&v), want, "{f}");
        assert_eq!(v["body"]["total"], want.len(), "{f}");
    }
    // like takes only % as a wildcard: `_` is literal.
    let (_, v) = t.get("alice", &q("name like b_0")).await;
    assert_eq!(names(&v), Vec::<String>::new());
    t.stop().await;
}

async fn bad_filters_say_which_part_is_wrong(b: Backend) {
    let t = TestServer::start(b).await;
    for (f, needle) in [
        ("name", "operator"),
        ("name between 1", "between"),
        ("nosuch eq 1", "nosuch"),
        ("maximum_ttl gt soon", "soon"),
        ("maximum_ttl like 1%", "text"),
        ("name eq a or name eq b", "or"),
        ("name in b", "list"),
        ("date_created gt yesterday", "yesterday"),
    ] {
        let (s, v) = t
            .get("alice", &format!("/bindings?filter={}", urlencode(f)))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{f}");
        assert_eq!(error_field(&v), "filter", "{f}");
        let msg = v["body"]["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{f}: {msg}");
    }
    let (s, v) = t.get("alice", "/bindings?order=nosuch+asc").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "order");
    let (s, v) = t.get("alice", "/bindings?order=name+sideways").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "order");
    t.stop().await;
}

async fn field_filtering(b: Backend) {
    let t = TestServer::start(b).await;
    let bnd = seed(&t, 1).await.remove(0);
    let sid = bnd["binding_sid"].as_str().unwrap();
    let (_, v) = t
        .get(
            "alice",
            &format!("/bindings/{sid}?include_fields=name,redirect_did"),
        )
        .await;
    assert_eq!(
        v["body"],
        json!({"name": "b00", "redirect_did": "15162065337"})
    );
    let (_, v) = t
        .get(
            "alice",
            "/bindings?exclude_fields=attributes,redirect_did_info",
        )
        .await;
    let item = &v["body"]["items"][0];
    assert!(item.get("attributes").is_none() && item.get("redirect_did_info").is_none());
    assert_eq!(item["name"], "b00");
    let (s, v) = t.get("alice", "/bindings?include_fields=name,bogus").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "include_fields");
    let (s, v) = t.get("alice", "/dids?exclude_fields=phone").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(error_field(&v), "exclude_fields");
    t.stop().await;
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

on_both_stores!(
    offset_pagination_with_working_links,
    cursor_pagination,
    all_ten_operators_and_dotted_names,
    bad_filters_say_which_part_is_wrong,
    field_filtering,
);
