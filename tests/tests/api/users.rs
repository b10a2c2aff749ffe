use classroom_tests::both_backends;
use reqwest::Method;
use serde_json::json;

use super::*;

both_backends!(admins_create_users_and_others_cannot, |server| async move {
    let school = School::new(&server).await;
    let body = json!({"email": "New@School.edu", "name": "Nia New", "password": "first password", "role": "student"});
    let created = school.admin.post("/api/v1/users", body.clone()).await;
    assert_eq!(created.expect(201)["email"], "new@school.edu");
    // The new user can sign in.
    server
        .client()
        .login("new@school.edu", "first password")
        .await;

    school
        .admin
        .post("/api/v1/users", body.clone())
        .await
        .expect_error(409, "email_taken");
    school
        .teacher
        .post("/api/v1/users", body.clone())
        .await
        .expect_error(403, "forbidden");
    school
        .student
        .post("/api/v1/users", body.clone())
        .await
        .expect_error(403, "forbidden");
    server
        .client()
        .post("/api/v1/users", body)
        .await
        .expect_error(401, "unauthenticated");

    let bad_email =
        json!({"email": "nope", "name": "X", "password": "first password", "role": "student"});
    let reply = school.admin.post("/api/v1/users", bad_email).await;
    reply.expect_error(422, "invalid_field");
    assert_eq!(reply.body["error"]["field"], "email");
    let missing_role = json!({"email": "a@b.c", "name": "X", "password": "first password"});
    let reply = school.admin.post("/api/v1/users", missing_role).await;
    reply.expect_error(422, "invalid_body");
    assert_eq!(reply.body["error"]["field"], "role");
    let typo = json!({"email": "a@b.c", "name": "X", "password": "first password", "role": "student", "rol": 1});
    school
        .admin
        .post("/api/v1/users", typo)
        .await
        .expect_error(422, "invalid_body");
    let short = json!({"email": "a@b.c", "name": "X", "password": "short", "role": "student"});
    school
        .admin
        .post("/api/v1/users", short)
        .await
        .expect_error(422, "invalid_field");
    server
});

