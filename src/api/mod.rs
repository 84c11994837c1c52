//! The HTTP API (v1): modules, workflows, runs with their events and
//! logs, tenants (admin), health, metrics and the OpenAPI document.
//!
//! [`router`] builds the axum router and the OpenAPI document from the
//! same handler annotations, so the document cannot drift from the
//! routes. [`serve`] runs it on a listener until a shutdown signal, then
//! drains the engine. Every handler takes a `Caller` (a tenant) or
//! `Admin` argument, and looks resources up under the caller's tenant
//! only: another tenant's resource is simply not found.

mod admin;
mod auth;
mod body;
pub mod config;
mod error;
mod metrics;
mod modules;
mod runs;
mod server;
mod stream;
mod workflows;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use config::ServerConfig;
pub use error::{ApiError, ApiResult, ErrorBody};
pub use metrics::Metrics;
pub use server::{Server, serve};

use crate::db::Db;
use crate::engine::Engine;
use crate::sandbox::Sandbox;
use crate::tenant::RateLimiter;

/// What every handler shares.
pub struct ApiState {
    /// The engine.
    pub engine: Engine,
    /// The store.
    pub db: Db,
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
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "weft",
        description = "A durable workflow engine that runs every task as a sandboxed WebAssembly component."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The router and the OpenAPI document describing it.
pub fn router(state: Arc<ApiState>) -> (Router, OpenApi) {
    let json_limit = axum::extract::DefaultBodyLimit::max(state.config.max_body);
    let module_limit = axum::extract::DefaultBodyLimit::max(state.config.max_module_body);
    let modules = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(
            modules::put_module,
            modules::get_module,
            modules::delete_module
        ))
        .layer(module_limit);
    let rest = OpenApiRouter::new()
        .routes(routes!(modules::list_modules))
        .routes(routes!(workflows::put_workflow, workflows::get_workflow))
        .routes(routes!(workflows::list_workflows))
        .routes(routes!(runs::start_run))
        .routes(routes!(runs::list_runs))
        .routes(routes!(runs::get_run))
        .routes(routes!(runs::cancel_run))
        .routes(routes!(runs::retry_run))
        .routes(routes!(stream::run_events))
        .routes(routes!(stream::step_logs))
        .routes(routes!(admin::create_tenant, admin::list_tenants))
        .routes(routes!(admin::disable_tenant))
        .routes(routes!(admin::enable_tenant))
        .routes(routes!(admin::create_key))
        .routes(routes!(admin::revoke_key))
        .layer(json_limit);
    let (router, openapi) = modules.merge(rest).split_for_parts();
    let document = openapi.clone();
    let router = router
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::scrape))
        .route(
            "/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document) }
            }),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(state);
    (router, openapi)
}

/// Whether the process is up.
async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Whether the server takes work: not stopping.
async fn readyz(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    if !*state.stopping.borrow() {
        (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not ready"})),
        )
    }
}
