//! Roles and permissions (RBAC): every API key carries a [`Role`], and
//! every tenant operation needs one [`Permission`] ([`required`]), which
//! the tenant guard checks before the handler runs (`api::auth`). One
//! table for every route, so no handler can forget its check, and the
//! OpenAPI document states each operation's permission from the same
//! table (`x-weft-permission`).
//!
//! Roles are ordered: each has every permission of the ones before it.

use serde::{Deserialize, Serialize};

/// What a key may do.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything of its tenant.
    Viewer,
    /// A viewer that also starts, cancels, retries, resets, pauses and
    /// resumes runs, sends signals and decides approvals.
    Operator,
    /// An operator that also pushes modules and workflows and sets
    /// schedules, hooks and secrets.
    Developer,
    /// A developer that also manages the tenant's keys. Keys made before
    /// roles existed are admins.
    #[default]
    Admin,
}

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Read anything of the tenant.
    Read,
    /// Act on runs: start, cancel, retry, reset, pause, resume, signal,
    /// approve; pause and resume schedules.
    Operate,
    /// Change what runs: modules, workflows, schedules, hooks, secrets.
    Develop,
    /// Make, list and revoke the tenant's keys.
    ManageKeys,
}

impl Permission {
    /// Its name, as errors and the OpenAPI document give it.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Operate => "operate",
            Permission::Develop => "develop",
            Permission::ManageKeys => "manage_keys",
        }
    }

    /// The least role that has it.
    pub fn least_role(self) -> Role {
        match self {
            Permission::Read => Role::Viewer,
            Permission::Operate => Role::Operator,
            Permission::Develop => Role::Developer,
            Permission::ManageKeys => Role::Admin,
        }
    }
}

impl Role {
    /// Every role, least first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Developer, Role::Admin];

    /// Whether it has `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        self >= permission.least_role()
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Developer => "developer",
            Role::Admin => "admin",
        }
    }
}

/// The permission the tenant operation `method` `path` (the route's
/// template, `/v1/runs/{id}/cancel`) needs; `None` for a route this table
/// does not know, which the guard refuses and a test forbids.
pub fn required(method: &str, path: &str) -> Option<Permission> {
    use Permission::*;
    let permission = match (method, path) {
        ("GET", _) if path.starts_with("/v1/api-keys") => ManageKeys,
        ("GET", _) => Read,
        ("POST" | "DELETE", "/v1/api-keys" | "/v1/api-keys/{key_id}") => ManageKeys,
        (
            "POST",
            "/v1/workflows/{name}/runs"
            | "/v1/runs/{id}/cancel"
            | "/v1/runs/{id}/retry"
            | "/v1/runs/{id}/reset"
            | "/v1/runs/{id}/pause"
            | "/v1/runs/{id}/resume"
            | "/v1/runs/{id}/signals/{name}"
            | "/v1/runs/{id}/approvals/{step}"
            | "/v1/schedules/{name}/pause"
            | "/v1/schedules/{name}/resume",
        ) => Operate,
        (
            "PUT" | "DELETE",
            "/v1/modules/{name}"
            | "/v1/workflows/{name}"
            | "/v1/schedules/{name}"
            | "/v1/hooks/{name}"
            | "/v1/secrets/{name}",
        ) => Develop,
        _ => return None,
    };
    Some(permission)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_has_the_permissions_of_the_ones_before_it() {
        let allowed = |role: Role| -> Vec<&str> {
            [
                Permission::Read,
                Permission::Operate,
                Permission::Develop,
                Permission::ManageKeys,
            ]
            .into_iter()
            .filter(|p| role.allows(*p))
            .map(Permission::name)
            .collect()
        };
        assert_eq!(allowed(Role::Viewer), ["read"]);
        assert_eq!(allowed(Role::Operator), ["read", "operate"]);
        assert_eq!(allowed(Role::Developer), ["read", "operate", "develop"]);
        assert_eq!(allowed(Role::Admin), ["read", "operate", "develop", "manage_keys"]);
        assert_eq!(serde_json::from_str::<Role>("\"viewer\"").unwrap(), Role::Viewer);
        assert_eq!(Role::default(), Role::Admin, "keys from before roles");
    }

    #[test]
    fn routes_map_to_their_permissions() {
        assert_eq!(required("GET", "/v1/runs/{id}"), Some(Permission::Read));
        assert_eq!(required("POST", "/v1/runs/{id}/cancel"), Some(Permission::Operate));
        assert_eq!(required("PUT", "/v1/workflows/{name}"), Some(Permission::Develop));
        assert_eq!(required("GET", "/v1/api-keys"), Some(Permission::ManageKeys));
        assert_eq!(required("POST", "/v1/somewhere/new"), None, "unknown: refused");
    }
}
