use classroom_protocol::UserRole;
use classroom_tests::both_backends;
use serde_json::json;

use super::*;

both_backends!(teachers_and_admins_create_courses, |server| async move {
    let school = School::new(&server).await;
    let by_admin = school
        .admin
        .post(
            "/api/v1/courses",
            json!({"title": "Physics", "description": ""}),
        )
        .await;
    let physics = id(by_admin.expect(201));
    let created = school
        .teacher
        .post("/api/v1/courses", json!({"title": "  Chemistry  "}))
        .await;
    let chemistry = created.expect(201).clone();
    assert_eq!(
        chemistry["title"], "Chemistry",
        "titles are trimmed; description defaults to empty"
    );

    school
        .student
        .post("/api/v1/courses", json!({"title": "Mine"}))
        .await
        .expect_error(403, "forbidden");
    server
        .client()
        .post("/api/v1/courses", json!({"title": "Anon"}))
        .await
        .expect_error(401, "unauthenticated");
    let empty = school
        .teacher
        .post("/api/v1/courses", json!({"title": "   "}))
        .await;
    empty.expect_error(422, "invalid_field");
    assert_eq!(empty.body["error"]["field"], "title");
    school
        .teacher
        .post("/api/v1/courses", json!({"description": "no title"}))
        .await
        .expect_error(422, "invalid_body");
    school
        .teacher
        .post("/api/v1/courses", json!({"title": 5}))
        .await
        .expect_error(422, "invalid_body");

    // Each sees their own courses; the admin sees all.
    let titles = |reply: &classroom_tests::Reply| -> Vec<String> {
        reply.body["items"].as_array().map_or(vec![], |a| {
            a.iter()
                .map(|c| c["title"].as_str().unwrap_or("").to_string())
                .collect()
        })
    };
    let mine = school.teacher.get("/api/v1/courses").await;
    mine.expect(200);
    assert_eq!(titles(&mine), vec!["Algebra 7b", "Chemistry"]);
    let admins = school.admin.get("/api/v1/courses").await;
    admins.expect(200);
    assert_eq!(titles(&admins), vec!["Algebra 7b", "Chemistry", "Physics"]);
    let students = school.student.get("/api/v1/courses").await;
    students.expect(200);
    assert_eq!(titles(&students), vec!["Algebra 7b"]);
    let outsider = school.outsider.get("/api/v1/courses").await;
    assert_eq!(outsider.expect(200)["total"], 0);
    assert!(physics > 0);
    server
});

both_backends!(course_detail_is_for_members, |server| async move {
    let school = School::new(&server).await;
    let path = format!("/api/v1/courses/{}", school.course_id);
    let detail = school.student.get(&path).await;
    let detail = detail.expect(200);
    assert_eq!(detail["membership"], "student");
    assert_eq!(detail["student_count"], 1);
    assert_eq!(detail["teachers"][0]["email"], "tess@school.edu");
    assert_eq!(
        school.teacher.get(&path).await.expect(200)["membership"],
        "teacher"
    );
    assert_eq!(
        school.admin.get(&path).await.expect(200)["membership"],
        "admin"
    );
    school
        .outsider
        .get(&path)
        .await
        .expect_error(403, "not_a_member");
    school
        .other_teacher
        .get(&path)
        .await
        .expect_error(403, "not_a_member");
    school
        .student
        .get("/api/v1/courses/987654")
        .await
        .expect_error(404, "not_found");

    let renamed = school
        .teacher
        .patch(&path, json!({"title": "Algebra 7B"}))
        .await;
    assert_eq!(renamed.expect(200)["title"], "Algebra 7B");
    school
        .student
        .patch(&path, json!({"title": "Mine now"}))
        .await
        .expect_error(403, "forbidden");
    school
        .other_teacher
        .patch(&path, json!({"title": "Mine now"}))
        .await
        .expect_error(403, "not_a_member");
    school
        .teacher
        .patch(&path, json!({"title": ""}))
        .await
        .expect_error(422, "invalid_field");
    server
});

both_backends!(assigning_teachers, |server| async move {
    let school = School::new(&server).await;
    let teachers = format!("/api/v1/courses/{}/teachers", school.course_id);
    school
        .student
        .post(&teachers, json!({"user_id": school.other_teacher_id}))
        .await
        .expect_error(403, "forbidden");
    school
        .other_teacher
        .post(&teachers, json!({"user_id": school.other_teacher_id}))
        .await
        .expect_error(403, "not_a_member");
    school
        .teacher
        .post(&teachers, json!({"user_id": school.other_teacher_id}))
        .await
        .expect(201);
    school
        .teacher
        .post(&teachers, json!({"user_id": school.other_teacher_id}))
        .await
        .expect_error(409, "already_member");
    let wrong_role = school
        .teacher
        .post(&teachers, json!({"user_id": school.outsider_id}))
        .await;
    wrong_role.expect_error(409, "wrong_role");
    school
        .teacher
        .post(&teachers, json!({"user_id": 99999}))
        .await
        .expect_error(404, "not_found");
    school
        .teacher
        .post(&teachers, json!({"user": 1}))
        .await
        .expect_error(422, "invalid_body");
    school
        .admin
        .post(
            "/api/v1/courses/4242/teachers",
            json!({"user_id": school.other_teacher_id}),
        )
        .await
        .expect_error(404, "not_found");

    // The new teacher now runs the course.
    let listed = school.student.get(&teachers).await;
    assert_eq!(listed.expect(200)["total"], 2);
    let lesson = school
        .other_teacher
        .post(
            &format!("/api/v1/courses/{}/lessons", school.course_id),
            json!({"title": "Guest lesson", "starts_at": "2030-01-01T10:00:00Z", "ends_at": "2030-01-01T11:00:00Z"}),
        )
        .await;
    lesson.expect(201);

    let remove = format!("{teachers}/{}", school.other_teacher_id);
    school
        .student
        .delete(&remove)
        .await
        .expect_error(403, "forbidden");
    school.admin.delete(&remove).await.expect(204);
    school
        .admin
        .delete(&remove)
        .await
        .expect_error(404, "not_found");
    school
        .other_teacher
        .get(&format!("/api/v1/courses/{}", school.course_id))
        .await
        .expect_error(403, "not_a_member");
    server
});

