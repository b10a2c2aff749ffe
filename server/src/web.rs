//! The web client, compiled into the binary so that `classroomd` alone serves it: no files to
//! install beside it, no bundler at run time.

use axum::extract::Path;
use axum::http::{StatusCode, header};
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
];

/// Routes serving the web client at `/`.
pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .route("/", get(|| async { file("index.html") }))
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

    #[test]
    fn unknown_paths_are_404() {
        assert_eq!(file("js/nope.js").status(), StatusCode::NOT_FOUND);
        assert_eq!(file("index.html").status(), StatusCode::OK);
    }
}
