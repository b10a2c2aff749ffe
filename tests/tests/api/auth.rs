use classroom_protocol::UserRole;
use classroom_tests::both_backends;
use serde_json::json;

use super::*;

both_backends!(login_returns_a_token_that_opens_me, |server| async move {
    let (client, user) = server
        .user(UserRole::Teacher, "Tess@School.edu", "Tess")
        .await;
    assert_eq!(
        user["email"], "tess@school.edu",
        "emails are stored lower-case"
    );
    assert!(
        user.get("password_hash").is_none(),
        "no hash in answers: {user}"
    );
    let me = client.get("/api/v1/me").await;
    assert_eq!(me.expect(200)["role"], "teacher");

    // Email case does not matter when signing in.
    let (_, again) = server
        .client()
        .login("TESS@school.edu", "correct horse battery")
        .await;
    assert_eq!(again["id"], user["id"]);
    server
});

both_backends!(login_refusals, |server| async move {
    server
        .user(UserRole::Student, "sam@school.edu", "Sam")
        .await;
    let anon = server.client();
    let wrong = anon
        .post(
            "/api/v1/auth/login",
            json!({"email": "sam@school.edu", "password": "nope nope nope"}),
        )
        .await;
    wrong.expect_error(401, "wrong_credentials");
    let unknown = anon
        .post(
            "/api/v1/auth/login",
            json!({"email": "who@school.edu", "password": "whatever1"}),
        )
        .await;
    unknown.expect_error(401, "wrong_credentials");
    assert_eq!(
        wrong.text, unknown.text,
        "unknown accounts are not told apart from wrong passwords"
    );

    let missing = anon
        .post("/api/v1/auth/login", json!({"email": "sam@school.edu"}))
        .await;
    missing.expect_error(422, "invalid_body");
    assert_eq!(missing.body["error"]["field"], "password");

    let malformed = anon
        .send_raw(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            "application/json",
            b"{\"email\":".to_vec(),
        )
        .await;
    malformed.expect_error(400, "malformed_json");
    let not_json = anon
        .send_raw(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            "text/plain",
            b"hello".to_vec(),
        )
        .await;
    not_json.expect_error(415, "unsupported_media_type");
    server
});

both_backends!(
    login_bodies_are_small_and_only_the_class_list_is_large,
    |server| async move {
        let (admin, _) = server.user(UserRole::Admin, "ada@school.edu", "Ada").await;
        let anon = server.client();
        // An email too long to be one is refused (before it is counted under it as a key).
        let long = anon
            .post(
                "/api/v1/auth/login",
                json!({"email": format!("{}@school.edu", "a".repeat(300)), "password": "whatever1"}),
            )
            .await;
        long.expect_error(422, "invalid_field");
        assert_eq!(long.body["error"]["field"], "email");
        // A login body is a few fields: 20 KiB is refused for its size.
        let big = anon
            .post(
                "/api/v1/auth/login",
                json!({"email": "a".repeat(20_000), "password": "whatever1"}),
            )
            .await;
        big.expect_error(413, "body_too_large");
        // The CSV import still takes a large class list (here 1 MiB, in an ignored column).
        let csv = format!(
            "email,name,notes\nbig@school.edu,Big,{}\n",
            "x".repeat(1024 * 1024)
        );
        let imported = admin
            .send_raw(
                reqwest::Method::POST,
                "/api/v1/users/import",
                "text/csv",
                csv.into_bytes(),
            )
            .await;
        assert_eq!(imported.expect(200)["created"], 1, "{}", imported.text);
        server
    }
);

both_backends!(tokens_are_checked, |server| async move {
    let (client, _) = server
        .user(UserRole::Student, "sam@school.edu", "Sam")
        .await;
    server
        .client()
        .get("/api/v1/me")
        .await
        .expect_error(401, "unauthenticated");
    server
        .client()
        .with_token("not.a.jwt")
        .get("/api/v1/me")
        .await
        .expect_error(401, "invalid_token");
    // A token signed with another secret.
    let forged = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwiYXVkIjoiY2xhc3Nyb29tLWFwaSIsImlhdCI6MTc5NTQ5ODI2OCwiZXhwIjo0MTAyNDQ0ODAwLCJzdiI6MCwicm9sZSI6ImFkbWluIn0.jNfedbj1JYqnQm6VHOP0mORUMOZqibSVYjS9AQi4KJw";
    server
        .client()
        .with_token(forged)
        .get("/api/v1/me")
        .await
        .expect_error(401, "invalid_token");
    client.get("/api/v1/me").await.expect(200);
    server
});