both_backends!(enrolling_students, |server| async move {
    let school = School::new(&server).await;
    let enrollments = format!("/api/v1/courses/{}/enrollments", school.course_id);
    school
        .student
        .post(&enrollments, json!({"user_id": school.outsider_id}))
        .await
        .expect_error(403, "forbidden");
    school
        .teacher
        .post(&enrollments, json!({"user_id": school.outsider_id}))
        .await
        .expect(201);
    school
        .teacher
        .post(&enrollments, json!({"user_id": school.outsider_id}))
        .await
        .expect_error(409, "already_member");
    school
        .teacher
        .post(&enrollments, json!({"user_id": school.other_teacher_id}))
        .await
        .expect_error(409, "wrong_role");
    school
        .teacher
        .post(&enrollments, json!({"user_id": 77777}))
        .await
        .expect_error(404, "not_found");
    school
        .teacher
        .post(&enrollments, json!({"user_id": "seven"}))
        .await
        .expect_error(422, "invalid_body");

    let listed = school.teacher.get(&enrollments).await;
    assert_eq!(listed.expect(200)["total"], 2);
    school
        .student
        .get(&enrollments)
        .await
        .expect_error(403, "forbidden");
    let courses = school.outsider.get("/api/v1/courses").await;
    assert_eq!(
        courses.expect(200)["total"],
        1,
        "the newly enrolled student sees the course"
    );

    let unenroll = format!("{enrollments}/{}", school.outsider_id);
    school
        .outsider
        .delete(&unenroll)
        .await
        .expect_error(403, "forbidden");
    school.admin.delete(&unenroll).await.expect(204);
    school
        .teacher
        .delete(&unenroll)
        .await
        .expect_error(404, "not_found");
    school
        .outsider
        .get(&format!("/api/v1/courses/{}", school.course_id))
        .await
        .expect_error(403, "not_a_member");
    server
});

both_backends!(enrolling_a_class_at_once, |server| async move {
    let school = School::new(&server).await;
    let bulk = format!("/api/v1/courses/{}/enrollments/bulk", school.course_id);
    let (kim, _) = server
        .user(UserRole::Student, "kim@school.edu", "Kim Student")
        .await;
    // Ids and a pasted list together: each one is enrolled or refused on its own.
    let report = school
        .teacher
        .post(
            &bulk,
            json!({
                "user_ids": [school.outsider_id, school.student_id, school.other_teacher_id, 77777],
                "emails": ["  KIM@school.edu ", "nobody@school.edu", "not an email"],
            }),
        )
        .await;
    let report = report.expect(200).clone();
    assert_eq!(
        (
            &report["enrolled"],
            &report["already_enrolled"],
            &report["refused"]
        ),
        (&json!(2), &json!(1), &json!(4)),
        "{report}"
    );
    let statuses: Vec<&str> = report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| row["status"].as_str().expect("a status"))
        .collect();
    assert_eq!(
        statuses,
        [
            "enrolled",
            "already_enrolled",
            "refused",
            "refused",
            "enrolled",
            "refused",
            "refused"
        ]
    );
    assert!(
        report["rows"][2]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("teacher")),
        "{report}"
    );
    assert_eq!(report["rows"][4]["email"], "  KIM@school.edu ");
    let listed = school
        .teacher
        .get(&format!("/api/v1/courses/{}/enrollments", school.course_id))
        .await;
    assert_eq!(listed.expect(200)["total"], 3, "sam, the outsider and kim");
    let kim_courses = kim.get("/api/v1/courses").await;
    assert_eq!(kim_courses.expect(200)["total"], 1);

    // Only the course's teachers and admins; nothing named enrols nobody; too many is refused
    // whole.
    school
        .student
        .post(&bulk, json!({"user_ids": [school.outsider_id]}))
        .await
        .expect_error(403, "forbidden");
    school
        .other_teacher
        .post(&bulk, json!({"user_ids": [school.outsider_id]}))
        .await
        .expect_error(403, "not_a_member");
    let nobody = school.teacher.post(&bulk, json!({})).await;
    assert_eq!(nobody.expect(200)["rows"], json!([]));
    let many: Vec<i64> = (1..=1001).collect();
    school
        .admin
        .post(&bulk, json!({"user_ids": many}))
        .await
        .expect_error(422, "invalid_field");
    server
});
