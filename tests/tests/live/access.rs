//! A teacher's and an administrator's decisions hold in the live room: a removed student stays
//! out (with any join token, across a restart) until a teacher lets them back in; a disabled or
//! unenrolled user is closed out at once, with a close code saying why, and their older join
//! tokens are refused; a cancelled or ended lesson refuses tokens issued before. Every test
//! runs on SQLite and on PostgreSQL (the removals and the join's check are stored there).

use std::time::{Duration, Instant};

use classroom_protocol::ErrorCode;
use classroom_protocol::signal::{ClientMessage, LeaveReason, ServerMessage};
use classroom_tests::both_backends;
use classroom_tests::ws::WAIT;
use serde_json::json;

use super::*;

/// Close codes of docs/protocol.md.
const REMOVED: u16 = 4001;
const DISABLED: u16 = 4002;
const NOT_A_MEMBER: u16 = 4003;
const ENDED: u16 = 4004;
const CANCELLED: u16 = 4005;

/// How soon a user who lost access must be closed out: the promise. The work is a
/// channel send and two task hops in one process, so this holds on a busy machine too.
const CLOSED_WITHIN: Duration = Duration::from_secs(1);

/// Joins with `token` and asserts it is refused with `code`, and the connection closed with
/// `close_code`.
async fn refused_join(base: &str, token: &str, code: ErrorCode, close_code: u16) {
    let mut ws = Ws::connect(base).await;
    ws.send(ClientMessage::join(token.to_string())).await;
    let refused = ws.recv().await;
    assert!(
        matches!(&refused, Some(ServerMessage::Error { code: got, .. }) if *got == code),
        "expected {code}, got {refused:?}"
    );
    assert_eq!(ws.close_code_within(WAIT).await, Some(close_code));
}

/// Waits until `ws` is closed and returns the close code; fails unless it comes within
/// [`CLOSED_WITHIN`] of `since`.
async fn closed_out(ws: &mut Ws, since: Instant) -> Option<u16> {
    let code = ws.close_code_within(WAIT).await;
    let took = since.elapsed();
    assert!(took <= CLOSED_WITHIN, "closed out after {took:?}");
    code
}

both_backends!(
    a_removed_student_stays_out_until_a_teacher_lets_them_back_in,
    |mut server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Removal").await;
        let (mut teacher, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
        let old_token = token(&school.student, lesson).await;
        let (mut sam, _) = Ws::join(&server.base, &old_token).await;
        let sam_id = sam.me.expect("joined");

        teacher
            .ok(ClientMessage::RemoveParticipant {
                participant: sam_id,
            })
            .await;
        sam.recv_where(|m| matches!(m, ServerMessage::Removed { .. }))
            .await;
        assert_eq!(sam.close_code_within(WAIT).await, Some(REMOVED));
        teacher.recv_where(|m| matches!(m, ServerMessage::ParticipantLeft { participant, reason: LeaveReason::Removed } if *participant == sam_id)).await;

        // Neither a new join token nor the old one lets them back in; nor does a restart,
        // which forgets the room but not the stored removal.
        let join = format!("/api/v1/lessons/{lesson}/join");
        let mut new_token = school.student.post_empty(&join).await;
        for _ in 0..100 {
            if new_token.status != 200 {
                break;
            }
            // The room stores the removal a moment after it happens.
            tokio::time::sleep(Duration::from_millis(20)).await;
            new_token = school.student.post_empty(&join).await;
        }
        new_token.expect_error(403, "removed_from_lesson");
        refused_join(
            &server.base,
            &old_token,
            ErrorCode::RemovedFromLesson,
            REMOVED,
        )
        .await;
        server.restart().await;
        let teacher_api = school.teacher.at(&server.base);
        let student_api = school.student.at(&server.base);
        refused_join(
            &server.base,
            &old_token,
            ErrorCode::RemovedFromLesson,
            REMOVED,
        )
        .await;

        // The teacher sees who was removed; students and other teachers may not.
        let removals = format!("/api/v1/lessons/{lesson}/removals");
        let listed = teacher_api.get(&removals).await;
        let listed = listed.expect(200).as_array().expect("a list").clone();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["user_id"], school.student_id);
        assert_eq!(listed[0]["name"], "Sam Student");
        assert_eq!(listed[0]["removed_by"], school.teacher_id);
        student_api
            .get(&removals)
            .await
            .expect_error(403, "forbidden");
        let other_teacher = school.other_teacher.at(&server.base);
        other_teacher
            .get(&removals)
            .await
            .expect_error(403, "not_a_member");
        let readmit = format!("{removals}/{}", school.student_id);
        student_api
            .delete(&readmit)
            .await
            .expect_error(403, "forbidden");

        // Let back in: a join token again, and the room.
        teacher_api.delete(&readmit).await.expect(204);
        teacher_api
            .delete(&readmit)
            .await
            .expect_error(404, "not_found");
        assert_eq!(teacher_api.get(&removals).await.expect(200), &json!([]));
        let (_teacher, _) = Ws::join(&server.base, &token(&teacher_api, lesson).await).await;
        let (back, joined) = Ws::join(&server.base, &token(&student_api, lesson).await).await;
        assert!(matches!(joined, ServerMessage::Joined { .. }));
        assert!(back.me.is_some());
        server
    }
);

