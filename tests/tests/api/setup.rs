//! First run: the setup link the server prints creates the school's first admin, once.

use classroom_protocol::UserRole;
use classroom_tests::both_backends;
use serde_json::json;

use super::*;

fn setup_token(server: &TestServer) -> String {
    server
        .server
        .as_ref()
        .expect("running")
        .setup_token
        .clone()
        .expect("a school without an admin gets a setup token")
}

both_backends!(
    the_setup_link_creates_the_first_admin_once,
    |server| async move {
        let token = setup_token(&server);
        let anon = server.client();
        assert_eq!(anon.get("/api/v1/setup").await.expect(200)["needed"], true);
        let page = anon.get("/setup").await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("/js/setup.js"), "the setup page");

        let admin = |token: &str| json!({"token": token, "email": "head@school.edu", "name": "Head", "password": "a long admin password"});
        // Not this server's token: refused, nothing created.
        anon.post("/api/v1/setup", admin("0123456789abcdef0123456789abcdef"))
            .await
            .expect_error(403, "wrong_setup_token");
        anon.post("/api/v1/setup", admin(""))
            .await
            .expect_error(403, "wrong_setup_token");
        // A bad password with the right token: refused, and the token still works after.
        let mut short = admin(&token);
        short["password"] = json!("short");
        assert_eq!(anon.post("/api/v1/setup", short).await.status, 422);
        assert!(!server.store().has_active_admin().await.expect("store"));

        let created = anon.post("/api/v1/setup", admin(&token)).await;
        let body = created.expect(201);
        assert_eq!(body["user"]["role"], "admin");
        // Signed in at once: the answer's token opens the admin's API.
        let signed_in = anon.with_token(body["token"].as_str().expect("a token"));
        assert_eq!(signed_in.get("/api/v1/users").await.status, 200);
        // And the password works for signing in.
        server
            .client()
            .login("head@school.edu", "a long admin password")
            .await;

        // Once only: the same link, or a second admin through it, is refused.
        anon.post("/api/v1/setup", admin(&token))
            .await
            .expect_error(409, "already_set_up");
        let mut other = admin(&token);
        other["email"] = json!("intruder@school.edu");
        anon.post("/api/v1/setup", other)
            .await
            .expect_error(409, "already_set_up");
        assert_eq!(anon.get("/api/v1/setup").await.expect(200)["needed"], false);
        server
    }
);

both_backends!(
    a_school_with_an_admin_prints_no_setup_link,
    |server| async move {
        server
            .user(UserRole::Admin, "head@school.edu", "Head")
            .await;
        let mut server = server;
        server.restart().await;
        assert!(
            server
                .server
                .as_ref()
                .expect("running")
                .setup_token
                .is_none()
        );
        let anon = server.client();
        assert_eq!(anon.get("/api/v1/setup").await.expect(200)["needed"], false);
        anon.post(
        "/api/v1/setup",
        json!({"token": "whatever", "email": "x@school.edu", "name": "X", "password": "a long password"}),
    )
    .await
    .expect_error(409, "already_set_up");
        server
    }
);
