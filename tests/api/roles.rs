//! Roles: every tenant operation of the OpenAPI document called with a
//! key of every role, refused with `403 permission_denied` exactly when
//! the role lacks the permission the document states; and a tenant
//! admin's own keys.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::backend::TestStore;
use crate::server::{ADMIN, Body, Server};

const ROLES: [&str; 4] = ["viewer", "operator", "developer", "admin"];

/// The least role with each permission.
fn least_role(permission: &str) -> usize {
    match permission {
        "read" => 0,
        "operate" => 1,
        "develop" => 2,
        "manage_keys" => 3,
        other => panic!("unknown permission {other:?}"),
    }
}

/// A key of `role` for tenant `acme`, made by the server admin.
async fn key(server: &Server, role: &str) -> String {
    let (status, body) = server
        .call(
            Some(ADMIN),
            Method::POST,
            "/v1/admin/tenants/acme/keys",
            Body::Json(json!({"role": role})),
        )
        .await;
    assert_eq!(
        (status, body["role"].as_str()),
        (StatusCode::CREATED, Some(role)),
        "{body}"
    );
    body["token"].as_str().unwrap().to_string()
}

/// The path with every parameter filled with something that does not
/// exist, so that an allowed call changes nothing.
fn concrete(template: &str) -> String {
    template
        .replace("{id}", "999999")
        .replace("{name}", "nothing")
        .replace("{step}", "nothing")
        .replace("{key_id}", "nokey")
        .replace("{tenant}", "acme")
}

crate::on_both_backends! {
    async fn every_operation_is_refused_to_exactly_the_roles_without_its_permission(store: TestStore) {
        let server = Server::on_with_key(&store, &[]);
        server.tenant("acme", json!({})).await;
        let mut keys = Vec::new();
        for role in ROLES {
            keys.push(key(&server, role).await);
        }
        let (_, document) = server.call(None, Method::GET, "/v1/openapi.json", Body::None).await;
        let mut checked = 0;
        for (template, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let tenant = operation["security"].as_array().is_some_and(|s| s.iter().any(|r| r.get("tenant_key").is_some()));
                if !tenant {
                    assert!(operation.get("x-weft-permission").is_none(), "{method} {template}");
                    continue;
                }
                let permission = operation["x-weft-permission"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {template} states no permission"));
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let path = concrete(template);
                let body = if method == Method::GET || method == Method::DELETE { Body::None } else { Body::Json(json!({})) };
                for (level, (role, token)) in ROLES.iter().zip(&keys).enumerate() {
                    let (status, answer) = server.call(Some(token), method.clone(), &path, body.clone()).await;
                    let refused = answer["error"]["code"] == "permission_denied";
                    if level < least_role(permission) {
                        assert!(status == StatusCode::FORBIDDEN && refused, "{role} {method} {path}: {status} {answer}");
                        let message = answer["error"]["message"].as_str().unwrap();
                        assert!(message.contains(&format!("`{permission}`")) && message.contains(role), "{message}");
                    } else {
                        assert!(!refused, "{role} {method} {path} is refused: {answer}");
                    }
                }
                checked += 1;
            }
        }
        assert!(checked >= 35, "only {checked} tenant operations");
    }

    async fn a_tenant_admin_makes_lists_and_revokes_keys_of_any_role(store: TestStore) {
        let server = Server::on(&store, &[]);
        let admin = server.tenant("acme", json!({})).await;
        let other = server.tenant("globex", json!({})).await;
        let (status, made) = server.call(Some(&admin), Method::POST, "/v1/api-keys", Body::Json(json!({"role": "viewer"}))).await;
        assert_eq!((status, made["role"].as_str()), (StatusCode::CREATED, Some("viewer")), "{made}");
        let viewer = made["token"].as_str().unwrap().to_string();
        let (_, me) = server.call(Some(&viewer), Method::GET, "/v1/whoami", Body::None).await;
        assert_eq!(me, json!({"tenant": "acme", "key_id": made["key_id"], "role": "viewer", "permissions": ["read"]}));
        let (status, answer) = server.call(Some(&viewer), Method::POST, "/v1/api-keys", Body::Json(json!({"role": "admin"}))).await;
        assert_eq!((status, &answer["error"]["code"]), (StatusCode::FORBIDDEN, &json!("permission_denied")), "no escalation: {answer}");

        let (_, list) = server.call(Some(&admin), Method::GET, "/v1/api-keys", Body::None).await;
        let keys = list["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "{list}");
        assert!(keys.iter().all(|k| k.get("token").is_none() && k.get("secret_sha256").is_none()), "{list}");
        assert_eq!(keys.iter().filter(|k| k["current"] == true).count(), 1, "{list}");
        let (status, _) = server.call(Some(&other), Method::DELETE, &format!("/v1/api-keys/{}", made["key_id"].as_str().unwrap()), Body::None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's key");
        let (status, _) = server.call(Some(&admin), Method::DELETE, &format!("/v1/api-keys/{}", made["key_id"].as_str().unwrap()), Body::None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = server.call(Some(&viewer), Method::GET, "/v1/whoami", Body::None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked at once");
        let (_, me): (StatusCode, Value) = server.call(Some(&admin), Method::GET, "/v1/whoami", Body::None).await;
        assert_eq!(me["role"], "admin", "a tenant's first key is an admin");

        // The CLI, as a tenant admin uses it.
        let weft = |token: &str, args: &[&str]| {
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_weft"))
                .args(args)
                .env("WEFT_URL", &server.url)
                .env("WEFT_TOKEN", token)
                .output()
                .unwrap();
            let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            (output.status.success(), printed)
        };
        let (ok, printed) = weft(&admin, &["key", "create", "--role", "operator"]);
        assert!(ok && printed.contains("new operator key"), "{printed}");
        let operator = printed.lines().last().unwrap().trim().to_string();
        let (ok, printed) = weft(&operator, &["whoami"]);
        assert!(ok && printed.contains("role operator (read, operate)"), "{printed}");
        let (ok, printed) = weft(&operator, &["key", "list"]);
        assert!(!ok && printed.contains("manage_keys"), "an operator may not list keys: {printed}");
        let (ok, printed) = weft(&admin, &["key", "list"]);
        assert!(ok && printed.contains("operator") && printed.contains("(this key)"), "{printed}");
    }
}
