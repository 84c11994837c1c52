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
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

use super::ApiState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::{self, Path};
use super::runs::{RunPath, owned_run};
use crate::model::{Event, EventKind, RunId};
use crate::sandbox::http::HttpCall;
use crate::sandbox::{AttemptLogs, Outcome};
use crate::store::cluster::Notice;

/// A run's history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventList {
    /// In order.
    events: Vec<NumberedEvent<'static>>,
}

/// One event of a run's history with its place in it: `seq`, `at` and
/// `event` (the kind), with the kind's fields beside them.
#[derive(Debug, Serialize)]
pub struct NumberedEvent<'a> {
    /// 0 for the first event, then counting up.
    seq: u32,
    #[serde(flatten)]
    event: std::borrow::Cow<'a, Event>,
}

/// The schema is one object per kind of event, each with `seq` and `at`
/// beside the kind's own fields: what is sent, and a shape that generated
/// clients read (a `oneOf` inside an `allOf` is one many cannot).
impl utoipa::PartialSchema for NumberedEvent<'_> {
    fn schema() -> RefOr<Schema> {
        let integer = |description: &str, format| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(format)))
                .minimum(Some(0))
                .description(Some(description))
                .build()
        };
        let mut kinds = match <EventKind as utoipa::PartialSchema>::schema() {
            RefOr::T(Schema::OneOf(kinds)) => kinds,
            other => return other,
        };
        for kind in &mut kinds.items {
            if let RefOr::T(Schema::Object(object)) = kind {
                object.properties.insert(
                    "seq".into(),
                    integer(
                        "0 for the first event, then counting up: the SSE `id`, and what `Last-Event-ID` names",
                        KnownFormat::Int32,
                    )
                    .into(),
                );
                object.properties.insert(
                    "at".into(),
                    integer("When it happened (ms since the epoch)", KnownFormat::Int64).into(),
                );
                object.required.extend(["seq".to_string(), "at".to_string()]);
            }
        }
        kinds.description = Some("One event of a run's history, with its place in it.".into());
        RefOr::T(Schema::OneOf(kinds))
    }
}

impl utoipa::ToSchema for NumberedEvent<'_> {
    fn name() -> std::borrow::Cow<'static, str> {
        "NumberedEvent".into()
    }
}

/// The headers of an event stream, as documented; `run_events` reads
/// them (`Last-Event-ID` through `params::last_event_id`).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct EventHeaders {
    /// `text/event-stream` for a live stream; anything else gets the
    /// history as JSON.
    #[param(rename = "Accept", value_type = String, required = false)]
    _accept: Option<String>,
    /// Stream only: continue after the event with this `seq`.
    #[param(rename = "Last-Event-ID", value_type = u32, required = false)]
    _last_event_id: Option<u32>,
}