both_backends!(listing_searches_and_pages, |server| async move {
    let school = School::new(&server).await;
    let all = school.admin.get("/api/v1/users").await;
    assert_eq!(all.expect(200)["total"], 5);

    let students = school.admin.get("/api/v1/users?role=student").await;
    let names: Vec<_> = students.expect(200)["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|u| u["name"].clone())
        .collect();
    assert_eq!(
        names,
        vec![json!("Olga Outsider"), json!("Sam Student")],
        "sorted by name"
    );

    let search = school.admin.get("/api/v1/users?q=TEACHER").await;
    assert_eq!(
        search.expect(200)["total"],
        2,
        "case-insensitive, matches names"
    );
    let by_email = school.admin.get("/api/v1/users?q=olga%40school").await;
    assert_eq!(by_email.expect(200)["total"], 1);
    let wildcard = school.admin.get("/api/v1/users?q=%25").await;
    assert_eq!(
        wildcard.expect(200)["total"],
        0,
        "LIKE wildcards are matched literally"
    );

    let page = school.admin.get("/api/v1/users?per_page=2&page=3").await;
    let page = page.expect(200);
    assert_eq!(
        (
            page["total"].as_i64(),
            page["items"].as_array().map(Vec::len)
        ),
        (Some(5), Some(1))
    );

    // Teachers may search (to find students to enroll); students may not.
    school
        .teacher
        .get("/api/v1/users?role=student")
        .await
        .expect(200);
    school
        .student
        .get("/api/v1/users")
        .await
        .expect_error(403, "forbidden");
    school
        .admin
        .get("/api/v1/users?role=king")
        .await
        .expect_error(400, "invalid_query");
    school
        .admin
        .get("/api/v1/users?page=-1")
        .await
        .expect_error(400, "invalid_query");
    school
        .admin
        .get("/api/v1/users?sort=name")
        .await
        .expect_error(400, "invalid_query");
    server
});

both_backends!(get_user_is_for_admins_and_oneself, |server| async move {
    let school = School::new(&server).await;
    let path = format!("/api/v1/users/{}", school.student_id);
    school.admin.get(&path).await.expect(200);
    school.student.get(&path).await.expect(200);
    school
        .teacher
        .get(&path)
        .await
        .expect_error(403, "forbidden");
    school
        .admin
        .get("/api/v1/users/999999")
        .await
        .expect_error(404, "not_found");
    school
        .admin
        .get("/api/v1/users/abc")
        .await
        .expect_error(404, "not_found");
    server
});

both_backends!(disabling_a_user_ends_their_sessions, |server| async move {
    let school = School::new(&server).await;
    let path = format!("/api/v1/users/{}", school.student_id);
    let disabled = school.admin.patch(&path, json!({"disabled": true})).await;
    assert_eq!(disabled.expect(200)["disabled"], true);
    school
        .student
        .get("/api/v1/me")
        .await
        .expect_error(401, "account_disabled");
    let login = server
        .client()
        .post(
            "/api/v1/auth/login",
            json!({"email": "sam@school.edu", "password": "correct horse battery"}),
        )
        .await;
    login.expect_error(401, "account_disabled");

    school
        .admin
        .patch(&path, json!({"disabled": false, "name": "Samuel Student"}))
        .await
        .expect(200);
    let me = school.student.get("/api/v1/me").await;
    assert_eq!(
        me.expect(200)["name"],
        "Samuel Student",
        "enabled again; the old session works"
    );

    school
        .teacher
        .patch(&path, json!({"disabled": true}))
        .await
        .expect_error(403, "forbidden");
    school
        .admin
        .patch(&path, json!({"name": ""}))
        .await
        .expect_error(422, "invalid_field");
    school
        .admin
        .patch("/api/v1/users/424242", json!({"disabled": true}))
        .await
        .expect_error(404, "not_found");
    let me = school.admin.get("/api/v1/me").await;
    let admin_id = id(me.expect(200));
    school
        .admin
        .patch(
            &format!("/api/v1/users/{admin_id}"),
            json!({"disabled": true}),
        )
        .await
        .expect_error(409, "cannot_disable_self");
    server
});

both_backends!(admins_reset_passwords, |server| async move {
    let school = School::new(&server).await;
    let path = format!("/api/v1/users/{}/password", school.student_id);
    school
        .teacher
        .put(&path, json!({"password": "reset by teacher"}))
        .await
        .expect_error(403, "forbidden");
    school
        .admin
        .put(&path, json!({"password": "tiny"}))
        .await
        .expect_error(422, "invalid_field");
    school
        .admin
        .put(&path, json!({}))
        .await
        .expect_error(422, "invalid_body");
    school
        .admin
        .put(
            "/api/v1/users/999/password",
            json!({"password": "long enough pass"}),
        )
        .await
        .expect_error(404, "not_found");
    school
        .admin
        .put(&path, json!({"password": "reset by admin"}))
        .await
        .expect(204);
    school
        .student
        .get("/api/v1/me")
        .await
        .expect_error(401, "token_revoked");
    server
        .client()
        .login("sam@school.edu", "reset by admin")
        .await;
    server
});

both_backends!(class_list_import_reports_every_row, |server| async move {
    let school = School::new(&server).await;
    let csv = "Email,Name,Class,Password\n\
               amy@school.edu,Amy Adams,7b,\n\
               ben@school.edu,Ben Brown,7b,ben's password\n\
               sam@school.edu,Sam Again,7b,\n\
               not-an-email,Cat,7b,\n\
               dan@school.edu,,7b,\n\
               eve@school.edu,Eve,7b,short\n\
               \n\
               fay@school.edu,Fay Fox,7b,\n";
    let reply = school
        .admin
        .send_raw(
            Method::POST,
            "/api/v1/users/import",
            "text/csv",
            csv.as_bytes().to_vec(),
        )
        .await;
    let report = reply.expect(200).clone();
    assert_eq!(
        (report["created"].as_u64(), report["refused"].as_u64()),
        (Some(3), Some(4)),
        "{report}"
    );
    let rows = report["rows"].as_array().expect("rows");
    let summary: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap_or(0),
                r["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, "created"),
            (3, "created"),
            (4, "refused"),
            (5, "refused"),
            (6, "refused"),
            (7, "refused"),
            (9, "created")
        ]
    );
    assert!(
        rows[2]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("already exists"),
        "{}",
        rows[2]
    );
    assert!(
        rows[3]["reason"].as_str().unwrap_or("").contains("email"),
        "{}",
        rows[3]
    );
    assert!(
        rows[4]["reason"].as_str().unwrap_or("").contains("name"),
        "{}",
        rows[4]
    );
    assert!(
        rows[5]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("password"),
        "{}",
        rows[5]
    );

    // Generated passwords work once handed out; given passwords are not echoed.
    let amy_password = rows[0]["temporary_password"].as_str().expect("generated");
    let (_, amy) = server.client().login("amy@school.edu", amy_password).await;
    assert_eq!(amy["role"], "student");
    assert!(rows[1]["temporary_password"].is_null());
    server
        .client()
        .login("ben@school.edu", "ben's password")
        .await;

    // Whole-file refusals.
    let import = |body: &'static str, content_type: &'static str| {
        school.admin.send_raw(
            Method::POST,
            "/api/v1/users/import",
            content_type,
            body.as_bytes().to_vec(),
        )
    };
    import("", "text/csv")
        .await
        .expect_error(400, "invalid_class_list");
    import("email,class\na@b.c,7\n", "text/csv")
        .await
        .expect_error(400, "invalid_class_list");
    import("email,name\na@b.c,A\n", "application/json")
        .await
        .expect_error(415, "unsupported_media_type");
    school
        .teacher
        .send_raw(
            Method::POST,
            "/api/v1/users/import",
            "text/csv",
            b"email,name\n".to_vec(),
        )
        .await
        .expect_error(403, "forbidden");
    let garbage: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let reply = school
        .admin
        .send_raw(Method::POST, "/api/v1/users/import", "text/csv", garbage)
        .await;
    assert!(
        matches!(reply.status.as_u16(), 200 | 400),
        "garbage is a report or a refusal: {}",
        reply.text
    );
    let too_big = vec![b'a'; 5 * 1024 * 1024];
    let reply = school
        .admin
        .send_raw(Method::POST, "/api/v1/users/import", "text/csv", too_big)
        .await;
    reply.expect_error(413, "body_too_large");
    let total = school.admin.get("/api/v1/users").await;
    assert_eq!(
        total.expect(200)["total"],
        8,
        "5 + amy, ben, fay; nothing else was created"
    );
    server
});

