//! The dialout scheduler and the store side of dialouts (issue 6), on
//! SQLite and PostgreSQL: claims are exclusive, a begun dialout cannot be
//! changed (409), the end of a dialout is recorded in `calls` and removes
//! it, a dialout with delay 0 fires at once and a delayed one when due, one
//! due long ago is recorded as missed and never placed.
//!
//! The scheduler's `place` is a channel here, so that the test sees which
//! dialouts it would call and when; the SIP calls themselves are tested
//! end to end against SIPp in sip-tests/dialout-sched and the dialout
//! suites.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Backend, TestServer};
use mediator::call::router::{CallRecord, CallRouter, DialoutOutcome, DialoutRecord};
use mediator::config::AccountSeed;
use mediator::model::dialout::Dialout;
use mediator::routing::StoreRouter;
use mediator::scheduler::{self, DialoutSchedule};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// One account with `n` DIDs (each scheduled dialout needs a redirect DID
/// of its own).
fn account(n: usize) -> Vec<AccountSeed> {
    vec![AccountSeed {
        name: "Dispatch".into(),
        login: "disp".into(),
        password: "disp-pw".into(),
        dids: (0..n).map(|i| format!("1516206{:04}", 7000 + i)).collect(),
        permissions: vec![],
        callback_url: None,
        callback_secret: None,
    }]
}

async fn create(t: &TestServer, i: usize, delay: i64) -> Value {
    let (s, v) = t
        .post(
            "disp",
            "/dialouts",
            json!({"stage_one_destination_did": format!("1212555{:04}", i),
                   "stage_two_destination_did": format!("1212666{:04}", i),
                   "attributes": {"cnam": "Dispatch"}, "delay": delay}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "create dialout {i}: {v}");
    v["body"].clone()
}

/// Runs SQL on the test database directly (to move a dialout's `fire_at`
/// into the past, as if the server had been down).
async fn sql(t: &TestServer, statement: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&t.db.url).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
        .execute(&pool)
        .await
        .expect("sql");
    pool.close().await;
}

fn schedule(node: &str, poll: Duration) -> DialoutSchedule {
    DialoutSchedule {
        node: node.into(),
        poll,
        max_lateness: Duration::from_secs(300),
        stale_started: Duration::from_secs(86_400),
        batch: 200,
    }
}

/// Starts a scheduler over the server's store whose `place` sends to a
/// channel.
fn start_scheduler(
    t: &TestServer,
    s: DialoutSchedule,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<(Instant, Dialout)>,
    CancellationToken,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    tokio::spawn(scheduler::run_dialouts(
        t.store().clone(),
        s,
        move |d| {
            let _ = tx.send((Instant::now(), d));
        },
        stop.clone(),
    ));
    (rx, stop)
}

