//! The OpenAPI document. Each handler declares what is its own (its
//! parameters, body, results and the errors only it can answer); what a
//! whole kind of operation can answer is declared here, once:
//!
//! - [`guarded`] puts a group of routes behind a token: the same call adds
//!   the layer that checks it and, to every operation of the group, the
//!   security requirement and the 401 (and for tenant keys the 403) that
//!   the check answers;
//! - [`declare_shared`] adds what follows from an operation's shape: 400
//!   where it takes parameters or a body, 413 and 415 where it takes a
//!   body, and 500 and 503 wherever the store is read.

use std::sync::Arc;

use axum::middleware::from_fn_with_state;
use utoipa::openapi::path::Operation;
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required};
use utoipa_axum::router::OpenApiRouter;

use super::error::ErrorBody;
use super::{ApiState, auth};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "weft",
        description = "A durable workflow engine that runs every task as a sandboxed WebAssembly component."
    ),
    components(schemas(ErrorBody, crate::model::HttpTally)),
    modifiers(&SecuritySchemes),
)]
pub(super) struct ApiDoc;

/// Which token a group of routes takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Guard {
    /// A tenant's API key; handlers read the tenant with `Caller`.
    Tenant,
    /// The server's admin token; handlers take `Admin`.
    Admin,
}

impl Guard {
    /// The security scheme's name in the document.
    fn scheme(self) -> &'static str {
        match self {
            Guard::Tenant => "tenant_key",
            Guard::Admin => "admin_token",
        }
    }
}

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (guard, description) in [
            (Guard::Tenant, "A tenant's API key, `wk_<key id>_<secret>`."),
            (
                Guard::Admin,
                "The server's admin token (`WEFT_ADMIN_TOKEN`, or the generated `DATA/admin.token`).",
            ),
        ] {
            components.add_security_scheme(
                guard.scheme(),
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
    }
}

/// `routes` behind `guard`: the layer that checks the token, and the
/// document saying what that check requires and can answer.
pub(super) fn guarded(
    mut routes: OpenApiRouter<Arc<ApiState>>,
    guard: Guard,
    state: &Arc<ApiState>,
) -> OpenApiRouter<Arc<ApiState>> {
    for (path, method, operation) in operations_at(routes.get_openapi_mut()) {
        operation.security = Some(vec![SecurityRequirement::new(guard.scheme(), Vec::<String>::new())]);
        declare(
            operation,
            401,
            "No token, or a token that is not valid here (`unauthorized`)",
        );
        if guard == Guard::Tenant {
            // The guard checks each route's permission from the same
            // table; a route the table does not know is a bug, found by
            // any test that builds the router.
            let permission = crate::roles::required(method, &path)
                .unwrap_or_else(|| panic!("{method} {path} has no permission in crate::roles::required"));
            declare(
                operation,
                403,
                "The key's tenant is disabled (`tenant_disabled`), or the key's role lacks the permission the \
                 operation needs (`permission_denied`)",
            );
            let extensions = operation.extensions.get_or_insert_with(Default::default);
            extensions.insert("x-weft-permission".into(), permission.name().into());
            let needs = format!(
                "Needs the `{}` permission (role `{}` or above).",
                permission.name(),
                permission.least_role().name()
            );
            operation.description = Some(match operation.description.take() {
                Some(text) => format!("{text}\n\n{needs}"),
                None => needs,
            });
        }
    }
    match guard {
        Guard::Tenant => routes.route_layer(from_fn_with_state(state.clone(), auth::tenant)),
        Guard::Admin => routes.route_layer(from_fn_with_state(state.clone(), auth::admin)),
    }
}

/// Adds to every operation the answers that follow from its shape, and
/// marks optional the JSON bodies that may be left out.
pub(super) fn declare_shared(openapi: &mut OpenApi) {
    let optional = optional_bodies(openapi);
    for operation in operations(openapi) {
        if let Some(RefOr::T(body)) = &mut operation.request_body
            && body_schema(body).is_some_and(|name| optional.contains(&name))
        {
            body.required = Some(Required::False);
        }
        let has_body = operation.request_body.is_some();
        if has_body || operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
            declare(
                operation,
                400,
                "A parameter, header or the body breaks the rules this document declares; `details` names it",
            );
        }
        if has_body {
            declare(
                operation,
                413,
                "The body is larger than the server accepts (`body_too_large`)",
            );
            declare(
                operation,
                415,
                "The body's Content-Type is not one this operation takes (`unsupported_media_type`)",
            );
        }
        if operation.security.is_some() {
            // Every guarded operation reads the store, which can fail or be
            // closing.
            declare(
                operation,
                500,
                "The server failed; the cause is in its log (`internal`)",
            );
            declare(operation, 503, "The server is stopping (`unavailable`)");
        }
    }
}

/// The JSON body schemas that require no field: `body::json` reads a
/// missing body as `{}`, so those bodies may be left out.
fn optional_bodies(openapi: &OpenApi) -> Vec<String> {
    let Some(components) = &openapi.components else {
        return Vec::new();
    };
    components
        .schemas
        .iter()
        .filter(|(_, schema)| matches!(schema, RefOr::T(Schema::Object(object)) if object.required.is_empty()))
        .map(|(name, _)| name.clone())
        .collect()
}

/// The component a JSON request body refers to.
fn body_schema(body: &RequestBody) -> Option<String> {
    let RefOr::T(content) = body.content.get("application/json")? else {
        return None;
    };
    match content.schema.as_ref()? {
        RefOr::Ref(reference) => reference.ref_location.rsplit('/').next().map(str::to_string),
        RefOr::T(_) => None,
    }
}

/// Every operation of the document, with its path and method.
fn operations_at(openapi: &mut OpenApi) -> Vec<(String, &'static str, &mut Operation)> {
    let mut out = Vec::new();
    for (path, item) in openapi.paths.paths.iter_mut() {
        for (method, operation) in [
            ("GET", &mut item.get),
            ("PUT", &mut item.put),
            ("POST", &mut item.post),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
            ("HEAD", &mut item.head),
            ("OPTIONS", &mut item.options),
            ("TRACE", &mut item.trace),
        ] {
            if let Some(operation) = operation.as_mut() {
                out.push((path.clone(), method, operation));
            }
        }
    }
    out
}

/// Every operation of the document.
fn operations(openapi: &mut OpenApi) -> impl Iterator<Item = &mut Operation> {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ]
        .into_iter()
        .filter_map(Option::as_mut)
    })
}

/// Declares that `operation` can answer `status` with the error body,
/// unless the handler declared that status itself.
fn declare(operation: &mut Operation, status: u16, description: &str) {
    let status = status.to_string();
    if operation.responses.responses.contains_key(&status) {
        return;
    }
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    operation.responses.responses.insert(status, RefOr::T(response));
}
