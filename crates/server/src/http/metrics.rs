//! `GET /metrics`: every metric in the Prometheus (OpenMetrics) text
//! format, behind the read-token rule like every other read.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::Api;

/// What Prometheus expects for the OpenMetrics text format.
const CONTENT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(super) async fn metrics(State(api): State<Api>) -> Response {
    ([(CONTENT_TYPE, CONTENT)], crate::metrics::render(api.view())).into_response()
}
