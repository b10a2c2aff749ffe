//! Polls and quizzes: the question a moderator asks, the answers students give, the tallies
//! moderators see live (and the class once a moderator shows them), and the record of a
//! closed poll that the server stores per lesson. The signaling messages that carry them are
//! in [`crate::signal`] (`ask_poll`, `answer_poll`, `poll`, `poll_results`, ...); the REST API
//! returns the stored records. `docs/protocol.md` ("Polls and quizzes") explains the flow.

use serde::{Deserialize, Serialize};

use crate::UserId;

/// A poll of one room; increasing within the room, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct PollId(pub u64);

impl std::fmt::Display for PollId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "poll {}", self.0)
    }
}

/// What kind of answer a poll takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PollKind {
    /// One of the `options` (answer `{"choices": [i]}`).
    SingleChoice,
    /// Any non-empty set of the `options` (answer `{"choices": [i, j]}`).
    MultipleChoice,
    /// The options are `["True", "False"]`, set by the server (answer `{"choices": [0]}` for
    /// true, `[1]` for false).
    TrueFalse,
    /// A finite number (answer `{"number": 4.5}`).
    Number,
    /// A short text (answer `{"text": "..."}`).
    Text,
}

impl PollKind {
    /// Whether answers are indices into the options.
    pub fn has_options(self) -> bool {
        matches!(
            self,
            PollKind::SingleChoice | PollKind::MultipleChoice | PollKind::TrueFalse
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PollKind::SingleChoice => "single_choice",
            PollKind::MultipleChoice => "multiple_choice",
            PollKind::TrueFalse => "true_false",
            PollKind::Number => "number",
            PollKind::Text => "text",
        }
    }
}

/// An answer to a poll, or a poll's correct answer: one field, named after the kind of value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PollAnswer {
    /// Indices (from 0) into the poll's options: one for single choice and true/false, one or
    /// more (each once) for multiple choice.
    Choices(Vec<u32>),
    Number(f64),
    Text(String),
}

// JSON has no NaN: every number that reaches a poll compares equal to itself.
impl Eq for PollAnswer {}

impl PollAnswer {
    /// The answer as one line of text, for tallies of free answers and CSV exports: the
    /// chosen options' texts joined by `; `, the number, or the text.
    pub fn display(&self, options: &[String]) -> String {
        match self {
            PollAnswer::Choices(choices) => choices
                .iter()
                .map(|&i| {
                    options
                        .get(i as usize)
                        .cloned()
                        .unwrap_or_else(|| format!("#{i}"))
                })
                .collect::<Vec<_>>()
                .join("; "),
            PollAnswer::Number(n) => n.to_string(),
            PollAnswer::Text(t) => t.clone(),
        }
    }

    /// Whether this answer is `correct`: the same set of choices, the same number, or the
    /// same text ignoring case and surrounding spaces.
    pub fn matches(&self, correct: &PollAnswer) -> bool {
        match (self, correct) {
            (PollAnswer::Choices(a), PollAnswer::Choices(b)) => {
                let (mut a, mut b) = (a.clone(), b.clone());
                a.sort_unstable();
                b.sort_unstable();
                a == b
            }
            (PollAnswer::Number(a), PollAnswer::Number(b)) => a == b,
            (PollAnswer::Text(a), PollAnswer::Text(b)) => {
                a.trim().to_lowercase() == b.trim().to_lowercase()
            }
            _ => false,
        }
    }
}

/// What a moderator asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PollQuestion {
    pub kind: PollKind,
    /// The question (may be empty for a quick poll about what a slide shows).
    #[serde(default)]
    pub question: String,
    /// The choices of `single_choice` and `multiple_choice` (2 to 10); empty for the other
    /// kinds (the server fills in those of `true_false`).
    #[serde(default)]
    pub options: Vec<String>,
    /// The correct answer, which makes the poll a quiz. Students see it only with the results,
    /// once a moderator shows them (or, for named quizzes, in the REST API after the lesson).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<PollAnswer>,
    /// Nobody, moderators included, sees who answered what; the stored record keeps no user.
    #[serde(default)]
    pub anonymous: bool,
    /// Closes the poll by itself this many seconds after it was asked (5 to 3600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timer_secs: Option<u32>,
    /// Students may change their answer until the poll closes; otherwise they answer once.
    #[serde(default)]
    pub changeable: bool,
}

/// The preset polls a moderator asks in one click, about what the slide shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuickPoll {
    /// Single choice among "A", "B", "C", "D".
    Abcd,
    /// Single choice between "Yes" and "No".
    YesNo,
}

/// A poll as participants see it: the question without its correct answer (students get that
/// with the results), and whether it is still open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollInfo {
    pub id: PollId,
    pub kind: PollKind,
    pub question: String,
    pub options: Vec<String>,
    pub anonymous: bool,
    pub changeable: bool,
    /// Whether it has a correct answer (a quiz).
    pub quiz: bool,
    /// Milliseconds since the room opened.
    pub asked_at_ms: u64,
    /// When the timer closes it, in milliseconds since the room opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_at_ms: Option<u64>,
    /// How long the timer has left as the message is sent: a client counts down from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closes_in_ms: Option<u64>,
    pub closed: bool,
}

/// How many gave one free answer (number or text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValueTally {
    pub value: String,
    pub count: u32,
}

/// Who answered what, for moderators of a named poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedAnswer {
    pub user_id: UserId,
    pub name: String,
    pub answer: PollAnswer,
}

/// A poll's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollResults {
    pub poll: PollInfo,
    /// The correct answer, if the poll is a quiz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<PollAnswer>,
    /// How many answered.
    pub answered: u32,
    /// Of a quiz: how many answered correctly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct_count: Option<u32>,
    /// Per option, how many chose it (choice kinds; empty otherwise).
    pub tallies: Vec<u32>,
    /// Number and text polls: the most frequent answers first, at most 50.
    pub values: Vec<ValueTally>,
    /// Moderators, named polls only: each answer with its author. Absent for the class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<Vec<NamedAnswer>>,
}

/// One answer of a closed poll as stored: its author unless the poll was anonymous.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredAnswer {
    pub user_id: Option<UserId>,
    pub name: Option<String>,
    pub answer: PollAnswer,
    /// Of a quiz: whether the answer is the correct one.
    pub correct: Option<bool>,
}

/// A closed poll, for the lesson's store: the question (with the correct answer), when it ran
/// and every answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedPoll {
    pub id: PollId,
    pub question: PollQuestion,
    /// Milliseconds since the room opened.
    pub asked_at_ms: u64,
    pub closed_at_ms: u64,
    pub answers: Vec<StoredAnswer>,
}
