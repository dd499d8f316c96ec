//! Prometheus metrics: logins and token issues by result, request latency by route and
//! status, and hashing jobs in flight. Each application has its own registry (no global
//! state), rendered as OpenMetrics text at `GET /metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The media type of the exposition format.
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

/// A method as a label: the standard ones by name, anything else `OTHER`, so that a
/// client inventing methods cannot add series.
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "OTHER",
    }
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms to ~4 s: cached reads at the bottom, password hashing under load at the top.
    Histogram::new([
        0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ])
}

/// The application's metrics.
pub struct Metrics {
    registry: Registry,
    logins: Family<ResultLabels, Counter>,
    token_issues: Family<ResultLabels, Counter>,
    requests: HistogramFamily,
    hashing_jobs: Gauge,
    readiness_probes: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sesame");
        let logins = Family::<ResultLabels, Counter>::default();
        registry.register(
            "logins",
            "First-party password logins by result (success, invalid_credentials, throttled, rejected, error)",
            logins.clone(),
        );
        let token_issues = Family::<ResultLabels, Counter>::default();
        registry.register(
            "token_issues",
            "API-key exchanges for access tokens by result (success, invalid_client, invalid_request, throttled, error)",
            token_issues.clone(),
        );
        let requests: HistogramFamily = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer a request, by method, route and status",
            requests.clone(),
        );
        let readiness_probes = Gauge::default();
        registry.register(
            "readiness_probes",
            "Readiness probes that reached the database (at most one a second)",
            readiness_probes.clone(),
        );
        let hashing_jobs = Gauge::default();
        registry.register(
            "hashing_jobs",
            "Password hashing jobs running or waiting for the bounded pool",
            hashing_jobs.clone(),
        );
        Self {
            registry,
            logins,
            token_issues,
            requests,
            hashing_jobs,
            readiness_probes,
        }
    }
}

/// How a login or a token request ended, decided where it ended (never read back from a
/// rendered response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Wrong credentials: `invalid_credentials` for a login, `invalid_client` for a token.
    Refused,
    Throttled,
    /// Any other refusal of the request (a bad body, a scope not granted).
    Rejected,
    /// The server or its database failed.
    Error,
}

impl Outcome {
    fn label(self, refused: &'static str) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Refused => refused,
            Self::Throttled => "throttled",
            Self::Rejected => "rejected",
            Self::Error => "error",
        }
    }
}

impl Metrics {
    pub fn record_login(&self, outcome: Outcome) {
        self.logins
            .get_or_create(&ResultLabels {
                result: outcome.label("invalid_credentials"),
            })
            .inc();
    }

    pub fn record_token_issue(&self, outcome: Outcome) {
        self.token_issues
            .get_or_create(&ResultLabels {
                result: outcome.label("invalid_client"),
            })
            .inc();
    }

    /// The exposition text, with the hashing gauge read at scrape time.
    pub fn render(&self, hashing_jobs: usize, readiness_probes: u64) -> String {
        self.hashing_jobs.set(i64::try_from(hashing_jobs).unwrap_or(i64::MAX));
        self.readiness_probes
            .set(i64::try_from(readiness_probes).unwrap_or(i64::MAX));
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        text
    }
}

/// Records every request's latency under its route template (never the raw path, so
/// ids and tokens in URLs cannot explode the label space or leak).
pub async fn track_requests(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}
