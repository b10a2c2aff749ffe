//! Polls and quizzes of a lesson: each poll its room closed, with every answer (its user
//! unless the poll was anonymous), listed for the course's teachers, exported as CSV, and each
//! student's own quiz answers.
//!
//! Questions and answers are stored as JSON of their wire types ([`PollAnswer`]), written only
//! here; rows that do not read back are skipped with a warning rather than failing a listing.

use std::collections::BTreeMap;

use classroom_protocol::signal::{ClosedPoll, PollAnswer, PollKind};
use classroom_protocol::{LessonId, UserId};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{Store, decode_err};
use crate::error::StoreResult;
use crate::model::{from_millis, to_millis};

/// One answer to a stored poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StoredPollAnswer {
    /// `null` for anonymous polls.
    pub user_id: Option<UserId>,
    pub name: Option<String>,
    pub answer: PollAnswer,
    /// The answer as one line of text (the chosen options' texts, the number, the text).
    pub answer_text: String,
    /// Of a quiz: whether the answer was correct.
    pub correct: Option<bool>,
}

/// A poll of a lesson with its results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LessonPoll {
    pub id: i64,
    pub lesson_id: LessonId,
    /// The poll's number in its room (1, 2, ...).
    pub number: i64,
    pub kind: PollKind,
    pub question: String,
    pub options: Vec<String>,
    /// The correct answer of a quiz.
    pub correct: Option<PollAnswer>,
    pub anonymous: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub asked_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub closed_at: OffsetDateTime,
    pub answered: u32,
    /// Per option, how many chose it (choice polls; empty otherwise).
    pub tallies: Vec<u32>,
    /// Of a quiz: how many answered correctly.
    pub correct_count: Option<u32>,
    pub answers: Vec<StoredPollAnswer>,
}

/// A student's own answer to a quiz of a lesson, with the correct one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OwnQuizAnswer {
    pub poll_id: i64,
    pub number: i64,
    pub kind: PollKind,
    pub question: String,
    pub options: Vec<String>,
    pub correct: PollAnswer,
    pub correct_text: String,
    #[serde(with = "time::serde::rfc3339")]
    pub asked_at: OffsetDateTime,
    /// `null` when the student did not answer.
    pub answer: Option<PollAnswer>,
    pub answer_text: Option<String>,
    pub is_correct: bool,
}

const POLL_COLUMNS: &str =
    "id, lesson_id, room_poll, kind, question, options, correct, anonymous, asked_at, closed_at";

fn kind_from(text: &str) -> Result<PollKind, sqlx::Error> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| decode_err("poll kind", text))
}

fn poll_from_row(row: &AnyRow) -> Result<LessonPoll, sqlx::Error> {
    let kind: String = row.try_get("kind")?;
    let options: String = row.try_get("options")?;
    let correct: Option<String> = row.try_get("correct")?;
    let correct = match correct {
        Some(json) => {
            Some(serde_json::from_str(&json).map_err(|_| decode_err("poll answer", &json))?)
        }
        None => None,
    };
    Ok(LessonPoll {
        id: row.try_get("id")?,
        lesson_id: LessonId(row.try_get("lesson_id")?),
        number: row.try_get("room_poll")?,
        kind: kind_from(&kind)?,
        question: row.try_get("question")?,
        options: serde_json::from_str(&options).map_err(|_| decode_err("options", &options))?,
        correct,
        anonymous: row.try_get::<i64, _>("anonymous")? != 0,
        asked_at: from_millis(row.try_get("asked_at")?),
        closed_at: from_millis(row.try_get("closed_at")?),
        answered: 0,
        tallies: Vec::new(),
        correct_count: None,
        answers: Vec::new(),
    })
}

