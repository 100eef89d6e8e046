//! The pages `courtside serve` serves: the built bundle of clients/js/packages/pages, committed
//! in `crates/courtside-server/pages/` and compiled into the binary, so `cargo run` needs no
//! Node. `/`, `/scoreboard/{id}`, `/scorekeeper`, `/director` and `/ops` answer the app's page (it picks what to show
//! from the path); `/pages/*` its script, stylesheet and icon; `/sw.js` the service worker that
//! keeps them for offline use, `/manifest.webmanifest` what makes it installable. A test keeps the
//! committed bundle equal to a fresh build.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::ServerState;

const INDEX_HTML: &[u8] = include_bytes!("../pages/index.html");
const APP_JS: &[u8] = include_bytes!("../pages/app.js");
const APP_CSS: &[u8] = include_bytes!("../pages/app.css");
const SERVICE_WORKER: &[u8] = include_bytes!("../pages/sw.js");
const MANIFEST: &[u8] = include_bytes!("../pages/manifest.webmanifest");
const ICON: &[u8] = include_bytes!("../pages/icon.svg");

fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small, and replaced with every release: always asked again (a 200 each time; no stale page).
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    response
}

async fn page() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

/// The page routes.
pub fn routes() -> Router<std::sync::Arc<ServerState>> {
    Router::new()
        .route("/", get(page))
        .route("/scoreboard/{event_id}", get(page))
        .route("/scorekeeper", get(page))
        .route("/ops", get(page))
        .route("/director", get(page))
        .route("/sw.js", get(|| async { asset(SERVICE_WORKER, "text/javascript; charset=utf-8") }))
        .route("/manifest.webmanifest", get(|| async { asset(MANIFEST, "application/manifest+json") }))
        .route("/pages/icon.svg", get(|| async { asset(ICON, "image/svg+xml") }))
        .route("/pages/app.js", get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/pages/app.css", get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }))
}
