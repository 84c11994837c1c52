//! A run's history, as a JSON list or as a live Server-Sent Events stream,
//! and the logs of a step's attempts.
//!
//! The stream subscribes to the engine before it reads the stored history,
//! so no event falls between the two; live events are numbered, so a
//! duplicate is dropped and a gap (a slow client the broadcast left
//! behind) is filled from the store. Every event is sent once, in order.
//! A client that reconnects with `Last-Event-ID` continues after it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::runs::{owned_run, parse_id};
use crate::model::{Event, EventKind, RunId};
use crate::sandbox::AttemptLogs;

/// A run's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    /// In order; each has `seq`, `at` (ms since the epoch), `event` (its
    /// kind) and the kind's fields.
    #[schema(value_type = Vec<Object>)]
    events: Vec<Value>,
}

fn numbered(seq: u32, event: &Event) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        fields.insert("seq".into(), seq.into());
    }
    value
}

/// A run's events: JSON, or with `Accept: text/event-stream` a live
/// stream that ends when the run does.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/events",
    tag = "runs",
    params(
        ("id" = u64, Path, description = "The run's id"),
        ("Last-Event-ID" = Option<u32>, Header, description = "Stream only: continue after this event"),
    ),
    responses(
        (status = 200, description = "The history (JSON) or the live stream (text/event-stream)", body = EventList),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn run_events(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let run = owned_run(&state, &tenant.id, parse_id(&id)?)?;
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        let events = state.db.events_from(run.id, 0)?;
        let events = events.iter().map(|(seq, e)| numbered(*seq, e)).collect();
        return Ok(Json(EventList { events }).into_response());
    }
    let from = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok())
        .map_or(0, |last| last + 1);
    let updates = state.engine.subscribe();
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(follow(state.clone(), run.id, from, updates, sender));
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Sends `run`'s events from `next` on until the run ends, the client
/// goes, or the server stops.
async fn follow(
    state: Arc<ApiState>,
    run: RunId,
    mut next: u32,
    mut updates: broadcast::Receiver<crate::engine::Update>,
    sender: mpsc::Sender<SseEvent>,
) {
    let mut stopping = state.stopping.clone();
    loop {
        // The status is read before the history: if the run had ended, the
        // history holds its end; if not, its end comes live.
        let ended = match state.db.run(run) {
            Ok(Some(record)) => record.status.is_final(),
            _ => return,
        };
        let Ok(stored) = state.db.events_from(run, next) else {
            return;
        };
        for (seq, event) in stored {
            if !send(&sender, seq, &event).await {
                return;
            }
            next = seq + 1;
        }
        if ended {
            return;
        }
        loop {
            tokio::select! {
                _ = stopping.changed() => return,
                () = sender.closed() => return,
                update = updates.recv() => match update {
                    Ok(update) if update.run == run => {
                        if update.seq < next {
                            continue;
                        }
                        if update.seq > next {
                            break; // a gap: fill it from the store
                        }
                        if !send(&sender, update.seq, &update.event).await {
                            return;
                        }
                        next += 1;
                        if matches!(update.event.kind, EventKind::RunFinished { .. }) {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

async fn send(sender: &mpsc::Sender<SseEvent>, seq: u32, event: &Event) -> bool {
    let data = numbered(seq, event);
    let kind = data["event"].as_str().unwrap_or("event").to_string();
    let event = SseEvent::default()
        .id(seq.to_string())
        .event(kind)
        .data(data.to_string());
    sender.send(event).await.is_ok()
}

/// One attempt's logs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptLogView {
    /// The item's index, for a `for_each` step.
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<u32>,
    /// 1, 2, ...
    attempt: u32,
    /// How it ended.
    outcome: String,
    /// Log lines, stdout and stderr, as kept under the cap.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    logs: AttemptLogs,
}

/// A step's logs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepLogs {
    /// The run.
    run: u64,
    /// The step.
    step: String,
    /// Every finished attempt of the step (and of its items), in order.
    attempts: Vec<AttemptLogView>,
}

/// The logs of every attempt of a step.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/steps/{step}/logs",
    tag = "runs",
    params(
        ("id" = u64, Path, description = "The run's id"),
        ("step" = String, Path, description = "The step's id"),
    ),
    responses((status = 200, body = StepLogs), (status = 404, body = ErrorBody))
)]
pub async fn step_logs(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path((id, step)): Path<(String, String)>,
) -> ApiResult<Json<StepLogs>> {
    let run = owned_run(&state, &tenant.id, parse_id(&id)?)?;
    let workflow = state.engine.workflow(&run.workflow_digest)?;
    let (index, _) = workflow
        .step(&step)
        .ok_or_else(|| ApiError::not_found(format!("step {step:?} of run {}", run.id)))?;
    let attempts = state
        .db
        .attempts(run.id)?
        .into_iter()
        .filter(|(key, _)| key.step as usize == index)
        .map(|(key, attempt)| AttemptLogView {
            item: key.item,
            attempt: attempt.attempt,
            outcome: attempt.outcome.kind().to_string(),
            logs: attempt.logs,
        })
        .collect();
    Ok(Json(StepLogs {
        run: run.id.0,
        step,
        attempts,
    }))
}