/// A run's events: JSON, or with `Accept: text/event-stream` a live
/// stream that ends when the run does.
///
/// In the stream each event's `id:` is its `seq`, its `event:` the kind,
/// and its `data:` the event as one JSON line, shaped as in the list.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/events",
    tag = "runs",
    params(RunPath, EventHeaders),
    responses(
        (status = 200, description = "The history, or with `Accept: text/event-stream` the live stream",
            content(
                (EventList = "application/json"),
                (String = "text/event-stream"),
            )),
        (status = 404, description = "No such run (`not_found`)", body = ErrorBody),
    )
)]
pub async fn run_events(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(RunPath { id }): Path<RunPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let last_event = params::last_event_id(&headers)?;
    let run = owned_run(&state, &tenant.id, RunId(id)).await?;
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream {
        let events = state.store.events_from(&run.tenant, run.id, 0).await?;
        let events = events
            .into_iter()
            .map(|(seq, event)| NumberedEvent {
                seq,
                event: std::borrow::Cow::Owned(event),
            })
            .collect();
        return Ok(Json(EventList { events }).into_response());
    }
    let from = last_event.map_or(0, |last| last.saturating_add(1));
    let updates = state.engine.subscribe();
    let notices = state.engine.cluster().map(|(cluster, _)| cluster.notices());
    let (sender, receiver) = mpsc::channel(256);
    tokio::spawn(follow(
        state.clone(),
        run.tenant,
        run.id,
        from,
        (updates, notices),
        sender,
    ));
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// Sends `run`'s events from `next` on until the run ends, the client
/// goes, or the server stops. Events of runs this node holds come live
/// from its engine; in a cluster, the database's notices say when a run
/// another node holds advanced, and its events are read from the store.
async fn follow(
    state: Arc<ApiState>,
    tenant: String,
    run: RunId,
    mut next: u32,
    (mut updates, mut notices): (
        broadcast::Receiver<crate::engine::Update>,
        Option<broadcast::Receiver<Notice>>,
    ),
    sender: mpsc::Sender<SseEvent>,
) {
    let mut stopping = state.stopping.clone();
    loop {
        // The status is read before the history: if the run had ended, the
        // history holds its end; if not, its end comes live.
        let ended = match state.store.run(run).await {
            Ok(Some(record)) => record.status.is_final(),
            _ => return,
        };
        let Ok(stored) = state.store.events_from(&tenant, run, next).await else {
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
                () = advanced_elsewhere(&mut notices, run, next) => break,
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

/// Completes when the database says `run` advanced to event `next` or
/// past it, when notices may have been missed, or after a second (a run
/// another node holds is looked at again that often anyway); never
/// without a cluster.
async fn advanced_elsewhere(notices: &mut Option<broadcast::Receiver<Notice>>, run: RunId, next: u32) {
    let Some(notices) = notices else {
        return std::future::pending().await;
    };
    let heard = async {
        loop {
            match notices.recv().await {
                Ok(Notice::Advanced(runs)) if runs.iter().any(|&(id, seq)| id == run && seq >= next) => return,
                Ok(Notice::Missed) | Err(broadcast::error::RecvError::Lagged(_)) => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), heard).await;
}

async fn send(sender: &mpsc::Sender<SseEvent>, seq: u32, event: &Event) -> bool {
    let data = serde_json::to_string(&NumberedEvent {
        seq,
        event: std::borrow::Cow::Borrowed(event),
    })
    .unwrap_or_default();
    let event = SseEvent::default()
        .id(seq.to_string())
        .event(event.kind.name())
        .data(data);
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
    #[schema(schema_with = Outcome::kind_schema)]
    outcome: &'static str,
    /// Log lines, stdout and stderr, as kept under the cap.
    #[serde(flatten)]
    logs: AttemptLogs,
    /// Its outbound HTTP requests, refused ones included.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http: Vec<HttpCall>,
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

/// The step a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct StepPath {
    /// The run's id.
    id: u64,
    /// The step's id, as in the workflow.
    step: String,
}

/// The logs of every attempt of a step.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/steps/{step}/logs",
    tag = "runs",
    params(StepPath),
    responses(
        (status = 200, description = "Every attempt's logs", body = StepLogs),
        (status = 404, description = "No such run, or no such step in it (`not_found`)", body = ErrorBody),
    )
)]
pub async fn step_logs(
    State(state): State<Arc<ApiState>>,
    Caller(tenant): Caller,
    Path(StepPath { id, step }): Path<StepPath>,
) -> ApiResult<Json<StepLogs>> {
    let run = owned_run(&state, &tenant.id, RunId(id)).await?;
    let workflow = state.engine.workflow(&run.tenant, &run.workflow_digest).await?;
    let (index, _) = workflow
        .step(&step)
        .ok_or_else(|| ApiError::not_found(format!("step {step:?} of run {}", run.id)))?;
    let attempts = state
        .store
        .attempts(&run.tenant, run.id)
        .await?
        .into_iter()
        .filter(|(key, _)| key.step as usize == index)
        .map(|(key, attempt)| AttemptLogView {
            item: key.item,
            attempt: attempt.attempt,
            outcome: attempt.outcome.kind(),
            logs: attempt.logs,
            http: attempt.http,
        })
        .collect();
    Ok(Json(StepLogs {
        run: run.id.0,
        step,
        attempts,
    }))
}
