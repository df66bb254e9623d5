//! The admin UI under `/admin/`: the single-page app built from `web/admin` (embedded in the
//! binary by `build.rs`), with an SPA fallback to `index.html`, long caching for the hashed files
//! under `assets/` and a strict Content-Security-Policy; and the pages plugins contribute
//! (`[[admin-pages]]` in a manifest), served from the package's `assets/` under
//! `/admin/ext/{plugin}/…` with a policy that sandboxes them. See docs/admin-guide.md.

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode, header};

use super::ApiError;
use crate::Site;

include!(concat!(env!("OUT_DIR"), "/admin_assets.rs"));

/// The admin app's policy: its own scripts, styles and API only; plugin pages in frames from
/// this origin (sandboxed by the frame and by their own policy); no plugin, no framing of the
/// admin by other sites.
const ADMIN_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
     form-action 'self'; object-src 'none'";

/// A plugin page's policy: sandboxed even when opened outside its frame (an opaque origin that
/// can't read the admin's cookie or storage), its own files and inline code only, no network
/// (it calls its plugin's API through the admin's bridge, with a scoped token), framed only by
/// the admin.
const PAGE_CSP: &str = "sandbox allow-scripts; default-src 'none'; script-src 'self' 'unsafe-inline'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; connect-src 'none'; \
     frame-ancestors 'self'; base-uri 'none'; form-action 'none'";

pub fn routes() -> Router<Site> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(|| app(String::new())))
        .route("/admin/ext/{plugin}/{*path}", get(plugin_asset))
        .route("/admin/{*path}", get(|Path(path): Path<String>| app(path)))
}

/// Whether the embedded app exists (`cargo xtask web` was run before the host was built).
pub fn built() -> bool {
    ADMIN_ASSETS.iter().any(|(path, _)| *path == "index.html")
}

fn asset(path: &str) -> Option<&'static [u8]> {
    ADMIN_ASSETS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, bytes)| *bytes)
}

/// The content type of a file, by its extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn with_headers(mut response: Response, csp: &'static str) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn app(path: String) -> Response {
    if !built() {
        return with_headers(not_built(), ADMIN_CSP);
    }
    if let Some(bytes) = asset(&path).filter(|_| !path.is_empty() && path != "index.html") {
        // Vite names the files under assets/ by their content hash: they never change.
        let cache = if path.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        let response = (
            [
                (header::CONTENT_TYPE, content_type(&path)),
                (header::CACHE_CONTROL, cache),
            ],
            bytes,
        )
            .into_response();
        return with_headers(response, ADMIN_CSP);
    }
    // A missing file (a stale chunk, a typo) is a 404, not the app: only page paths fall back.
    let last = path.rsplit('/').next().unwrap_or("");
    if path.starts_with("assets/") || last.contains('.') {
        return ApiError::not_found(format!("the admin UI has no file /admin/{path}"))
            .into_response();
    }
    let index = asset("index.html").expect("built() checked it");
    with_headers(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            index,
        )
            .into_response(),
        ADMIN_CSP,
    )
}

fn not_built() -> Response {
    let body = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>UCMS admin: not built</title></head>\
        <body><main><h1>The admin UI was not built into this binary</h1>\
        <p>This <code>ucms</code> was compiled without the admin UI's assets (<code>web/admin/dist</code>).</p>\
        <p>Build them, then the host: <code>cargo xtask web</code> and <code>cargo build -p ucms</code> \
        (<code>cargo xtask demo</code> does both). The HTTP API under <code>/api/ucms/</code> works without them.</p>\
        </main></body></html>";
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// A file from an installed, enabled plugin's `assets/` folder. These are the package's static
/// files, as public as its README; what the page may do is bounded by the scoped token the
/// admin gives it and by [`PAGE_CSP`].
async fn plugin_asset(
    State(site): State<Site>,
    Path((plugin, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "page_asset_not_found",
            format!(
                "plugin '{plugin}' has no admin asset '{path}' (or is not installed and enabled)"
            ),
        )
    };
    let slot = site.plugins.get(&plugin).ok_or_else(not_found)?;
    if slot.runnable().is_none() {
        return Err(not_found());
    }
    if path.is_empty()
        || path.contains('\\')
        || path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(ApiError::bad_request(format!(
            "'{path}' is not a plain path below the plugin's assets/ folder"
        )));
    }
    let version = slot.manifest.version.to_string();
    let file = site
        .plugins
        .data()
        .plugin_dir(&plugin, &version)
        .join("assets")
        .join(&path);
    let bytes = tokio::fs::read(&file).await.map_err(|_| not_found())?;
    let response = (
        [
            (header::CONTENT_TYPE, content_type(&path)),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from(bytes),
    )
        .into_response();
    Ok(with_headers(response, PAGE_CSP))
}
