//! Polls and quizzes end to end: asked and answered over signaling, stored by the server when
//! they close (or when the lesson ends), then listed and exported for the course's teachers,
//! and each student's own quiz answers after the lesson.

use std::time::Duration;

use classroom_protocol::signal::{
    ClientMessage, PollAnswer, PollId, PollKind, PollQuestion, ServerMessage,
};
use classroom_tests::both_backends;
use classroom_tests::school::join_token;
use classroom_tests::ws::Ws;
use serde_json::{Value, json};

use super::*;

/// Asks the REST API until `ready` holds for the reply body (the server stores polls from
/// its event queue, a moment after the room closed them).
async fn eventually(
    client: &classroom_tests::Client,
    path: &str,
    status: u16,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..100 {
        let reply = client.get(path).await;
        if reply.status.as_u16() == status && ready(&reply.body) {
            return reply.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} did not become ready");
}

fn quiz() -> PollQuestion {
    PollQuestion {
        kind: PollKind::SingleChoice,
        question: "=2+2, the answer?".into(),
        options: vec!["3".into(), "4".into(), "5".into()],
        correct: Some(PollAnswer::Choices(vec![1])),
        anonymous: false,
        timer_secs: None,
        changeable: false,
    }
}

both_backends!(
    polls_are_stored_listed_exported_and_shown_to_their_students,
    |server| async move {
        let school = School::new(&server).await;
        let lesson = school.lesson("Arithmetic").await;
        let polls = format!("/api/v1/lessons/{lesson}/polls");
        let (mut teacher, _) =
            Ws::join(&server.base, &join_token(&school.teacher, lesson).await).await;
        let (mut student, _) =
            Ws::join(&server.base, &join_token(&school.student, lesson).await).await;
        assert_eq!(
            school.teacher.get(&polls).await.expect(200)["items"],
            json!([])
        );

        teacher.ok(ClientMessage::AskPoll { poll: quiz() }).await;
        let asked = student
            .recv_where(|m| matches!(m, ServerMessage::Poll { .. }))
            .await;
        let ServerMessage::Poll { poll } = asked else {
            unreachable!()
        };
        assert!(poll.quiz && !poll.closed);
        let answer = |choice| ClientMessage::AnswerPoll {
            poll: PollId(1),
            answer: PollAnswer::Choices(vec![choice]),
        };
        student.ok(answer(1)).await;
        assert_eq!(
            student.refused(answer(2)).await,
            classroom_protocol::ErrorCode::AlreadyAnswered
        );
        teacher
            .ok(ClientMessage::ClosePoll { poll: PollId(1) })
            .await;

        let listed = eventually(&school.teacher, &polls, 200, |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 1)
        })
        .await;
        let first = &listed["items"][0];
        assert_eq!(first["kind"], "single_choice");
        assert_eq!(first["options"], json!(["3", "4", "5"]));
        assert_eq!(first["correct"], json!({"choices": [1]}));
        assert_eq!(first["tallies"], json!([0, 1, 0]));
        assert_eq!(first["correct_count"], 1);
        assert_eq!(first["answers"][0]["user_id"], school.student_id);
        assert_eq!(first["answers"][0]["answer_text"], "4");
        assert_eq!(first["answers"][0]["correct"], true);

        // An anonymous poll left open is stored when the lesson ends, without its users.
        let mut text_poll = quiz();
        text_poll.kind = PollKind::Text;
        text_poll.options = vec![];
        text_poll.correct = None;
        text_poll.anonymous = true;
        teacher.ok(ClientMessage::AskPoll { poll: text_poll }).await;
        student
            .ok(ClientMessage::AnswerPoll {
                poll: PollId(2),
                answer: PollAnswer::Text("Paris".into()),
            })
            .await;

        // Only those who run the course see the answers of others.
        school
            .student
            .get(&polls)
            .await
            .expect_error(403, "forbidden");
        school
            .outsider
            .get(&polls)
            .await
            .expect_error(403, "not_a_member");
        server
            .client()
            .get(&polls)
            .await
            .expect_error(401, "unauthenticated");
        let mine = format!("/api/v1/lessons/{lesson}/polls/mine");
        school
            .student
            .get(&mine)
            .await
            .expect_error(409, "lesson_not_over");

        teacher.ok(ClientMessage::EndLesson).await;
        let listed = eventually(&school.teacher, &polls, 200, |b| {
            b["items"].as_array().is_some_and(|i| i.len() == 2)
        })
        .await;
        let second = &listed["items"][1];
        assert_eq!(second["anonymous"], true);
        assert_eq!(second["answers"][0]["user_id"], Value::Null);
        assert_eq!(second["answers"][0]["name"], Value::Null);
        assert_eq!(second["answers"][0]["answer"], json!({"text": "Paris"}));

        let csv = school.teacher.get(&format!("{polls}.csv")).await;
        csv.expect(200);
        assert!(
            csv.headers["content-type"]
                .to_str()
                .is_ok_and(|t| t.starts_with("text/csv")),
            "{:?}",
            csv.headers
        );
        let lines: Vec<&str> = csv.text.lines().collect();
        assert_eq!(
            lines[0],
            "poll,asked_at,kind,question,options,correct_answer,user_id,name,answer,correct"
        );
        assert_eq!(lines.len(), 3, "{}", csv.text);
        // A question that looks like a formula stays text in a spreadsheet.
        assert!(lines[1].contains("'=2+2, the answer?"), "{}", lines[1]);
        assert!(
            lines[1].contains(&format!(",{},", school.student_id)),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with(",4,yes"), "{}", lines[1]);
        assert!(
            lines[2].contains("Paris") && lines[2].contains(",text,"),
            "{}",
            lines[2]
        );
        school
            .student
            .get(&format!("{polls}.csv"))
            .await
            .expect_error(403, "forbidden");

        // After the lesson, the student sees their own quiz answers; the anonymous poll keeps
        // no users, so it is not theirs to list.
        let own = eventually(&school.student, &mine, 200, |_| true).await;
        let items = own["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "{own}");
        assert_eq!(items[0]["answer"], json!({"choices": [1]}));
        assert_eq!(items[0]["correct"], json!({"choices": [1]}));
        assert_eq!(items[0]["correct_text"], "4");
        assert_eq!(items[0]["is_correct"], true);
        school
            .outsider
            .get(&mine)
            .await
            .expect_error(403, "not_a_member");
        server
    }
);
