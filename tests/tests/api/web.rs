//! What the server tells browsers about every answer: the security headers on pages, API
//! answers, errors and metrics alike.

use classroom_tests::run_on;

use super::*;

/// The headers every answer carries, and a part of each value that matters.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", "script-src 'self';"),
    ("content-security-policy", "frame-ancestors 'none'"),
    ("content-security-policy", "default-src 'none'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("permissions-policy", "camera=(self)"),
];

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    run_on(Backend::Sqlite, |server| async move {
        let school = School::new(&server).await;
        let anon = server.client();
        let course = format!("/api/v1/courses/{}", school.course_id);
        for (what, reply) in [
            ("the sign-in page", anon.get("/").await),
            ("a module", anon.get("/js/home.js").await),
            ("an API answer", school.teacher.get(&course).await),
            ("an API error", anon.get(&course).await),
            ("an unknown route", anon.get("/api/v1/nothing-here").await),
            ("an unknown file", anon.get("/js/nothing-here.js").await),
            ("a wrong method", anon.delete("/healthz").await),
            ("the metrics", anon.get("/metrics").await),
            (
                "the OpenAPI document",
                anon.get("/api/v1/openapi.json").await,
            ),
        ] {
            for (name, part) in SECURITY_HEADERS {
                let value = reply
                    .headers
                    .get(*name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_else(|| panic!("{what} ({}) has no {name}", reply.status));
                assert!(value.contains(part), "{what}: {name}: {value}");
            }
        }
        // No inline script may run: the policy names no 'unsafe-inline', hash or nonce.
        let page = anon.get("/").await;
        let policy = page.headers["content-security-policy"]
            .to_str()
            .expect("ASCII");
        assert!(!policy.contains("unsafe"), "{policy}");
        server
    })
    .await;
}

/// The pages load only files: the policy would refuse any inline script or handler.
#[tokio::test]
async fn pages_have_no_inline_script_or_handler() {
    run_on(Backend::Sqlite, |server| async move {
        let anon = server.client();
        for page in [
            "/",
            "/course.html",
            "/admin.html",
            "/live.html",
            "/replay.html",
        ] {
            let html = anon.get(page).await.text;
            for script in html.split("<script").skip(1) {
                let tag = &script[..script.find('>').expect("a closed tag")];
                assert!(tag.contains("src="), "{page}: an inline <script{tag}>");
            }
            let lower = html.to_ascii_lowercase();
            for handler in [
                " onclick=",
                " onload=",
                " onerror=",
                " onsubmit=",
                " onchange=",
            ] {
                assert!(
                    !lower.contains(handler),
                    "{page}: an inline{handler} handler"
                );
            }
            assert!(!lower.contains(" style="), "{page}: an inline style");
            assert!(!lower.contains("<style"), "{page}: an inline stylesheet");
        }
        server
    })
    .await;
}
