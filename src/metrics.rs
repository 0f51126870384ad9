//! Prometheus metrics (`metrics` facade, `metrics-exporter-prometheus`
//! rendering the text format at `/metrics`).
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `mediator_calls_attempted_total` | counter | | calls that reached call control (one per call detail record) |
//! | `mediator_calls_answered_total` | counter | | of those, answered (final status 200) |
//! | `mediator_calls_failed_total` | counter | `status` | of those, not answered, by the final SIP status sent to the caller |
//! | `mediator_calls_active` | gauge | | calls in progress (ringing or established) |
//! | `mediator_rtp_streams_active` | gauge | | RTP port pairs in use (one per anchored leg) |
//! | `mediator_call_setup_seconds` | histogram | | RFC 6076 §4.2 Session Request Delay: from A's INVITE to the first response from the B leg other than 100 |
//! | `mediator_api_requests_total` | counter | `method`, `route`, `status` | REST requests by matched route template |
//! | `mediator_api_request_duration_seconds` | histogram | `method`, `route` | their latency |
//! | `mediator_callbacks_total` | counter | `outcome` (`delivered`, `failed`, `given_up`) | callback delivery attempts |
//! | `mediator_database_errors_total` | counter | `kind` (`unavailable`, `database`, `corrupt`, `migrate`) | store errors |
//! | `mediator_dialouts_total` | counter | `outcome` (the Call object's `outcome`: `connected`, `not_confirmed`, `missed`, ...) | dialouts ended, placed or not (docs/api.md, "Calls") |
//! | `mediator_dialout_start_lateness_seconds` | histogram | | how late each placed dialout was claimed after its `fire_at` (docs/dialouts.md) |
//!
//! Hooks in call code are one line each.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::store::StoreError;

/// Buckets of the latency histograms, in seconds (up to 600: a dialout's
/// start lateness runs to `[dialouts] max_lateness_secs`, 300 by default).
const BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    300.0, 600.0,
];

type GaugeSource = Box<dyn Fn() -> (usize, usize) + Send + Sync>;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static GAUGES: std::sync::Mutex<Option<GaugeSource>> = std::sync::Mutex::new(None);

/// Installs the process's recorder (once; later calls return the same
/// handle). `None` when another recorder was installed first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "mediator_calls_attempted_total",
        "Calls that reached call control"
    );
    describe_counter!("mediator_calls_answered_total", "Calls answered");
    describe_counter!(
        "mediator_calls_failed_total",
        "Calls not answered, by final SIP status"
    );
    describe_gauge!("mediator_calls_active", "Calls in progress");
    describe_gauge!("mediator_rtp_streams_active", "RTP port pairs in use");
    describe_histogram!(
        "mediator_call_setup_seconds",
        "Session Request Delay (RFC 6076): INVITE to the B leg's first non-100 response"
    );
    describe_counter!("mediator_api_requests_total", "REST API requests");
    describe_histogram!(
        "mediator_api_request_duration_seconds",
        "REST API request latency"
    );
    describe_counter!(
        "mediator_callbacks_total",
        "Callback delivery attempts by outcome"
    );
    describe_counter!("mediator_database_errors_total", "Store errors by kind");
    describe_counter!("mediator_dialouts_total", "Dialouts ended, by outcome");
    describe_histogram!(
        "mediator_dialout_start_lateness_seconds",
        "Delay from a dialout's fire_at to its placement"
    );
}

/// Where the gauges of calls and RTP streams are read at each scrape.
pub fn set_gauge_source(f: impl Fn() -> (usize, usize) + Send + Sync + 'static) {
    if let Ok(mut g) = GAUGES.lock() {
        *g = Some(Box::new(f));
    }
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let Some(h) = handle() else {
        return String::new();
    };
    if let Ok(g) = GAUGES.lock()
        && let Some(f) = g.as_ref()
    {
        let (calls, rtp) = f();
        gauge!("mediator_calls_active").set(calls as f64);
        gauge!("mediator_rtp_streams_active").set(rtp as f64);
    }
    h.render()
}

/// A call detail record was written: the call was attempted and ended with
/// `status` to the caller.
pub fn call_recorded(status: u16) {
    counter!("mediator_calls_attempted_total").increment(1);
    if status == 200 {
        counter!("mediator_calls_answered_total").increment(1);
    } else {
        counter!("mediator_calls_failed_total", "status" => status.to_string()).increment(1);
    }
}

/// A dialout ended (or was given up unplaced) with `outcome`, the Call
/// object's `outcome` value, and that was recorded in the store.
pub fn dialout_ended(outcome: &'static str) {
    counter!("mediator_dialouts_total", "outcome" => outcome).increment(1);
}

/// A dialout was placed `late_ms` milliseconds after its `fire_at` (0 or
/// more).
pub fn dialout_placed(late_ms: i64) {
    histogram!("mediator_dialout_start_lateness_seconds").record(late_ms.max(0) as f64 / 1000.0);
}

/// A store error happened.
pub fn db_error(e: &StoreError) {
    if let Some(kind) = e.metric_kind() {
        counter!("mediator_database_errors_total", "kind" => kind).increment(1);
    }
}

/// A callback attempt ended with `outcome`.
pub fn callback_outcome(outcome: &'static str) {
    counter!("mediator_callbacks_total", "outcome" => outcome).increment(1);
}

/// Measures a call's set-up latency (RFC 6076 Session Request Delay): made
/// when A's INVITE arrives; the first B-leg response other than 100 is
/// observed, later ones are not.
#[derive(Debug)]
pub struct SetupTimer {
    started: Instant,
    done: bool,
}

impl SetupTimer {
    /// Starts at the INVITE's arrival.
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
            done: false,
        }
    }

    /// A response with `code` arrived on the B leg.
    pub fn b_response(&mut self, code: u16) {
        if code > 100 && !self.done {
            self.done = true;
            histogram!("mediator_call_setup_seconds").record(self.started.elapsed().as_secs_f64());
        }
    }
}

/// Axum middleware: counts REST requests by method, route template and
/// status, with their latency.
pub async fn track_api(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    counter!("mediator_api_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    histogram!("mediator_api_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_timer_observes_the_first_non_100_response_only() {
        let mut t = SetupTimer::start();
        t.b_response(100);
        assert!(!t.done);
        t.b_response(180);
        assert!(t.done);
        t.b_response(200);
        assert!(t.done);
    }
}