#[tokio::test]
async fn expired_session_tokens_are_refused() {
    let server = TestServer::start(Backend::Sqlite, |_| {})
        .await
        .expect("a SQLite server");
    let (client, me) = server
        .user(UserRole::Student, "sam@school.edu", "Sam")
        .await;
    client.get("/api/v1/me").await.expect(200);
    // A token the server's own secret signed a session length ago, on a virtual clock: it
    // expired a second ago.
    let ttl = std::time::Duration::from_secs(server.config.auth.session_ttl_secs);
    let secret = classroom_courses::auth::load_or_create_secret(None, &server.data_dir())
        .expect("the server's secret");
    let tokens = classroom_courses::auth::TokenIssuer::new(&secret, ttl, ttl);
    let id = classroom_protocol::UserId(me["id"].as_i64().expect("an id"));
    let account = server
        .store()
        .credentials_by_id(id)
        .await
        .expect("the store answers")
        .expect("the user");
    let (role, version) = (account.user.role, account.session_version);
    let issued = time::OffsetDateTime::now_utc() - ttl - time::Duration::SECOND;
    let (expired, _) = tokens.issue_session(id, role, version, issued);
    let (fresh, _) = tokens.issue_session(id, role, version, issued + ttl);
    server
        .client()
        .with_token(&expired)
        .get("/api/v1/me")
        .await
        .expect_error(401, "token_expired");
    // The same token issued a second later is still good: the expiry is to the second.
    server
        .client()
        .with_token(&fresh)
        .get("/api/v1/me")
        .await
        .expect(200);
    server.stop().await;
}

#[tokio::test]
async fn a_stranger_cannot_lock_the_owner_out_and_many_addresses_are_still_slowed() {
    let server = TestServer::start(Backend::Sqlite, |c| {
        let n = |v| std::num::NonZeroU32::new(v).expect("non-zero");
        c.rate_limit
            .login_failures_per_account_and_address_per_minute = n(2);
        c.rate_limit.login_failures_per_account_per_minute = n(3);
    })
    .await
    .expect("a SQLite server");
    // The owner signs in from 127.0.0.1 (the harness's address): a known place from now on.
    server
        .user(UserRole::Student, "sam@school.edu", "Sam")
        .await;
    let from = |last: u8| server.client_from(std::net::IpAddr::from([127, 0, 0, last]));
    let guess = |client: &classroom_tests::Client, password: &str| {
        let body = json!({"email": "SAM@school.edu", "password": password});
        let client = client.clone();
        async move { client.post("/api/v1/auth/login", body).await }
    };

    // A stranger at 127.0.0.2 guesses: two failures, then 429 with Retry-After.
    let stranger = from(2);
    for _ in 0..2 {
        guess(&stranger, "wrong password")
            .await
            .expect_error(401, "wrong_credentials");
    }
    let limited = guess(&stranger, "wrong password").await;
    limited.expect_error(429, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // The owner is not locked out: from their own address they still sign in, and from a
    // new one too (the account's own bucket is not spent by one stranger).
    let owner = from(1);
    guess(&owner, "correct horse battery").await.expect(200);
    guess(&from(5), "correct horse battery").await.expect(200);

    // Guessing from many addresses is still slowed: one more stranger spends the account's
    // bucket (2 + 1 = 3 failures); other addresses are refused before their password is
    // checked, even a right one from a place the owner never signed in from.
    guess(&from(3), "wrong password")
        .await
        .expect_error(401, "wrong_credentials");
    guess(&from(6), "wrong password")
        .await
        .expect_error(429, "rate_limited");
    guess(&from(7), "correct horse battery")
        .await
        .expect_error(429, "rate_limited");
    // The owner's known places still work.
    guess(&owner, "correct horse battery").await.expect(200);
    guess(&from(5), "correct horse battery").await.expect(200);
    server.stop().await;
}

both_backends!(
    changing_ones_password_ends_other_sessions,
    |server| async move {
        let (client, _) = server
            .user(UserRole::Student, "sam@school.edu", "Sam")
            .await;
        let wrong = client
            .put(
                "/api/v1/me/password",
                json!({"current_password": "not it at all", "new_password": "a new passphrase"}),
            )
            .await;
        wrong.expect_error(403, "wrong_password");
        let short = client
            .put(
                "/api/v1/me/password",
                json!({"current_password": "correct horse battery", "new_password": "short"}),
            )
            .await;
        short.expect_error(422, "invalid_field");
        assert_eq!(short.body["error"]["field"], "new_password");
        client
        .put("/api/v1/me/password", json!({"current_password": "correct horse battery", "new_password": "a new passphrase"}))
        .await
        .expect(204);
        client
            .get("/api/v1/me")
            .await
            .expect_error(401, "token_revoked");
        let (fresh, _) = server
            .client()
            .login("sam@school.edu", "a new passphrase")
            .await;
        fresh.get("/api/v1/me").await.expect(200);
        server
    }
);
