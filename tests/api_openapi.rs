//! The OpenAPI document matches the live routes: every documented route
//! answers, and every route that answers is documented.

mod common;

use common::{Backend, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[test]
fn committed_document_is_the_generated_one() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json")).unwrap();
    assert_eq!(
        committed,
        mediator::api::openapi::document_text(),
        "docs/openapi.json is stale: run `cargo run -- openapi > docs/openapi.json`"
    );
}

fn concrete(path: &str) -> String {
    path.replace("{sid}", "00000000-0000-0000-0000-000000000000")
}

async fn documented_routes_answer_and_answering_routes_are_documented(b: Backend) {
    let t = TestServer::start(b).await;
    let res = t
        .http
        .get(format!("{}/openapi.json", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 9);
    // Paths a client of the reference might try, documented or not.
    let mut candidates: Vec<String> = paths.keys().cloned().collect();
    candidates.extend(
        [
            "/calls",
            "/calls/{sid}",
            "/endpoints",
            "/accounts/{sid}/dids",
        ]
        .map(String::from),
    );
    for path in &candidates {
        let documented = paths.get(path);
        for m in METHODS {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let body = if m == "get" || m == "delete" {
                None
            } else {
                Some(serde_json::json!({}))
            };
            let (status, v) = t.call("alice", method, &concrete(path), body).await;
            let no_route = status == StatusCode::METHOD_NOT_ALLOWED
                || (status == StatusCode::NOT_FOUND
                    && v["body"]["errors"][0]["message"] == "no such route");
            let op = documented.and_then(|p| p.get(m));
            match op {
                Some(op) => {
                    assert!(
                        !no_route,
                        "{m} {path} is documented but does not answer ({status})"
                    );
                    let code = status.as_u16().to_string();
                    assert!(
                        op["responses"].get(&code).is_some(),
                        "{m} {path} answered {code}, which is not documented: {v}"
                    );
                }
                None => assert!(
                    no_route,
                    "{m} {path} answers {status} but is not documented"
                ),
            }
        }
    }
    t.stop().await;
}

on_both_stores!(documented_routes_answer_and_answering_routes_are_documented);
