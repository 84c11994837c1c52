//! The web console at `/ui`: static files compiled into the binary (see
//! `docs/architecture.md`, "The web console"). The console is only a client
//! of the `/v1` API, signed in with the user's key, so these routes need no
//! token and serve nothing but the files.

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::error::{ApiError, ErrorBody};
use super::params::Path;

/// One file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// Every file, by the name it is served under (`/ui/NAME`); the page is
/// `index.html`, served at `/ui` itself.
const ASSETS: &[Asset] = &[
    asset(
        "index.html",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    asset("style.css", "text/css; charset=utf-8", include_str!("assets/style.css")),
    asset("favicon.svg", "image/svg+xml", include_str!("assets/favicon.svg")),
    asset("app.js", JS, include_str!("assets/app.js")),
    asset("api.js", JS, include_str!("assets/api.js")),
    asset("ui.js", JS, include_str!("assets/ui.js")),
    asset("dag.js", JS, include_str!("assets/dag.js")),
    asset("runs.js", JS, include_str!("assets/runs.js")),
    asset("run.js", JS, include_str!("assets/run.js")),
    asset("pages.js", JS, include_str!("assets/pages.js")),
    asset("admin.js", JS, include_str!("assets/admin.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

const fn asset(name: &'static str, content_type: &'static str, body: &'static str) -> Asset {
    Asset {
        name,
        content_type,
        body,
    }
}

/// Scripts and styles from this origin only, no inline script, no
/// framing; the console talks to this server and nothing else.
const POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// The file a path names.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AssetPath {
    /// The file's name, as the page links it (`app.js`, `style.css`, ...).
    asset: String,
}

/// The console's page: sign in with an API key (or the admin token).
#[utoipa::path(
    get,
    path = "/ui",
    tag = "console",
    responses(
        (status = 200, description = "The console's page", content_type = "text/html"),
        (status = 304, description = "Unchanged since the `If-None-Match` given"),
    )
)]
pub async fn page(headers: HeaderMap) -> Response {
    serve(&ASSETS[0], &headers)
}

/// One of the console's files.
#[utoipa::path(
    get,
    path = "/ui/{asset}",
    tag = "console",
    params(AssetPath),
    responses(
        (status = 200, description = "The file (HTML, JavaScript, CSS or SVG)", content_type = "text/javascript"),
        (status = 304, description = "Unchanged since the `If-None-Match` given"),
        (status = 404, description = "No such file (`not_found`)", body = ErrorBody),
    )
)]
pub async fn file(Path(AssetPath { asset }): Path<AssetPath>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == asset) {
        Some(found) => serve(found, &headers),
        None => ApiError::not_found(format!("console file {asset:?}")).into_response(),
    }
}

/// The server's root leads to the console.
#[utoipa::path(
    get,
    path = "/",
    tag = "console",
    responses((status = 303, description = "See the console at `/ui`",
        headers(("Location" = String, description = "`/ui`"))))
)]
pub async fn root() -> Redirect {
    Redirect::to("/ui")
}

/// Answers with the file, or 304 when the caller holds this version.
fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag(asset);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|held| held.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let out = response.headers_mut();
    for (name, value) in [
        (header::ETAG, tag.as_str()),
        // Revalidate on every load: a new binary serves new files at once.
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.insert(name, value);
        }
    }
    response
}

/// The file's entity tag: a digest of its bytes, computed once.
fn etag(asset: &Asset) -> String {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body.as_bytes());
                let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    });
    let index = ASSETS.iter().position(|a| a.name == asset.name).unwrap_or(0);
    tags[index].clone()
}
