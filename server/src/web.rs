//! The web client, compiled into the binary so that `classroomd` alone serves it: no files to
//! install beside it, no bundler at run time. Also the security headers every response of
//! the server carries ([`security_headers`]).

use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// (path, content type, body) of every file of `web-client/`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../../web-client/index.html"),
    ),
    (
        "course.html",
        "text/html; charset=utf-8",
        include_str!("../../web-client/course.html"),
    ),
    (
        "admin.html",
        "text/html; charset=utf-8",
        include_str!("../../web-client/admin.html"),
    ),
    (
        "replay.html",
        "text/html; charset=utf-8",
        include_str!("../../web-client/replay.html"),
    ),
    (
        "live.html",
        "text/html; charset=utf-8",
        include_str!("../../web-client/live.html"),
    ),
    (
        "setup.html",
        "text/html; charset=utf-8",
        include_str!("../../web-client/setup.html"),
    ),
    (
        "account.html",
        "text/html; charset=utf-8",
        include_str!("../../web-client/account.html"),
    ),
    (
        "css/app.css",
        "text/css; charset=utf-8",
        include_str!("../../web-client/css/app.css"),
    ),
    (
        "js/api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/api.js"),
    ),
    (
        "js/page.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/page.js"),
    ),
    (
        "js/home.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/home.js"),
    ),
    (
        "js/course.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/course.js"),
    ),
    (
        "js/admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/admin.js"),
    ),
    (
        "js/replay.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/replay.js"),
    ),
    (
        "js/live.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/live.js"),
    ),
    (
        "js/media.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/media.js"),
    ),
    (
        "js/devices.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/devices.js"),
    ),
    (
        "js/tiles.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/tiles.js"),
    ),
    (
        "js/restream.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/restream.js"),
    ),
    (
        "js/signaling.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/signaling.js"),
    ),
    (
        "js/account.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/account.js"),
    ),
    (
        "js/setup.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/setup.js"),
    ),
    (
        "js/errors.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/errors.js"),
    ),
    (
        "js/materials.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/materials.js"),
    ),
    (
        "js/slides.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/slides.js"),
    ),
    (
        "css/slides.css",
        "text/css; charset=utf-8",
        include_str!("../../web-client/css/slides.css"),
    ),
    (
        "css/materials.css",
        "text/css; charset=utf-8",
        include_str!("../../web-client/css/materials.css"),
    ),
    (
        "offline.html",
        "text/html; charset=utf-8",
        include_str!("../../web-client/offline.html"),
    ),
    (
        "sw.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/sw.js"),
    ),
    (
        "css/live.css",
        "text/css; charset=utf-8",
        include_str!("../../web-client/css/live.css"),
    ),
    (
        "js/encoder.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/encoder.js"),
    ),
    (
        "js/offline.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/offline.js"),
    ),
    (
        "js/people.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/people.js"),
    ),
    (
        "js/devicecheck.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/devicecheck.js"),
    ),
    (
        "js/sidepanel.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/sidepanel.js"),
    ),
    (
        "js/sound.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/sound.js"),
    ),
    (
        "attendance.html",
        "text/html; charset=utf-8",
        include_str!("../../web-client/attendance.html"),
    ),
    (
        "js/attendance.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/attendance.js"),
    ),
    (
        "js/own-attendance.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/own-attendance.js"),
    ),
    (
        "js/board.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/board.js"),
    ),
    (
        "css/board.css",
        "text/css; charset=utf-8",
        include_str!("../../web-client/css/board.css"),
    ),
    (
        "js/polls.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/polls.js"),
    ),
    (
        "js/breakout.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/breakout.js"),
    ),
    (
        "css/polls.css",
        "text/css; charset=utf-8",
        include_str!("../../web-client/css/polls.css"),
    ),
    (
        "js/replay-format.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/replay-format.js"),
    ),
    (
        "js/i18n.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/i18n.js"),
    ),
    (
        "i18n/en.json",
        "application/json; charset=utf-8",
        include_str!("../../web-client/i18n/en.json"),
    ),
    (
        "i18n/zh-CN.json",
        "application/json; charset=utf-8",
        include_str!("../../web-client/i18n/zh-CN.json"),
    ),
    (
        "i18n/README.md",
        "text/markdown; charset=utf-8",
        include_str!("../../web-client/i18n/README.md"),
    ),
    (
        "js/replay-moments.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web-client/js/replay-moments.js"),
    ),
];

/// The Content-Security-Policy of every response. The web client is plain modules and one
/// stylesheet of our own: no inline script or style, no eval, nothing from another origin.
/// It is the backstop for the session token kept in localStorage: a script injected into a
/// page could read it, and this policy refuses to run any script we did not serve. `'self'`
/// in `connect-src` covers the signaling WebSocket of the same host (ws: and wss: match
/// 'self' from an http: or https: page in CSP level 3, which Chromium, Firefox and Safari
/// follow). Video and audio come as MediaStreams (`srcObject`, not subject to CSP) or, for
/// replays, from our own files. No `data:` or `blob:`: the client needs neither.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; \
     font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'; object-src 'none'";

