//! The envelope, authentication, accounts, DIDs and routes, over real HTTP
//! on both stores.

mod common;

use common::{Backend, TestServer, error_field};
use reqwest::StatusCode;
use serde_json::json;

async fn auth_is_required_and_checked(b: Backend) {
    let t = TestServer::start(b).await;
    let res = t
        .http
        .get(format!("{}/bindings", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("www-authenticate").is_some());
    let v: serde_json::Value = res.json().await.unwrap();
    assert_eq!(v["status"], 401);
    assert_eq!(v["body"]["message"], "authentication required");
    assert_eq!(error_field(&v), "cause");

    let res = t
        .http
        .get(format!("{}/bindings", t.base))
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The right password after a wrong one works, and again from the cache.
    for _ in 0..2 {
        let (s, v) = t.get("alice", "/bindings").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["status"], 200);
    }
    // A wrong password after a cached right one is still refused.
    let res = t
        .http
        .get(format!("{}/dids", t.base))
        .basic_auth("alice", Some("alice-pwx"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = t
        .http
        .get(format!("{}/dids", t.base))
        .basic_auth("nobody", Some("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = t
        .http
        .get(format!("{}/dids", t.base))
        .header("Authorization", "Basic !!!")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    t.stop().await;
}

async fn accounts_show_only_themselves_and_never_a_password(b: Backend) {
    let t = TestServer::start(b).await;
    let (s, v) = t.get("alice", "/accounts").await;
    assert_eq!(s, StatusCode::OK);
    let body = &v["body"];
    assert_eq!(body["total"], 1);
    assert_eq!(body["count"], 1);
    assert_eq!(body["has_more"], false);
    assert_eq!(body["limit"], 10);
    assert_eq!(body["offset"], 0);
    assert_eq!(body["pagination"], json!({}));
    let acc = &body["items"][0];
    assert_eq!(acc["login"], "alice");
    assert_eq!(acc["name"], "Alice");
    assert!(acc.get("password").is_none());
    let sid = acc["account_sid"].as_str().unwrap().to_string();
    assert!(acc["date_created"].as_str().unwrap().ends_with('Z'));

    let (s, v) = t.get("alice", &format!("/accounts/{sid}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"]["account_sid"], sid.as_str());
    let (s, v) = t.get("bob", &format!("/accounts/{sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["status"], 404);
    let (s, v) = t
        .get("alice", &format!("/accounts/{sid}?include_fields=login"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"], json!({"login": "alice"}));
    t.stop().await;
}

async fn dids_carry_numbering_metadata(b: Backend) {
    let t = TestServer::start_with(b, common::default_accounts(), |c| {
        c.accounts[0].dids.push("+1 416 979 1234".into());
    })
    .await;
    let (s, v) = t.get("alice", "/dids?limit=100").await;
    assert_eq!(s, StatusCode::OK);
    let items = v["body"]["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 7);
    let find = |n: &str| {
        items
            .iter()
            .find(|d| d["phonenumber"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} missing"))
    };
    let us = find("15162065337");
    assert_eq!(us["country_code"], "USA");
    assert_eq!(us["in_country_format"], "(516) 206-5337");
    assert_eq!(us["international_format"], "+1 516-206-5337");
    let ca = find("14169791234");
    assert_eq!(ca["country_code"], "CAN");
    assert_eq!(ca["in_country_format"], "(416) 979-1234");
    let uk = find("442079460958");
    assert_eq!(uk["country_code"], "GBR");
    assert_eq!(uk["in_country_format"], "020 7946 0958");
    assert_eq!(uk["international_format"], "+44 20 7946 0958");
    let de = find("4930123456");
    assert_eq!(de["country_code"], "DEU");
    assert_eq!(de["in_country_format"], "030 123456");
    assert_eq!(de["international_format"], "+49 30 123456");

    let sid = uk["did_sid"].as_str().unwrap();
    let (s, v) = t.get("alice", &format!("/dids/{sid}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"], uk);
    let (s, _) = t.get("bob", &format!("/dids/{sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = t
        .get("alice", "/dids?filter=country_code+in+(GBR,DEU)")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["body"]["total"], 2);
    // A binding's redirect_did_info comes from the same metadata.
    let bnd = t
        .binding(
            "alice",
            json!({"destination_did": "15162065300", "redirect_did": "+44 20 7946 0958"}),
        )
        .await;
    assert_eq!(
        bnd["redirect_did_info"],
        json!({"country_code": "GBR", "e164_format": "+442079460958", "in_country_format": "020 7946 0958",
               "international_format": "+44 20 7946 0958", "phonenumber": "442079460958"})
    );
    t.stop().await;
}

async fn unknown_routes_and_methods_get_the_envelope(b: Backend) {
    let t = TestServer::start(b).await;
    let (s, v) = t.get("alice", "/nothing").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["status"], 404);
    let (s, v) = t.delete("alice", "/dids").await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(v["status"], 405);
    let (s, v) = t
        .get("alice", "/bindings/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["body"]["message"], "no item error");
    t.stop().await;
}

on_both_stores!(
    auth_is_required_and_checked,
    accounts_show_only_themselves_and_never_a_password,
    dids_carry_numbering_metadata,
    unknown_routes_and_methods_get_the_envelope,
);

#[tokio::test]
async fn sqlite_store_runs_in_wal_mode() {
    use sqlx::Connection;
    let t = TestServer::start(Backend::Sqlite).await;
    let url = t.db.url.clone();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode.0.to_lowercase(), "wal");
    conn.close().await.unwrap();
    t.stop().await;
}
