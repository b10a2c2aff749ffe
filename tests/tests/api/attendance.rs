//! Attendance through the REST API, written by the server as the room reports it: one interval
//! for a reconnect within the grace time, the CSV exports agreeing with the JSON, a restart
//! mid-lesson keeping every interval written before it, and nobody else seeing it.

use std::time::Duration;

use classroom_protocol::signal::{
    ClientMessage, PollAnswer, PollKind, PollQuestion, QuickPoll, ServerMessage,
};
use classroom_tests::Client;
use classroom_tests::both_backends;
use classroom_tests::school::join_token;
use classroom_tests::ws::Ws;
use serde_json::{Value, json};

use super::*;

/// Asks `path` as `client` until `done` holds of the JSON body (attendance is written just
/// after the room reports it), for at most five seconds.
async fn eventually(client: &Client, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let reply = client.get(path).await;
        let body = reply.expect(200).clone();
        if done(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "attendance never became as expected: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The report row of `user` in a lesson report or course summary.
fn row_of(report: &Value, user: i64) -> Option<Value> {
    report["items"]
        .as_array()?
        .iter()
        .find(|row| row["user_id"] == user)
        .cloned()
}

/// The CSV as header → value maps, one per row.
fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("a header")
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|line| {
            // The school's names and emails here hold no commas or quotes.
            header
                .iter()
                .cloned()
                .zip(line.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

/// The CSV row of `user` agrees with the JSON row on every number and flag.
#[track_caller]
fn agrees(csv: &[std::collections::HashMap<String, String>], json: &Value, columns: &[&str]) {
    let user = json["user_id"].to_string();
    let row = csv
        .iter()
        .find(|r| r["user_id"] == user)
        .unwrap_or_else(|| panic!("no CSV row for user {user}"));
    for column in columns {
        let expected = match &json[*column] {
            Value::Array(items) => items.len().to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(row[*column], expected, "column {column} of user {user}");
    }
}

both_backends!(
    a_reconnect_is_one_interval_and_the_csv_agrees_with_the_api,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Fractions").await;
        let report = format!("/api/v1/lessons/{lesson}/attendance");
        let (mut tess, _) =
            Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;
        let (mut sam, _) = Ws::join(&server.base, &join_token(&school.student, lesson).await).await;
        let sam_id = sam.me.expect("joined");
        sam.ok(ClientMessage::RaiseHand).await;
        sam.ok(ClientMessage::Chat {
            text: "hello".into(),
        })
        .await;
        tess.ok(ClientMessage::InviteToStage {
            participant: sam_id,
        })
        .await;
        sam.ok(ClientMessage::LeaveStage).await;
        // A quiz Sam gets right, then a quick poll he answers (closed by the lesson's end).
        let quiz = PollQuestion {
            kind: PollKind::TrueFalse,
            question: "Is 1/2 more than 1/3?".into(),
            options: Vec::new(),
            correct: Some(PollAnswer::Choices(vec![0])),
            anonymous: false,
            timer_secs: None,
            changeable: false,
        };
        for ask in [
            ClientMessage::AskPoll { poll: quiz },
            ClientMessage::AskQuickPoll {
                preset: QuickPoll::Abcd,
            },
        ] {
            tess.ok(ask).await;
            let asked = sam
                .recv_where(|m| matches!(m, ServerMessage::Poll { poll } if !poll.closed))
                .await;
            let ServerMessage::Poll { poll } = asked else {
                unreachable!()
            };
            sam.ok(ClientMessage::AnswerPoll {
                poll: poll.id,
                answer: PollAnswer::Choices(vec![0]),
            })
            .await;
        }

        // The network drops, and Sam is back well within the grace time: one interval.
        sam.drop_connection();
        let (mut sam, joined) =
            Ws::join(&server.base, &join_token(&school.student, lesson).await).await;
        let ServerMessage::Joined { you, .. } = joined else {
            unreachable!()
        };
        assert_eq!(you.id, sam_id, "the same place");
        sam.ok(ClientMessage::Leave).await;
        let body = eventually(&school.teacher, &report, |body| {
            row_of(body, school.student_id)
                .is_some_and(|row| row["intervals"][0]["left_reason"] == "left")
        })
        .await;
        let row = row_of(&body, school.student_id).expect("Sam's row");
        assert_eq!(row["intervals"].as_array().map(Vec::len), Some(1), "{row}");
        assert_eq!(row["role"], "student");
        assert_eq!(row["hands_raised"], 1);
        assert_eq!(row["chat_messages"], 1);
        // The lesson is scheduled for 2030: not late, and gone long before its end.
        assert_eq!(row["came_late"], false);
        assert_eq!(row["left_early"], true);
        assert_eq!(body["total"], 2, "the teacher is there too");
        assert_eq!(body["lesson"]["id"], lesson);

        // Coming back after leaving is a second interval; the lesson's end closes it.
        let (_sam, _) = Ws::join(&server.base, &join_token(&school.student, lesson).await).await;
        tess.ok(ClientMessage::EndLesson).await;
        // The lesson's state is written by another consumer of the room's events.
        let body = eventually(&school.teacher, &report, |body| {
            body["lesson"]["state"] == "ended"
                && row_of(body, school.student_id).is_some_and(|row| {
                    row["intervals"][1]["left_reason"] == "lesson_ended"
                        && !row["last_left_at"].is_null()
                        && row["poll_answers"] == 2
                })
        })
        .await;
        let row = row_of(&body, school.student_id).expect("Sam's row");
        // The teacher ended the lesson with Sam in it: he did not leave early after all.
        assert_eq!(row["left_early"], false);
        assert_eq!(
            (&row["quiz_answers"], &row["quiz_correct"]),
            (&json!(1), &json!(1))
        );
        let teacher = row_of(&body, school.teacher_id).expect("Tess's row");
        assert_eq!(teacher["role"], "teacher");
        assert_eq!(teacher["intervals"][0]["left_reason"], "lesson_ended");

        // The CSV has the same rows and numbers.
        let csv = school.teacher.get(&format!("{report}.csv")).await;
        assert_eq!(csv.status.as_u16(), 200, "{}", csv.text);
        assert!(
            csv.headers[reqwest::header::CONTENT_TYPE]
                .to_str()
                .unwrap_or("")
                .starts_with("text/csv")
        );
        let lesson_csv = csv_rows(&csv.text);
        assert_eq!(lesson_csv.len(), 2);
        let columns = [
            "name",
            "email",
            "role",
            "intervals",
            "present_seconds",
            "minutes_present",
            "came_late",
            "late_minutes",
            "left_early",
            "stage_seconds",
            "hands_raised",
            "chat_messages",
            "poll_answers",
            "quiz_answers",
            "quiz_correct",
            "first_joined_at",
            "last_left_at",
        ];
        agrees(&lesson_csv, &row, &columns);
        agrees(&lesson_csv, &teacher, &columns);

        // The course's summary sums Sam's lessons (one), as JSON and CSV alike.
        let course = format!("/api/v1/courses/{}/attendance", school.course_id);
        let summary = school.teacher.get(&course).await.expect(200).clone();
        assert_eq!(summary["total"], 1, "one enrolled student");
        assert_eq!(summary["lessons_held"], 1);
        let sums = row_of(&summary, school.student_id).expect("Sam's summary");
        assert_eq!(sums["lessons_attended"], 1);
        assert_eq!(sums["present_seconds"], row["present_seconds"]);
        assert_eq!(sums["hands_raised"], 1);
        assert_eq!(sums["chat_messages"], 1);
        assert_eq!(sums["quiz_correct"], 1);
        assert_eq!(sums["times_left_early"], 0);
        let course_csv = school.teacher.get(&format!("{course}.csv")).await;
        agrees(
            &csv_rows(&course_csv.text),
            &sums,
            &[
                "lessons_held",
                "lessons_attended",
                "present_seconds",
                "minutes_present",
                "times_late",
                "times_left_early",
                "stage_seconds",
                "hands_raised",
                "chat_messages",
                "poll_answers",
                "quiz_answers",
                "quiz_correct",
            ],
        );
        // Paging: one student per page, the second page empty.
        let paged = school
            .teacher
            .get(&format!("{course}?page=2&per_page=1"))
            .await;
        assert_eq!(paged.expect(200)["items"], serde_json::json!([]));
        assert_eq!(paged.body["total"], 1);

        // Sam sees the same numbers for himself.
        let own = school
            .student
            .get(&format!("{course}/me"))
            .await
            .expect(200)
            .clone();
        assert_eq!(own["summary"]["present_seconds"], row["present_seconds"]);
        assert_eq!(own["lessons"][0]["lesson"]["id"], lesson);
        assert_eq!(
            own["lessons"][0]["attendance"]["intervals"],
            row["intervals"]
        );
        server
    }
);

both_backends!(
    attendance_is_for_the_courses_teachers_and_admins,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Fractions").await;
        let report = format!("/api/v1/lessons/{lesson}/attendance");
        let course = format!("/api/v1/courses/{}/attendance", school.course_id);
        for path in [
            &report,
            &format!("{report}.csv"),
            &course,
            &format!("{course}.csv"),
        ] {
            school
                .student
                .get(path)
                .await
                .expect_error(403, "forbidden");
            school
                .outsider
                .get(path)
                .await
                .expect_error(403, "not_a_member");
            school
                .other_teacher
                .get(path)
                .await
                .expect_error(403, "not_a_member");
            school.admin.get(path).await.expect(200);
            server.client().get(path).await.expect(401);
        }
        school
            .teacher
            .get(&format!("{course}/me"))
            .await
            .expect_error(403, "not_a_student");
        school
            .outsider
            .get(&format!("{course}/me"))
            .await
            .expect_error(403, "not_a_member");
        school
            .teacher
            .get("/api/v1/lessons/31337/attendance")
            .await
            .expect_error(404, "not_found");
        school
            .teacher
            .get(&format!("{report}?page=first"))
            .await
            .expect_error(400, "invalid_query");
        // Nobody was there yet: an empty report, not an error.
        let empty = school.teacher.get(&report).await;
        assert_eq!(empty.expect(200)["total"], 0);
        let own = school.student.get(&format!("{course}/me")).await;
        assert_eq!(own.expect(200)["lessons"], serde_json::json!([]));
        server
    }
);

both_backends!(
    a_restart_mid_lesson_keeps_every_interval_written_before,
    |mut server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Fractions").await;
        let report = format!("/api/v1/lessons/{lesson}/attendance");
        let (_tess, _) = Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;
        let (_sam, _) = Ws::join(&server.base, &join_token(&school.student, lesson).await).await;
        eventually(&school.teacher, &report, |body| body["total"] == 2).await;

        // The server stops with the lesson running: nobody left, so the stays stay open.
        server.restart().await;
        let teacher = school.teacher.at(&server.base);
        let student = school.student.at(&server.base);
        let body = teacher.get(&report).await.expect(200).clone();
        let row = row_of(&body, school.student_id).expect("Sam's row survives");
        assert_eq!(row["intervals"].as_array().map(Vec::len), Some(1));
        assert!(row["intervals"][0]["left_at"].is_null(), "{row}");
        assert!(!row["intervals"][0]["last_seen_at"].is_null());

        // Sam joins the new room: the old stay ends at its last stamp, a new one begins.
        let restarted = time::OffsetDateTime::now_utc();
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (_sam, _) = Ws::join(&server.base, &join_token(&student, lesson).await).await;
        let body = eventually(&teacher, &report, |body| {
            row_of(body, school.student_id)
                .is_some_and(|row| row["intervals"].as_array().map(Vec::len) == Some(2))
        })
        .await;
        let row = row_of(&body, school.student_id).expect("Sam's row");
        let first = &row["intervals"][0];
        assert_eq!(first["left_reason"], "lost");
        assert_eq!(first["left_at"], first["last_seen_at"]);
        assert!(row["intervals"][1]["left_at"].is_null());

        // Tess does not come back: the sweep (of any server, once her stay has gone unstamped
        // for a minute) closes her stay at its last stamp, and leaves Sam's new one open.
        let closed = server
            .store()
            .attendance_close_stale(restarted)
            .await
            .expect("the sweep runs");
        assert_eq!(closed, 1);
        let body = teacher.get(&report).await.expect(200).clone();
        let tess = row_of(&body, school.teacher_id).expect("Tess's row");
        assert_eq!(tess["intervals"][0]["left_reason"], "lost");
        assert_eq!(
            tess["intervals"][0]["left_at"],
            tess["intervals"][0]["last_seen_at"]
        );
        assert!(!tess["last_left_at"].is_null());
        let sam = row_of(&body, school.student_id).expect("Sam's row");
        assert!(sam["intervals"][1]["left_at"].is_null());
        server
    }
);

both_backends!(
    a_students_stay_in_a_breakout_room_is_stored_with_the_room,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Group work").await;
        let (mut tess, _) =
            Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;
        let (mut sam, _) = Ws::join(&server.base, &join_token(&school.student, lesson).await).await;
        let sam_id = sam.me.expect("joined");
        let open = ClientMessage::OpenBreakouts {
            request: classroom_protocol::signal::BreakoutRequest {
                rooms: 2,
                mode: classroom_protocol::signal::BreakoutMode::ByHand,
                assignment: vec![Vec::new(), vec![sam_id]],
                duration_seconds: None,
                warning_seconds: None,
                record: false,
            },
        };
        tess.ok(open).await;
        sam.recv_where(|m| matches!(m, ServerMessage::Moved { to: Some(_) }))
            .await;
        sam.recv_where(|m| matches!(m, ServerMessage::Joined { .. }))
            .await;
        tess.ok(ClientMessage::CloseBreakouts).await;
        sam.recv_where(|m| matches!(m, ServerMessage::Moved { to: None }))
            .await;

        let store = server.store();
        let lesson_id = classroom_protocol::LessonId(lesson);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let stays = loop {
            let stays = store
                .lesson_breakout_stays(lesson_id)
                .await
                .expect("the stays read");
            if stays.first().is_some_and(|s| s.ended_at.is_some())
                || std::time::Instant::now() > deadline
            {
                break stays;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(stays.len(), 1, "{stays:?}");
        assert_eq!(stays[0].user, classroom_protocol::UserId(school.student_id));
        assert_eq!(stays[0].room, 1, "the second room");
        let ended = stays[0].ended_at.expect("closed when the rooms closed");
        assert!(ended >= stays[0].started_at);

        // The lesson's report says it, as "Room 2", in JSON and CSV alike.
        let report = format!("/api/v1/lessons/{lesson}/attendance");
        let body = school.teacher.get(&report).await.expect(200).clone();
        let row = row_of(&body, school.student_id).expect("Sam's row");
        assert_eq!(
            row["breakout_rooms"].as_array().map(Vec::len),
            Some(1),
            "{row}"
        );
        assert_eq!(row["breakout_rooms"][0]["room"], 2);
        assert!(!row["breakout_rooms"][0]["left_at"].is_null());
        let csv = school.teacher.get(&format!("{report}.csv")).await;
        let sam = csv_rows(&csv.text)
            .into_iter()
            .find(|r| r["user_id"] == school.student_id.to_string())
            .expect("Sam's CSV row");
        assert_eq!(sam["breakout_rooms"], "2");

        // The course's summary sums the stays up, in JSON and CSV alike.
        let course = format!("/api/v1/courses/{}/attendance", school.course_id);
        let body = school.teacher.get(&course).await.expect(200).clone();
        let summary = row_of(&body, school.student_id).expect("Sam's summary");
        assert_eq!(summary["breakout_stays"], 1, "{summary}");
        let seconds = (ended - stays[0].started_at).whole_seconds();
        assert_eq!(summary["breakout_seconds"], seconds, "{summary}");
        let csv = school.teacher.get(&format!("{course}.csv")).await;
        let sam = csv_rows(&csv.text)
            .into_iter()
            .find(|r| r["user_id"] == school.student_id.to_string())
            .expect("Sam's CSV summary");
        assert_eq!(sam["breakout_stays"], "1");
        assert_eq!(sam["breakout_seconds"], seconds.to_string());
        // The student's own attendance names the room of each lesson.
        let own = school
            .student
            .get(&format!("{course}/me"))
            .await
            .expect(200)
            .clone();
        assert_eq!(own["summary"]["breakout_stays"], 1, "{own}");
        assert_eq!(
            own["lessons"][0]["attendance"]["breakout_rooms"][0]["room"],
            2
        );
        server
    }
);
