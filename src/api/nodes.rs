//! `GET /v1/admin/nodes`: the nodes serving this store, with the admin
//! token only.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::ApiState;
use super::auth::Admin;
use super::error::ApiResult;
use crate::store::cluster::{NodeRecord, NodeState};

/// The nodes serving this store.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeList {
    /// Live nodes, and nodes dead or gone within the last hour, by id.
    nodes: Vec<NodeRecord>,
}

/// List the nodes serving this store: on PostgreSQL every node of the
/// cluster, live or gone within the hour; on the embedded store the one
/// server that owns it.
#[utoipa::path(
    get,
    path = "/v1/admin/nodes",
    tag = "admin",
    responses((status = 200, description = "The nodes", body = NodeList))
)]
pub async fn list_nodes(State(state): State<Arc<ApiState>>, _: Admin) -> ApiResult<Json<NodeList>> {
    if let Some((cluster, _)) = state.engine.cluster() {
        return Ok(Json(NodeList {
            nodes: cluster.nodes().await?,
        }));
    }
    // One server owns the store: it is the only node, and alive.
    let stats = state.engine.stats();
    let now = state.engine.now();
    Ok(Json(NodeList {
        nodes: vec![NodeRecord {
            node_id: state.config.node_id.clone().unwrap_or_else(|| "local".into()),
            incarnation: 0,
            address: state
                .config
                .advertise
                .clone()
                .unwrap_or_else(|| state.config.listen.to_string()),
            version: env!("CARGO_PKG_VERSION").into(),
            capacity: state.config.max_concurrent_attempts as u32,
            running: stats.running.load(Relaxed) as u32,
            state: match state.stopping.borrow().to_owned() {
                true => NodeState::Draining,
                false => NodeState::Alive,
            },
            started_at: state.started_at,
            heartbeat_at: now,
            heartbeat_age_ms: 0,
            claims_per_s: 0.0,
            claims: 0,
        }],
    }))
}