async fn claims_are_exclusive(b: Backend) {
    let t = TestServer::start_with(b, account(40), |_| {}).await;
    let mut sids = HashSet::new();
    for i in 0..40 {
        sids.insert(
            create(&t, i, 0).await["dialout_sid"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Four claimers race, five rows at a time, until nothing is left.
    let mut tasks = Vec::new();
    for n in 0..4 {
        let store = t.store().clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let now = mediator::model::now_ms();
                let batch = store
                    .claim_due_dialouts(now, &format!("node{n}"), 5)
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|d| d.dialout_sid));
            }
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    assert_eq!(claimed.len(), 40, "each dialout claimed exactly once");
    assert_eq!(claimed.iter().cloned().collect::<HashSet<_>>(), sids);
    // A started dialout is never claimed again, even much later.
    let later = mediator::model::now_ms() + 86_400_000;
    assert!(
        t.store()
            .claim_due_dialouts(later, "late", 100)
            .await
            .unwrap()
            .is_empty()
    );
    // It has begun: it cannot be changed or cancelled (409 naming its
    // state), and it is no longer listed among the scheduled ones.
    let sid = claimed[0].clone();
    let path = format!("/dialouts/{sid}");
    let (s, v) = t.patch("disp", &path, json!({"delay": 60})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["body"]["errors"][0]["field"], "dialout_sid");
    let msg = v["body"]["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("state started"), "{msg}");
    let (s, _) = t
        .put(
            "disp",
            &path,
            json!({"stage_one_destination_did": "12125550001", "stage_two_destination_did": "12125550002"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = t.delete("disp", &path).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = t.get("disp", &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = t.get("disp", "/dialouts").await;
    assert_eq!(list["body"]["total"], 0);
    // An unknown SID is still 404.
    let (s, _) = t.delete("disp", "/dialouts/nosuchdialout").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    t.stop().await;
}

fn leg(stage: u8, d: &Value, status: u16, answered: bool) -> CallRecord {
    let start = chrono::Utc::now() - chrono::Duration::seconds(30);
    let dst = if stage == 1 {
        "stage_one_destination_did"
    } else {
        "stage_two_destination_did"
    };
    CallRecord {
        call_sid: format!("leg{stage}{}", d["dialout_sid"].as_str().unwrap()),
        binding_sid: None,
        number_src: d["redirect_did"].as_str().unwrap().into(),
        number_dst: d[dst].as_str().unwrap().into(),
        number_redirect: d["redirect_did"].as_str().unwrap().into(),
        date_start: start,
        date_answer: answered.then(|| start + chrono::Duration::seconds(5)),
        date_stop: start + chrono::Duration::seconds(25),
        duration_secs: if answered { 20 } else { 0 },
        sip_status: status,
        hangup_side: Some("callee".into()),
    }
}

async fn finish_records_legs_and_removes(b: Backend) {
    let t = TestServer::start_with(b, account(4), |_| {}).await;
    let d = create(&t, 1, 0).await;
    let sid = d["dialout_sid"].as_str().unwrap().to_string();
    let claimed = t
        .store()
        .claim_due_dialouts(mediator::model::now_ms(), "n1", 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let router = StoreRouter::new(t.store().clone());
    router
        .finish_dialout(DialoutRecord {
            dialout_sid: sid.clone(),
            account_sid: d["account_sid"].as_str().unwrap().into(),
            outcome: DialoutOutcome::StageTwoBusy,
            legs: vec![leg(1, &d, 200, true), leg(2, &d, 486, false)],
        })
        .await
        .expect("finish");
    // The dialout is gone from the API: 404, not 409.
    let path = format!("/dialouts/{sid}");
    let (s, _) = t.patch("disp", &path, json!({"delay": 60})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t.delete("disp", &path).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Two records, one per leg, with the dialout's SID, outcome and
    // attributes.
    let (s, v) = t
        .get(
            "disp",
            &format!("/calls?filter=dialout_sid+eq+{sid}&order=number_dst"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["body"]["total"], 2, "{v}");
    let items = v["body"]["items"].as_array().unwrap();
    for (c, (dst, status)) in items.iter().zip([
        (d["stage_one_destination_did"].clone(), 200),
        (d["stage_two_destination_did"].clone(), 486),
    ]) {
        assert_eq!(c["type"], "dialout");
        assert_eq!(c["direction"], "outbound");
        assert_eq!(c["dialout_sid"], sid.as_str());
        assert_eq!(c["reference_sid"], sid.as_str());
        assert_eq!(c["outcome"], "stage_two_busy");
        assert_eq!(c["number_dst"], dst);
        assert_eq!(c["number_src"], d["redirect_did"]);
        assert_eq!(c["sip_status"], status);
        assert_eq!(c["attributes"]["cnam"], "Dispatch");
        assert_eq!(c["account_sid"], d["account_sid"]);
    }
    // Binding calls show no dialout fields.
    let (_, v) = t.get("disp", "/calls?filter=outcome+eq+connected").await;
    assert_eq!(v["body"]["total"], 0);
    t.stop().await;
}

async fn delay_zero_fires_at_once_and_delayed_when_due(b: Backend) {
    let t = TestServer::start_with(b, account(6), |_| {}).await;
    // A long poll: only the notify of a create can wake it in time.
    let (mut placed, stop) = start_scheduler(&t, schedule("n1", Duration::from_secs(60)));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let posted = Instant::now();
    let d = create(&t, 1, 0).await;
    let (at, got) = tokio::time::timeout(Duration::from_secs(5), placed.recv())
        .await
        .expect("delay 0 placed")
        .expect("channel open");
    assert_eq!(got.dialout_sid, d["dialout_sid"].as_str().unwrap());
    assert_eq!(got.attributes["cnam"], "Dispatch");
    assert!(
        at.duration_since(posted) < Duration::from_millis(1000),
        "delay 0 placed after {:?}",
        at.duration_since(posted)
    );
    // Delay 2 s: not before it is due, and soon after.
    let posted = Instant::now();
    let d = create(&t, 2, 2).await;
    let (at, got) = tokio::time::timeout(Duration::from_secs(10), placed.recv())
        .await
        .expect("delay 2 placed")
        .expect("channel open");
    assert_eq!(got.dialout_sid, d["dialout_sid"].as_str().unwrap());
    let after = at.duration_since(posted);
    assert!(
        after >= Duration::from_millis(1900) && after < Duration::from_millis(3500),
        "delay 2 placed after {after:?}"
    );
    // Rescheduled by PATCH to a later time: fires then, once.
    let d = create(&t, 3, 600).await;
    let path = format!("/dialouts/{}", d["dialout_sid"].as_str().unwrap());
    let (s, v) = t.patch("disp", &path, json!({"delay": 1})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, got) = tokio::time::timeout(Duration::from_secs(5), placed.recv())
        .await
        .expect("rescheduled placed")
        .expect("channel open");
    assert_eq!(got.dialout_sid, d["dialout_sid"].as_str().unwrap());
    // A cancelled one never fires.
    let d = create(&t, 4, 1).await;
    let (s, _) = t
        .delete(
            "disp",
            &format!("/dialouts/{}", d["dialout_sid"].as_str().unwrap()),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(
        tokio::time::timeout(Duration::from_secs(2), placed.recv())
            .await
            .is_err(),
        "a deleted dialout was placed"
    );
    stop.cancel();
    t.stop().await;
}

async fn due_long_ago_is_missed_not_placed(b: Backend) {
    let t = TestServer::start_with(b, account(6), |_| {}).await;
    let old = create(&t, 1, 3600).await;
    let old_sid = old["dialout_sid"].as_str().unwrap().to_string();
    let recent = create(&t, 2, 3600).await;
    let recent_sid = recent["dialout_sid"].as_str().unwrap().to_string();
    // As if the server had been down: one was due an hour ago (beyond the
    // 300 s lateness), one 60 s ago (within it).
    let now = mediator::model::now_ms();
    sql(
        &t,
        &format!(
            "UPDATE dialouts SET fire_at = {} WHERE dialout_sid = '{old_sid}'",
            now - 3_600_000
        ),
    )
    .await;
    sql(
        &t,
        &format!(
            "UPDATE dialouts SET fire_at = {} WHERE dialout_sid = '{recent_sid}'",
            now - 60_000
        ),
    )
    .await;
    let (mut placed, stop) = start_scheduler(&t, schedule("n1", Duration::from_millis(200)));
    let (_, got) = tokio::time::timeout(Duration::from_secs(5), placed.recv())
        .await
        .expect("the recent one is placed")
        .expect("channel open");
    assert_eq!(got.dialout_sid, recent_sid);
    assert!(
        tokio::time::timeout(Duration::from_secs(1), placed.recv())
            .await
            .is_err(),
        "the one due an hour ago was placed"
    );
    // The missed one is recorded (one row, no SIP status) and removed.
    let (_, v) = t
        .get("disp", &format!("/calls?filter=dialout_sid+eq+{old_sid}"))
        .await;
    assert_eq!(v["body"]["total"], 1, "{v}");
    let c = &v["body"]["items"][0];
    assert_eq!(c["outcome"], "missed");
    assert_eq!(c["sip_status"], 0);
    assert_eq!(c["hangup_side"], "system");
    assert_eq!(c["number_dst"], old["stage_one_destination_did"]);
    assert_eq!(c["number_redirect"], old["redirect_did"]);
    assert_eq!(c["duration"], 0);
    assert!(c["date_talk"].is_null());
    let (s, _) = t.get("disp", &format!("/dialouts/{old_sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = t.delete("disp", &format!("/dialouts/{old_sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    stop.cancel();
    t.stop().await;
}

async fn two_schedulers_place_each_once(b: Backend) {
    let t = TestServer::start_with(b, account(30), |_| {}).await;
    let (mut one, stop1) = start_scheduler(&t, schedule("n1", Duration::from_millis(50)));
    let (mut two, stop2) = start_scheduler(&t, schedule("n2", Duration::from_millis(50)));
    let mut sids = HashSet::new();
    for i in 0..30 {
        sids.insert(
            create(&t, i, 1).await["dialout_sid"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop1.cancel();
    stop2.cancel();
    let mut placed = Vec::new();
    while let Ok((_, d)) = one.try_recv() {
        placed.push(d.dialout_sid);
    }
    while let Ok((_, d)) = two.try_recv() {
        placed.push(d.dialout_sid);
    }
    assert_eq!(placed.len(), 30, "each dialout placed exactly once");
    assert_eq!(placed.into_iter().collect::<HashSet<_>>(), sids);
    t.stop().await;
}

async fn stale_started_is_cancelled_once(b: Backend) {
    let t = TestServer::start_with(b, account(4), |_| {}).await;
    let d = create(&t, 1, 0).await;
    let sid = d["dialout_sid"].as_str().unwrap().to_string();
    // Claimed by a node that then died (no call ever reports its end).
    let claimed = t
        .store()
        .claim_due_dialouts(mediator::model::now_ms(), "dead-node", 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    sql(
        &t,
        &format!(
            "UPDATE dialouts SET started_at = {} WHERE dialout_sid = '{sid}'",
            mediator::model::now_ms() - 7_200_000
        ),
    )
    .await;
    let mut s = schedule("n2", Duration::from_millis(100));
    s.stale_started = Duration::from_secs(3600);
    let (mut placed, stop) = start_scheduler(&t, s);
    let mut found = Value::Null;
    for _ in 0..50 {
        let (_, v) = t
            .get("disp", &format!("/calls?filter=dialout_sid+eq+{sid}"))
            .await;
        if v["body"]["total"] == 1 {
            found = v["body"]["items"][0].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found["outcome"], "cancelled", "{found}");
    assert!(
        placed.try_recv().is_err(),
        "a started dialout was placed again"
    );
    let (s, _) = t.delete("disp", &format!("/dialouts/{sid}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    stop.cancel();
    t.stop().await;
}

async fn racing_creates_sharing_a_number_in_any_field(b: Backend) {
    let t = TestServer::start_with(b, account(20), |_| {}).await;
    // Eighteen concurrent POSTs that all carry the account's DID
    // 15162067000, as stage one, as stage two or as the redirect DID:
    // exactly one may be scheduled; the others get 409 naming a field.
    let shared = "15162067000";
    let mut tasks = Vec::new();
    for i in 0..18 {
        let http = t.http.clone();
        let url = format!("{}/dialouts", t.base);
        let one = format!("1212777{i:04}");
        let two = format!("1212778{i:04}");
        let body = match i % 3 {
            0 => {
                json!({"stage_one_destination_did": shared, "stage_two_destination_did": two, "delay": 600})
            }
            1 => {
                json!({"stage_one_destination_did": one, "stage_two_destination_did": shared, "delay": 600})
            }
            _ => json!({"stage_one_destination_did": one, "stage_two_destination_did": two,
                        "redirect_did": shared, "delay": 600}),
        };
        tasks.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .basic_auth("disp", Some("disp-pw"))
                .json(&body)
                .send()
                .await
                .expect("sent");
            let status = res.status();
            let v: Value = res.json().await.expect("json");
            (status, v)
        }));
    }
    let (mut ok, mut conflict) = (0, 0);
    for task in tasks {
        let (status, v) = task.await.unwrap();
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::CONFLICT => {
                conflict += 1;
                assert_eq!(v["status"], 409);
                assert!(
                    v["body"]["errors"][0]["field"]
                        .as_str()
                        .is_some_and(|f| f.ends_with("_did")),
                    "{v}"
                );
            }
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!((ok, conflict), (1, 17));
    let (_, list) = t.get("disp", "/dialouts?limit=100").await;
    assert_eq!(list["body"]["total"], 1);
    t.stop().await;
}

on_both_stores!(
    racing_creates_sharing_a_number_in_any_field,
    claims_are_exclusive,
    finish_records_legs_and_removes,
    delay_zero_fires_at_once_and_delayed_when_due,
    due_long_ago_is_missed_not_placed,
    two_schedulers_place_each_once,
    stale_started_is_cancelled_once,
);
