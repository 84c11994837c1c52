//! The HTTP API (v1): modules, workflows, runs with their events and
//! logs, schedules, inbound hooks, secrets, tenants (admin), health, metrics and the OpenAPI document.
//!
//! [`router`] builds the axum router and the OpenAPI document from the
//! same handler annotations, so the document cannot drift from the
//! routes; what whole groups of routes answer (auth, bodies, the store) is
//! declared once in `openapi`. [`serve`] runs it on a listener (over TLS
//! when the config names a certificate: [`tls`]) until a shutdown signal,
//! then drains the engine. Routes sit in a tenant or an
//! admin group whose layer checks the token; handlers read who passed
//! with `Caller` (a tenant) or `Admin`, and look resources up under the
//! caller's tenant only: another tenant's resource is simply not found.

/// Declares the schema of a type from an expression building its
/// `Object`: for types that parse a constrained value, or that only name a
/// schema.
macro_rules! schema {
    ($type:ty, $build:expr) => {
        impl utoipa::PartialSchema for $type {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object($build))
            }
        }
        impl utoipa::ToSchema for $type {}
    };
}

mod admin;
mod approvals;
mod audit;
mod auth;
mod body;
pub mod config;
mod console;
mod error;
mod hooks;
mod keys;
mod metrics;
mod modules;
mod nodes;
mod notifications;
mod openapi;
mod params;
mod runs;
mod schedules;
mod secrets;
mod server;
mod signals;
mod stream;
pub mod tls;
mod trail;
mod workflows;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Router};
use tokio::sync::watch;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::ServerConfig;
pub use error::{ApiError, ApiResult, ErrorBody, ErrorCode, Problem};
pub use metrics::Metrics;
pub use server::{Server, serve};

use crate::engine::Engine;
use crate::sandbox::Sandbox;
use crate::store::Store;
use crate::tenant::RateLimiter;

/// What every handler shares.
pub struct ApiState {
    /// The engine.
    pub engine: Engine,
    /// The store.
    pub store: Arc<dyn Store>,
    /// Validates and precompiles uploaded modules.
    pub sandbox: Sandbox,
    /// Settings.
    pub config: ServerConfig,
    /// The admin token.
    pub admin_token: String,
    /// Start-rate buckets.
    pub limiter: RateLimiter,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Becomes `true` when the server starts shutting down: live streams
    /// end and `/readyz` fails. (Requests are answered only once start-up
    /// has finished, so there is no "not yet ready" state to keep.)
    pub stopping: watch::Receiver<bool>,
    /// When the server started (ms since the epoch).
    pub started_at: crate::model::Millis,
    /// Tenants' secrets; `None` where the server has no master key.
    pub secrets: Option<Arc<crate::secrets::Secrets>>,
}

/// The router and the OpenAPI document describing it.
pub fn router(state: Arc<ApiState>) -> (Router, OpenApi) {
    use openapi::{Guard, guarded};
    let json_limit = axum::extract::DefaultBodyLimit::max(state.config.max_body);
    let module_limit = axum::extract::DefaultBodyLimit::max(state.config.max_module_body);
    let modules = OpenApiRouter::new()
        .routes(routes!(
            modules::put_module,
            modules::get_module,
            modules::delete_module
        ))
        .layer(module_limit);
    let tenant = OpenApiRouter::new()
        .routes(routes!(modules::list_modules))
        .routes(routes!(workflows::put_workflow, workflows::get_workflow))
        .routes(routes!(workflows::list_workflows))
        .routes(routes!(runs::start_run))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(runs::retry_run))
        .routes(routes!(runs::reset_run))
        .routes(routes!(runs::pause_run))
        .routes(routes!(runs::resume_run))
        .routes(routes!(signals::send_signal))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(approvals::list_approvals))
        .routes(routes!(approvals::decide))
        .routes(routes!(stream::run_events))
        .routes(routes!(stream::step_logs))
        .routes(routes!(secrets::put_secret, secrets::delete_secret))
        .routes(routes!(secrets::list_secrets))
        .routes(routes!(
            schedules::put_schedule,
            schedules::get_schedule,
            schedules::delete_schedule
        ))
        .routes(routes!(schedules::list_schedules))
        .routes(routes!(hooks::put_hook, hooks::delete_hook))
        .routes(routes!(hooks::list_hooks))
        .routes(routes!(keys::create_key, keys::list_keys))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(keys::whoami))
        .routes(routes!(audit::tenant_audit))
        .routes(routes!(schedules::pause_schedule))
        .routes(routes!(schedules::resume_schedule))
        .layer(json_limit)
        .merge(modules);
    let admin = OpenApiRouter::new()
        .routes(routes!(admin::create_tenant, admin::list_tenants))
        .routes(routes!(admin::get_tenant, admin::update_tenant))
        .routes(routes!(admin::disable_tenant))
        .routes(routes!(admin::enable_tenant))
        .routes(routes!(admin::create_key, keys::admin_list_keys))
        .routes(routes!(admin::revoke_key))
        .routes(routes!(nodes::list_nodes))
        .routes(routes!(audit::server_audit))
        .layer(json_limit);
    let inbound = OpenApiRouter::new().routes(routes!(hooks::deliver)).layer(json_limit);
    let open = OpenApiRouter::new()
        .merge(inbound)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics::scrape))
        .routes(routes!(openapi_document))
        .routes(routes!(console::root))
        .routes(routes!(console::page))
        .routes(routes!(console::file));
    let (router, mut document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(guarded(tenant, Guard::Tenant, &state))
        .merge(guarded(admin, Guard::Admin, &state))
        .merge(open)
        .split_for_parts();
    openapi::declare_shared(&mut document);
    let served = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
    let router = router
        .layer(Extension(ServedDocument(served)))
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this path does not take that method; see `Allow`",
            )
        })
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(state);
    (router, document)
}

/// A `Location` header naming `path`, a resource just made or found.
/// Paths are built from ids and checked names, so they are valid header
/// values; one that were not would be left out.
fn location(path: String) -> axum::http::HeaderMap {
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = axum::http::HeaderValue::try_from(path) {
        headers.insert(header::LOCATION, value);
    }
    headers
}

/// How the server stands.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// `ok` (healthz); `ready`, `stopping` or `store unreachable`
    /// (readyz).
    status: &'static str,
}

/// Whether the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "server",
    responses((status = 200, description = "The process is up", body = Health))
)]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

/// Whether the server takes work: not stopping, and its store reachable.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "server",
    responses(
        (status = 200, description = "Taking work", body = Health),
        (status = 503, description = "Stopping, or the store cannot be reached", body = Health),
    )
)]
async fn readyz(State(state): State<Arc<ApiState>>) -> (StatusCode, axum::Json<Health>) {
    let status = if *state.stopping.borrow() {
        "stopping"
    } else if !state.store.is_available() {
        "store unreachable"
    } else {
        return (StatusCode::OK, axum::Json(Health { status: "ready" }));
    };
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(Health { status }))
}

/// The OpenAPI document, serialised once.
#[derive(Clone)]
struct ServedDocument(Bytes);

/// This document: every operation, what it takes and all it can answer.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "server",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi_document(Extension(ServedDocument(document)): Extension<ServedDocument>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document)
}