both_backends!(
    a_class_list_of_the_documented_maximum_is_imported_whole,
    |server| async move {
        let school = School::new(&server).await;
        // 2,000 rows: most without a password (the server generates one), a few with one.
        let mut csv = String::from("email,name,password\n");
        for n in 0..2_000 {
            let password = if n < 10 {
                format!("chosen password {n}")
            } else {
                String::new()
            };
            csv.push_str(&format!("s{n}@school.edu,Student {n},{password}\n"));
        }
        let started = std::time::Instant::now();
        let reply = school
            .admin
            .send_raw(
                Method::POST,
                "/api/v1/users/import",
                "text/csv",
                csv.into_bytes(),
            )
            .await;
        println!(
            "2,000-row class list imported on {:?} in {:.2} s",
            server.backend,
            started.elapsed().as_secs_f64()
        );
        let report = reply.expect(200).clone();
        assert_eq!(
            (report["created"].as_u64(), report["refused"].as_u64()),
            (Some(2_000), Some(0))
        );
        let rows = report["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 2_000);
        assert!(
            rows.iter()
                .all(|r| r["status"] == "created" && r["user_id"].is_i64()),
            "every row created"
        );
        // The school holds exactly what the report says: the five users of `School` and these.
        let total = school.admin.get("/api/v1/users?per_page=1").await;
        assert_eq!(total.expect(200)["total"], 2_005);

        // A generated password is random enough for a light hash; a chosen one keeps the
        // full cost. Both sign in.
        let temporary = rows[10]["temporary_password"].as_str().expect("generated");
        assert_eq!(temporary.len(), 19, "{temporary}");
        let hash_of = |email: &'static str| {
            let store = server.store();
            async move {
                let email = classroom_courses::model::Email::parse(email).expect("an email");
                store
                    .credentials_by_email(&email)
                    .await
                    .expect("db")
                    .expect("the user exists")
                    .password_hash
            }
        };
        let light = hash_of("s10@school.edu").await;
        assert!(
            light.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{light}"
        );
        let full = hash_of("s0@school.edu").await;
        assert!(
            full.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{full}"
        );
        server.client().login("s10@school.edu", temporary).await;
        server
            .client()
            .login("s0@school.edu", "chosen password 0")
            .await;

        // An email twice in one file: the first row is created, the second says where.
        let reply = school
            .admin
            .send_raw(
                Method::POST,
                "/api/v1/users/import",
                "text/csv",
                b"email,name\ntwin@school.edu,First\nTwin@School.edu,Second\n".to_vec(),
            )
            .await;
        let rows = reply.expect(200)["rows"].clone();
        assert_eq!(rows[0]["status"], "created");
        assert_eq!(rows[1]["status"], "refused");
        assert_eq!(rows[1]["reason"], "the email is already on line 2");
        server
    }
);

both_backends!(
    an_import_that_runs_out_of_time_says_exactly_what_it_created,
    tune = |config: &mut classroomd::Config| config.http.request_timeout_secs = 2,
    |server| async move {
        // 2,000 passwords chosen by people, each hashed at the full cost: more than one
        // second of hashing (half the request timeout) on any machine this runs on.
        let school = School::new(&server).await;
        let mut csv = String::from("email,name,password\n");
        for n in 0..2_000 {
            csv.push_str(&format!("p{n}@school.edu,Pupil {n},chosen password {n}\n"));
        }
        let reply = school
            .admin
            .send_raw(
                Method::POST,
                "/api/v1/users/import",
                "text/csv",
                csv.clone().into_bytes(),
            )
            .await;
        let report = reply.expect(200).clone();
        let created = report["created"].as_u64().expect("a count");
        println!("{created} of 2,000 rows with passwords created within the time");
        let rows = report["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 2_000);
        for row in rows.iter().filter(|r| r["status"] == "refused") {
            let reason = row["reason"].as_str().unwrap_or_default();
            assert!(reason.contains("send the file again"), "{row}");
        }
        // The report is the truth: exactly the rows it says were created exist.
        let total = school.admin.get("/api/v1/users?per_page=1").await;
        assert_eq!(total.expect(200)["total"], 5 + created);
        server
    }
);
