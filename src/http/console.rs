//! `GET /console`: the merchandisers' console, three static files embedded in the binary
//! (no CDN, nothing fetched at run time). Everything it does is a call to the public API
//! with the admin key the user typed, so it adds no endpoint beyond these files. Served
//! with a strict Content-Security-Policy: scripts and styles only from these files, no
//! inline script or style, connections only to this server, no framing.

use actix_web::http::header;
use actix_web::HttpResponse;

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// What the console may load and talk to: its own files and this server's API.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; \
    frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// `GET /console`.
pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /console/console.js`.
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

/// `GET /console/console.css`.
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}