both_backends!(
    a_disabled_student_is_closed_out_at_once_and_their_old_token_refused,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Disabled").await;
        let (mut teacher, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
        let old_token = token(&school.student, lesson).await;
        let (mut sam, _) = Ws::join(&server.base, &old_token).await;
        let sam_id = sam.me.expect("joined");
        sam.ok(ClientMessage::Chat {
            text: "before".into(),
        })
        .await;
        teacher
            .recv_where(
                |m| matches!(m, ServerMessage::Chat { message } if message.text == "before"),
            )
            .await;

        let user = format!("/api/v1/users/{}", school.student_id);
        school
            .admin
            .patch(&user, json!({"disabled": true}))
            .await
            .expect(200);
        let disabled_at = Instant::now();
        assert_eq!(closed_out(&mut sam, disabled_at).await, Some(DISABLED));
        // The class sees them leave; nothing of theirs arrives any more.
        let left = teacher
            .recv_where(|m| matches!(m, ServerMessage::ParticipantLeft { participant, .. } if *participant == sam_id))
            .await;
        assert_eq!(
            left,
            ServerMessage::ParticipantLeft {
                participant: sam_id,
                reason: LeaveReason::Revoked
            }
        );
        refused_join(
            &server.base,
            &old_token,
            ErrorCode::AccountDisabled,
            DISABLED,
        )
        .await;
        let marker = teacher.send(ClientMessage::Ping).await;
        loop {
            match teacher.recv().await {
                Some(ServerMessage::Chat { message }) => {
                    panic!("a chat arrived after the account was disabled: {message:?}")
                }
                Some(ServerMessage::Ok { id }) if id == marker => break,
                Some(_) => {}
                None => panic!("the teacher's connection closed"),
            }
        }

        // Enabled again, the same (unexpired) token works: the check is of now, not a list.
        school
            .admin
            .patch(&user, json!({"disabled": false}))
            .await
            .expect(200);
        let (sam, joined) = Ws::join(&server.base, &old_token).await;
        assert!(matches!(joined, ServerMessage::Joined { .. }));
        assert_ne!(
            sam.me,
            Some(sam_id),
            "a new place: the old one was taken away"
        );
        server
    }
);

both_backends!(
    unenrolled_students_and_removed_teachers_are_closed_out_at_once,
    |server| async move {
        let school = School::new(&server).await;
        let course = school.course_id;
        school
            .teacher
            .post(
                &format!("/api/v1/courses/{course}/teachers"),
                json!({"user_id": school.other_teacher_id}),
            )
            .await
            .expect(201);
        let lesson = school.lesson("Unenrolled").await;
        let (mut teacher, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
        let otto_token = token(&school.other_teacher, lesson).await;
        let (mut otto, _) = Ws::join(&server.base, &otto_token).await;
        let sam_token = token(&school.student, lesson).await;
        let (mut sam, _) = Ws::join(&server.base, &sam_token).await;
        let sam_id = sam.me.expect("joined");

        let enrollment = format!("/api/v1/courses/{course}/enrollments/{}", school.student_id);
        school.teacher.delete(&enrollment).await.expect(204);
        let unenrolled_at = Instant::now();
        assert_eq!(
            closed_out(&mut sam, unenrolled_at).await,
            Some(NOT_A_MEMBER)
        );
        teacher.recv_where(|m| matches!(m, ServerMessage::ParticipantLeft { participant, reason: LeaveReason::Revoked } if *participant == sam_id)).await;
        refused_join(
            &server.base,
            &sam_token,
            ErrorCode::NotAMember,
            NOT_A_MEMBER,
        )
        .await;
        school
            .student
            .post_empty(&format!("/api/v1/lessons/{lesson}/join"))
            .await
            .expect_error(403, "not_a_member");

        // A teacher taken off the course goes the same way.
        let teaching = format!(
            "/api/v1/courses/{course}/teachers/{}",
            school.other_teacher_id
        );
        school.teacher.delete(&teaching).await.expect(204);
        let removed_at = Instant::now();
        assert_eq!(closed_out(&mut otto, removed_at).await, Some(NOT_A_MEMBER));
        refused_join(
            &server.base,
            &otto_token,
            ErrorCode::NotAMember,
            NOT_A_MEMBER,
        )
        .await;
        // The others stay.
        teacher.ok(ClientMessage::Ping).await;
        server
    }
);

both_backends!(
    cancelled_and_ended_lessons_refuse_tokens_issued_before,
    |mut server| async move {
        let school = School::new(&server).await;
        // Students may wait in the room of a scheduled lesson; cancelling it closes them out.
        let lesson = school.lesson("Cancelled").await;
        let teacher_token = token(&school.teacher, lesson).await;
        let sam_token = token(&school.student, lesson).await;
        let (mut sam, _) = Ws::join(&server.base, &sam_token).await;
        school
            .teacher
            .post_empty(&format!("/api/v1/lessons/{lesson}/cancel"))
            .await
            .expect(200);
        let cancelled_at = Instant::now();
        assert_eq!(closed_out(&mut sam, cancelled_at).await, Some(CANCELLED));
        refused_join(
            &server.base,
            &sam_token,
            ErrorCode::LessonCancelled,
            CANCELLED,
        )
        .await;
        refused_join(
            &server.base,
            &teacher_token,
            ErrorCode::LessonCancelled,
            CANCELLED,
        )
        .await;

        // An ended lesson's room is gone after a restart; the stored state still refuses.
        let lesson = school.lesson("Ended").await;
        let sam_token = token(&school.student, lesson).await;
        let (mut teacher, _) = Ws::join(&server.base, &token(&school.teacher, lesson).await).await;
        teacher.ok(ClientMessage::EndLesson).await;
        assert_eq!(teacher.close_code_within(WAIT).await, Some(ENDED));
        refused_join(&server.base, &sam_token, ErrorCode::LessonEnded, ENDED).await;
        // The room reports the end to the database a moment later.
        let ended = format!("/api/v1/lessons/{lesson}");
        for _ in 0..100 {
            if school.teacher.get(&ended).await.body["state"] == "ended" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.restart().await;
        refused_join(&server.base, &sam_token, ErrorCode::LessonEnded, ENDED).await;
        server
    }
);