/// Camera, microphone and screen sharing for our own pages only; the rest of what a page
/// could ask for, for nobody.
const PERMISSIONS_POLICY: &str = "camera=(self), microphone=(self), display-capture=(self), \
     fullscreen=(self), autoplay=(self), geolocation=(), payment=(), usb=()";

/// The headers [`security_headers`] sets, fixed for every response.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    // Older browsers know only this one for framing.
    ("x-frame-options", "DENY"),
    // Page URLs carry lesson and replay ids; links out (a replay download, a restream
    // service) need not learn them.
    ("referrer-policy", "no-referrer"),
    ("permissions-policy", PERMISSIONS_POLICY),
    // No window we open, and none that opens us, keeps a handle to the other.
    ("cross-origin-opener-policy", "same-origin"),
];

/// Middleware (`axum::middleware::map_response_with_state`) putting the security headers on
/// every response: pages, API answers, errors and 404s, `/metrics`. Pages are what they
/// protect; on the rest they cost a few bytes and keep a JSON answer opened in a tab from
/// being sniffed or framed. In a cluster, `connect-src` also names the other nodes' signaling
/// (a lesson's room may live on another node, and the join sends the page there).
pub async fn security_headers(
    State(cluster): State<Option<crate::cluster::ClusterHandle>>,
    mut response: Response,
) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if let Some(policy) = cluster.and_then(|c| c.content_security_policy()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    response
}

/// The Content-Security-Policy header of a node whose cluster has the other nodes `nodes`
/// online (`None` when there are none: [`CONTENT_SECURITY_POLICY`] stands). The cluster
/// builds it when the nodes change, not for every response.
pub fn cluster_policy(nodes: &[crate::origin::PublicOrigin]) -> Option<HeaderValue> {
    if nodes.is_empty() {
        return None;
    }
    HeaderValue::from_str(&policy_with_nodes(nodes)).ok()
}

/// [`CONTENT_SECURITY_POLICY`] with the WebSocket origins of `nodes` in `connect-src`.
pub fn policy_with_nodes(nodes: &[crate::origin::PublicOrigin]) -> String {
    let sockets: Vec<String> = nodes
        .iter()
        .map(|origin| {
            let origin = origin.as_str();
            match origin.strip_prefix("https://") {
                Some(host) => format!("wss://{host}"),
                None => format!("ws://{}", origin.trim_start_matches("http://")),
            }
        })
        .collect();
    CONTENT_SECURITY_POLICY.replacen(
        "connect-src 'self';",
        &format!("connect-src 'self' {};", sockets.join(" ")),
        1,
    )
}

/// Routes serving the web client at `/`.
pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .route("/", get(|| async { file("index.html") }))
        // The first-run link the server prints: `/setup#<token>`.
        .route("/setup", get(|| async { file("setup.html") }))
        .route(
            "/{*path}",
            get(|Path(path): Path<String>| async move { file(&path) }),
        )
}

fn file(path: &str) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "error": {"code": "not_found", "message": format!("route GET /{path} not found")}
            })),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `web-client/` is compiled in: a page that loads a module nobody
    /// registered here would fail only in the browser.
    #[test]
    fn every_web_client_file_is_served() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-client");
        let mut on_disk = Vec::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).expect("web-client/ is readable") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    let relative = path.strip_prefix(&root).expect("under web-client/");
                    on_disk.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let mut served: Vec<String> = FILES.iter().map(|(name, _, _)| name.to_string()).collect();
        served.sort();
        assert_eq!(on_disk, served);
    }

    /// In a cluster the pages may open the other nodes' signaling, and no more than that.
    #[test]
    fn a_cluster_policy_names_the_other_nodes_signaling() {
        assert_eq!(
            cluster_policy(&[]),
            None,
            "a single node keeps the fixed policy"
        );
        let nodes = ["http://node2.example:8080", "https://node3.example"]
            .map(|url| crate::origin::PublicOrigin::parse(url).expect("an origin"));
        let policy = cluster_policy(&nodes).expect("a policy");
        let policy = policy.to_str().expect("ASCII");
        assert_eq!(
            policy,
            CONTENT_SECURITY_POLICY.replace(
                "connect-src 'self';",
                "connect-src 'self' ws://node2.example:8080 wss://node3.example;"
            )
        );
    }

    #[test]
    fn unknown_paths_are_404() {
        assert_eq!(file("js/nope.js").status(), StatusCode::NOT_FOUND);
        assert_eq!(file("index.html").status(), StatusCode::OK);
    }
}
