//! A lesson's polls and quizzes after the room closed them: their results and answers for the
//! course's teachers and admins (JSON, and CSV for a spreadsheet), and each student's own
//! quiz answers with the correct ones once the lesson has ended. Access is checked as for
//! replays: the course's members only, and the answers of others only for those who run it.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use classroom_protocol::LessonId;
use classroom_protocol::signal::PollKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{ApiPath, CurrentUser};
use super::{ApiState, course_manager, course_member, csv_download};
use crate::csv_export::defused;
use crate::model::LessonState;
use crate::store::{LessonPoll, OwnQuizAnswer};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LessonPollList {
    pub items: Vec<LessonPoll>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OwnQuizAnswerList {
    pub items: Vec<OwnQuizAnswer>,
}

/// A lesson's polls with their results and every answer, first asked first (the course's
/// teachers and admins). Anonymous polls list their answers without users.
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}/polls", tag = "polls", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = LessonPollList),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn lesson_polls(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Json<LessonPollList>> {
    let lesson = state.store.lesson(id).await?;
    course_manager(&state, &user, lesson.course_id).await?;
    Ok(Json(LessonPollList {
        items: state.store.lesson_polls(id).await?,
    }))
}

/// The same as CSV, one row per answer (a poll nobody answered has one row without an
/// answer): `poll, asked_at, kind, question, options, correct_answer, user_id, name, answer,
/// correct`. Options are joined by `; `.
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}/polls.csv", tag = "polls", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a teacher of the course or an admin", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn lesson_polls_csv(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Response> {
    let lesson = state.store.lesson(id).await?;
    course_manager(&state, &user, lesson.course_id).await?;
    let polls = state.store.lesson_polls(id).await?;
    let body = polls_csv(&polls).map_err(ApiError::internal)?;
    Ok(csv_download(body, &format!("lesson-{id}-polls.csv")))
}

/// The signed-in user's answers to the lesson's quizzes, with the correct answers, once the
/// lesson has ended (any member of the course; anonymous quizzes keep no users, so they are
/// not listed).
#[utoipa::path(
    get, path = "/api/v1/lessons/{id}/polls/mine", tag = "polls", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Lesson id")),
    responses(
        (status = 200, body = OwnQuizAnswerList),
        (status = 401, body = classroom_protocol::ErrorBody),
        (status = 403, description = "Not a member of the course", body = classroom_protocol::ErrorBody),
        (status = 404, body = classroom_protocol::ErrorBody),
        (status = 409, description = "The lesson has not ended yet (`lesson_not_over`)", body = classroom_protocol::ErrorBody),
    )
)]
pub(super) async fn own_quiz_answers(
    State(state): State<ApiState>,
    CurrentUser(user): CurrentUser,
    ApiPath(id): ApiPath<LessonId>,
) -> ApiResult<Json<OwnQuizAnswerList>> {
    let lesson = state.store.lesson(id).await?;
    course_member(&state, &user, lesson.course_id).await?;
    // During the lesson the answers would help the classmates still answering.
    if lesson.state != LessonState::Ended {
        return Err(ApiError::conflict(
            "lesson_not_over",
            "quiz answers are shown once the lesson has ended",
        ));
    }
    Ok(Json(OwnQuizAnswerList {
        items: state.store.own_quiz_answers(id, user.id).await?,
    }))
}

/// An answer's cell: numbers as they are (a negative one is no formula), the rest [`defused`].
fn free(kind: PollKind, text: &str) -> String {
    if kind == PollKind::Number {
        text.to_string()
    } else {
        defused(text).into_owned()
    }
}

fn polls_csv(polls: &[LessonPoll]) -> Result<String, csv::Error> {
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record([
        "poll",
        "asked_at",
        "kind",
        "question",
        "options",
        "correct_answer",
        "user_id",
        "name",
        "answer",
        "correct",
    ])?;
    for poll in polls {
        let asked_at = poll
            .asked_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let options = poll.options.join("; ");
        let correct = poll
            .correct
            .as_ref()
            .map(|c| c.display(&poll.options))
            .unwrap_or_default();
        let head = [
            poll.number.to_string(),
            asked_at,
            poll.kind.as_str().to_string(),
            defused(&poll.question).into_owned(),
            defused(&options).into_owned(),
            free(poll.kind, &correct),
        ];
        if poll.answers.is_empty() {
            let mut row = head.to_vec();
            row.extend([String::new(), String::new(), String::new(), String::new()]);
            out.write_record(&row)?;
        }
        for answer in &poll.answers {
            let mut row = head.to_vec();
            row.extend([
                answer.user_id.map(|u| u.to_string()).unwrap_or_default(),
                defused(answer.name.as_deref().unwrap_or_default()).into_owned(),
                free(poll.kind, &answer.answer_text),
                match answer.correct {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => String::new(),
                },
            ]);
            out.write_record(&row)?;
        }
    }
    let bytes = out.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use classroom_protocol::signal::PollAnswer;

    use super::*;
    use crate::store::StoredPollAnswer;

    fn poll(kind: PollKind, answers: Vec<StoredPollAnswer>) -> LessonPoll {
        LessonPoll {
            id: 1,
            lesson_id: LessonId(2),
            number: 3,
            kind,
            question: "How cold?".into(),
            options: vec![],
            correct: None,
            anonymous: true,
            asked_at: time::OffsetDateTime::UNIX_EPOCH,
            closed_at: time::OffsetDateTime::UNIX_EPOCH,
            answered: u32::try_from(answers.len()).unwrap_or(0),
            tallies: vec![],
            correct_count: None,
            answers,
        }
    }

    #[test]
    fn a_poll_nobody_answered_is_one_row_and_negative_numbers_stay_numbers() {
        let answer = |a: PollAnswer, text: &str| StoredPollAnswer {
            user_id: None,
            name: None,
            answer: a,
            answer_text: text.into(),
            correct: None,
        };
        let polls = [
            poll(PollKind::Text, vec![]),
            poll(
                PollKind::Number,
                vec![answer(PollAnswer::Number(-3.0), "-3")],
            ),
            poll(
                PollKind::Text,
                vec![answer(PollAnswer::Text("-x".into()), "-x")],
            ),
        ];
        let csv = polls_csv(&polls).expect("writes");
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4, "{csv}");
        assert_eq!(lines[1], "3,1970-01-01T00:00:00Z,text,How cold?,,,,,,");
        assert!(lines[2].ends_with(",,,-3,"), "{}", lines[2]);
        assert!(lines[3].ends_with(",,,'-x,"), "{}", lines[3]);
    }
}