fn json<T: Serialize>(value: &T) -> String {
    // Serializing our own plain types (strings, numbers, vectors) cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

impl Store {
    /// Stores a poll the room of `lesson` closed at `closed_at`; returns its id. When it was
    /// asked is `closed_at` less how long it ran.
    pub async fn save_poll(
        &self,
        lesson: LessonId,
        poll: &ClosedPoll,
        closed_at: OffsetDateTime,
    ) -> StoreResult<i64> {
        let ran_ms = poll.closed_at_ms.saturating_sub(poll.asked_at_ms);
        let asked_at = to_millis(closed_at) - i64::try_from(ran_ms).unwrap_or(0);
        let q = &poll.question;
        let mut tx = self.db.pool().begin().await?;
        let row = sqlx::query(
            "INSERT INTO lesson_polls (lesson_id, room_poll, kind, question, options, correct, \
             anonymous, asked_at, closed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id",
        )
        .bind(lesson.0)
        .bind(i64::try_from(poll.id.0).unwrap_or(i64::MAX))
        .bind(q.kind.as_str())
        .bind(q.question.as_str())
        .bind(json(&q.options))
        .bind(q.correct.as_ref().map(json))
        .bind(i64::from(q.anonymous))
        .bind(asked_at)
        .bind(to_millis(closed_at))
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        for answer in &poll.answers {
            sqlx::query(
                "INSERT INTO lesson_poll_answers (poll_id, user_id, name, answer, correct) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(answer.user_id.map(|u| u.0))
            .bind(answer.name.as_deref())
            .bind(json(&answer.answer))
            .bind(answer.correct.map(i64::from))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// The polls of `lesson`, first asked first, with their results and answers.
    pub async fn lesson_polls(&self, lesson: LessonId) -> StoreResult<Vec<LessonPoll>> {
        let sql = format!(
            "SELECT {POLL_COLUMNS} FROM lesson_polls WHERE lesson_id = $1 ORDER BY asked_at, id"
        );
        let rows = sqlx::query(super::fixed(&sql))
            .bind(lesson.0)
            .fetch_all(self.db.pool())
            .await?;
        let mut polls: Vec<LessonPoll> =
            rows.iter().map(poll_from_row).collect::<Result<_, _>>()?;
        let answers = sqlx::query(
            "SELECT a.poll_id, a.user_id, a.name, a.answer, a.correct \
             FROM lesson_poll_answers a JOIN lesson_polls p ON p.id = a.poll_id \
             WHERE p.lesson_id = $1 ORDER BY a.poll_id, a.id",
        )
        .bind(lesson.0)
        .fetch_all(self.db.pool())
        .await?;
        // The answers' texts need their poll's options: filled in below.
        let mut by_poll: BTreeMap<i64, Vec<StoredPollAnswer>> = BTreeMap::new();
        for row in &answers {
            let text: String = row.try_get("answer")?;
            let Ok(answer) = serde_json::from_str::<PollAnswer>(&text) else {
                tracing::warn!(answer = %text, "a stored poll answer does not read back; skipped");
                continue;
            };
            by_poll
                .entry(row.try_get("poll_id")?)
                .or_default()
                .push(StoredPollAnswer {
                    user_id: row.try_get::<Option<i64>, _>("user_id")?.map(UserId),
                    name: row.try_get("name")?,
                    answer,
                    answer_text: String::new(),
                    correct: row.try_get::<Option<i64>, _>("correct")?.map(|c| c != 0),
                });
        }
        for poll in &mut polls {
            poll.tallies = if poll.kind.has_options() {
                vec![0; poll.options.len()]
            } else {
                Vec::new()
            };
            let mut correct = 0u32;
            for mut answer in by_poll.remove(&poll.id).unwrap_or_default() {
                if let PollAnswer::Choices(choices) = &answer.answer {
                    for &c in choices {
                        if let Some(t) = poll.tallies.get_mut(c as usize) {
                            *t += 1;
                        }
                    }
                }
                correct += u32::from(answer.correct == Some(true));
                answer.answer_text = answer.answer.display(&poll.options);
                poll.answers.push(answer);
            }
            poll.answered = u32::try_from(poll.answers.len()).unwrap_or(u32::MAX);
            poll.correct_count = poll.correct.as_ref().map(|_| correct);
        }
        Ok(polls)
    }

    /// `user`'s answers to the quizzes (polls with a correct answer) of `lesson`; quizzes they
    /// did not answer are listed without an answer. Anonymous quizzes keep no users, so they
    /// are not listed.
    pub async fn own_quiz_answers(
        &self,
        lesson: LessonId,
        user: UserId,
    ) -> StoreResult<Vec<OwnQuizAnswer>> {
        let polls = self.lesson_polls(lesson).await?;
        Ok(polls
            .into_iter()
            .filter(|p| !p.anonymous)
            .filter_map(|p| {
                let correct = p.correct.clone()?;
                let own = p.answers.iter().find(|a| a.user_id == Some(user));
                Some(OwnQuizAnswer {
                    poll_id: p.id,
                    number: p.number,
                    kind: p.kind,
                    question: p.question.clone(),
                    correct_text: correct.display(&p.options),
                    correct,
                    asked_at: p.asked_at,
                    answer: own.map(|a| a.answer.clone()),
                    answer_text: own.map(|a| a.answer_text.clone()),
                    is_correct: own.is_some_and(|a| a.correct == Some(true)),
                    options: p.options,
                })
            })
            .collect())
    }
}
