//! `/v1/events`: the change log as Server-Sent Events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;

use super::Api;

#[derive(Debug, Deserialize)]
pub(super) struct EventsQuery {
    prefix: Option<String>,
}

pub(super) async fn events(
    State(api): State<Api>,
    Query(q): Query<EventsQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let prefix = q.prefix.unwrap_or_default();
    let rx = api.shared.changes.subscribe();
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(move |c| {
        let prefix = prefix.clone();
        async move {
            let c = c.ok()?;
            if !c.path.starts_with(&prefix) {
                return None;
            }
            let data = json!({"index": c.index, "path": c.path, "what": c.what}).to_string();
            Some(Ok(SseEvent::default()
                .event(c.what)
                .id(c.index.to_string())
                .data(data)))
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(5)))
}
