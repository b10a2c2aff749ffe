//! Polls and quizzes: a moderator asks (or asks a preset "A/B/C/D" or "Yes/No" poll in one
//! message), students answer (once, or until it closes when the poll allows changes),
//! moderators see the results live and close the poll, or its timer does, and show the results
//! to the class when they choose. A late joiner (or a reconnect) finds the open poll and their
//! own answer in `joined`. A closed poll leaves the room as [`Output::PollClosed`] for the
//! lesson's store; so does the open one when the lesson ends or the room closes.
//!
//! Cost: an answer costs the student an `ok`, and moderators one results message each at most
//! every [`RESULTS_INTERVAL`] (the rest wait for [`Room::poll_timeout`]); the class hears
//! nothing until a moderator shows the results. So a lecture answering at once costs
//! O(moderators) messages per interval, not O(students) per answer.
//!
//! Only the latest poll is kept: asking another closes an open one first. Every limit on what
//! a client can grow is here ([`MAX_POLLS`], [`MAX_OPTIONS`], the lengths).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use classroom_protocol::signal::{
    ClosedPoll, NamedAnswer, PollAnswer, PollId, PollInfo, PollKind, PollQuestion, PollResults,
    QuickPoll, ServerMessage, StoredAnswer, ValueTally,
};
use classroom_protocol::{ErrorCode, UserId};
use serde::{Deserialize, Serialize};

use super::{Actor, Output, Refusal, Room};

/// Polls one room may ask (a lesson's room; asking more is refused).
pub const MAX_POLLS: u32 = 100;
/// Options of a choice poll.
pub const MAX_OPTIONS: usize = 10;
pub const MAX_QUESTION_CHARS: usize = 500;
pub const MAX_OPTION_CHARS: usize = 200;
pub const MAX_TEXT_ANSWER_CHARS: usize = 200;
/// A poll's timer, in seconds.
pub const TIMER_SECS: std::ops::RangeInclusive<u32> = 5..=3600;
/// Moderators get live results at most this often.
pub const RESULTS_INTERVAL: Duration = Duration::from_millis(500);
/// Distinct free answers (numbers, texts) listed in results.
pub const MAX_VALUES_LISTED: usize = 50;

/// Why a poll or an answer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PollError {
    #[error("{0} is not this room's current poll")]
    Unknown(PollId),
    #[error("{0} is closed")]
    Closed(PollId),
    #[error("you answered already, and this poll does not allow changing answers")]
    AlreadyAnswered,
    #[error("{MAX_POLLS} polls were asked in this lesson already")]
    TooManyPolls,
    #[error("moderators ask polls; the class answers them")]
    ModeratorsDoNotAnswer,
    #[error("the question is longer than {MAX_QUESTION_CHARS} characters")]
    QuestionTooLong,
    #[error("a choice poll has 2 to {MAX_OPTIONS} options")]
    OptionCount,
    #[error("an option is empty or longer than {MAX_OPTION_CHARS} characters")]
    BadOption,
    #[error("only single and multiple choice polls have options")]
    OptionsNotAllowed,
    #[error("the timer is {} to {} seconds", TIMER_SECS.start(), TIMER_SECS.end())]
    Timer,
    #[error("the correct answer does not fit the poll: {0}")]
    Correct(AnswerError),
    #[error("{0}")]
    Answer(AnswerError),
}

/// Why an answer does not fit its poll.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("a {} poll takes {}", .0.as_str(), expected(*.0))]
    WrongKind(PollKind),
    #[error("option {index} is not one of the poll's {options} options (from 0)")]
    NotAnOption { index: u32, options: usize },
    #[error("choose exactly one option")]
    OneChoice,
    #[error("choose at least one option, each once")]
    Choices,
    #[error("the number must be finite")]
    NotFinite,
    #[error("the text is empty or longer than {MAX_TEXT_ANSWER_CHARS} characters")]
    Text,
}

fn expected(kind: PollKind) -> &'static str {
    match kind {
        PollKind::SingleChoice | PollKind::TrueFalse => "one choice",
        PollKind::MultipleChoice => "choices",
        PollKind::Number => "a number",
        PollKind::Text => "a text",
    }
}

impl PollError {
    pub fn code(&self) -> ErrorCode {
        match self {
            PollError::Unknown(_) | PollError::Closed(_) => ErrorCode::PollClosed,
            PollError::AlreadyAnswered => ErrorCode::AlreadyAnswered,
            PollError::TooManyPolls => ErrorCode::TooManyPolls,
            PollError::ModeratorsDoNotAnswer | PollError::Answer(_) => ErrorCode::InvalidAnswer,
            PollError::QuestionTooLong
            | PollError::OptionCount
            | PollError::BadOption
            | PollError::OptionsNotAllowed
            | PollError::Timer
            | PollError::Correct(_) => ErrorCode::InvalidPoll,
        }
    }
}

impl From<PollError> for Refusal {
    fn from(e: PollError) -> Self {
        Refusal::new(e.code(), e.to_string())
    }
}

/// The room's polls: how many were asked and the latest one.
#[derive(Debug, Default)]
pub(super) struct Polls {
    asked: u32,
    current: Option<Poll>,
    /// Bumped by every change a restored room must see (a poll asked, answered, closed or
    /// shown): the stored state's cheap key compares it instead of the answers.
    pub(super) version: u64,
    /// The time of the input being handled: messages say how long an open poll has left.
    pub(super) now: Option<Instant>,
}

#[derive(Debug)]
struct Poll {
    id: PollId,
    question: PollQuestion,
    asked_at: Instant,
    closes_at: Option<Instant>,
    closed_at: Option<Instant>,
    /// Shown to the class: late joiners get it in `joined` even once closed.
    shown: bool,
    /// By user, so that an answer outlives a participant leaving and coming back.
    answers: BTreeMap<UserId, Answer>,
    /// When moderators next get results (answers came in since they last did).
    results_due: Option<Instant>,
    results_sent: Option<Instant>,
}

#[derive(Debug)]
struct Answer {
    name: String,
    answer: PollAnswer,
}

impl Poll {
    fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }
}

/// Checks a question and fills in what the server sets (the options of true/false).
pub fn validate_question(mut question: PollQuestion) -> Result<PollQuestion, PollError> {
    if question.question.chars().count() > MAX_QUESTION_CHARS {
        return Err(PollError::QuestionTooLong);
    }
    match question.kind {
        PollKind::SingleChoice | PollKind::MultipleChoice => {
            if !(2..=MAX_OPTIONS).contains(&question.options.len()) {
                return Err(PollError::OptionCount);
            }
            let bad = |o: &String| o.trim().is_empty() || o.chars().count() > MAX_OPTION_CHARS;
            if question.options.iter().any(bad) {
                return Err(PollError::BadOption);
            }
        }
        PollKind::TrueFalse => {
            if !question.options.is_empty() {
                return Err(PollError::OptionsNotAllowed);
            }
            question.options = vec!["True".into(), "False".into()];
        }
        PollKind::Number | PollKind::Text => {
            if !question.options.is_empty() {
                return Err(PollError::OptionsNotAllowed);
            }
        }
    }
    if let Some(correct) = &question.correct {
        validate_answer(&question, correct).map_err(PollError::Correct)?;
    }
    if question
        .timer_secs
        .is_some_and(|t| !TIMER_SECS.contains(&t))
    {
        return Err(PollError::Timer);
    }
    Ok(question)
}

/// Checks that `answer` is one the poll `question` takes.
pub fn validate_answer(question: &PollQuestion, answer: &PollAnswer) -> Result<(), AnswerError> {
    let kind = question.kind;
    match (kind, answer) {
        (
            PollKind::SingleChoice | PollKind::TrueFalse | PollKind::MultipleChoice,
            PollAnswer::Choices(choices),
        ) => {
            let options = question.options.len();
            if let Some(&index) = choices.iter().find(|&&i| i as usize >= options) {
                return Err(AnswerError::NotAnOption { index, options });
            }
            if kind == PollKind::MultipleChoice {
                let mut distinct = choices.clone();
                distinct.sort_unstable();
                distinct.dedup();
                if choices.is_empty() || distinct.len() != choices.len() {
                    return Err(AnswerError::Choices);
                }
            } else if choices.len() != 1 {
                return Err(AnswerError::OneChoice);
            }
            Ok(())
        }
        (PollKind::Number, PollAnswer::Number(n)) if n.is_finite() => Ok(()),
        (PollKind::Number, PollAnswer::Number(_)) => Err(AnswerError::NotFinite),
        (PollKind::Text, PollAnswer::Text(text)) => {
            let chars = text.chars().count();
            if text.trim().is_empty() || chars > MAX_TEXT_ANSWER_CHARS {
                Err(AnswerError::Text)
            } else {
                Ok(())
            }
        }
        _ => Err(AnswerError::WrongKind(kind)),
    }
}

/// The question of a preset poll.
fn quick_question(preset: QuickPoll) -> PollQuestion {
    let options = match preset {
        QuickPoll::Abcd => vec!["A", "B", "C", "D"],
        QuickPoll::YesNo => vec!["Yes", "No"],
    };
    PollQuestion {
        kind: PollKind::SingleChoice,
        question: String::new(),
        options: options.into_iter().map(String::from).collect(),
        correct: None,
        anonymous: false,
        timer_secs: None,
        changeable: true,
    }
}

impl Room {
    pub(super) fn ask_poll(
        &mut self,
        now: Instant,
        actor: &Actor,
        question: PollQuestion,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("ask polls")?;
        let question = validate_question(question)?;
        if self.polls.asked >= MAX_POLLS {
            return Err(PollError::TooManyPolls.into());
        }
        self.close_poll_now(now, out);
        self.polls.asked += 1;
        self.polls.version += 1;
        let poll = Poll {
            id: PollId(u64::from(self.polls.asked)),
            closes_at: question
                .timer_secs
                .map(|secs| now + Duration::from_secs(secs.into())),
            question,
            asked_at: now,
            closed_at: None,
            shown: false,
            answers: BTreeMap::new(),
            results_due: None,
            results_sent: Some(now),
        };
        let info = self.poll_info(&poll);
        let results = self.results(&poll, true);
        self.polls.current = Some(poll);
        out.push(Output::Broadcast {
            except: None,
            message: ServerMessage::Poll {
                poll: Box::new(info),
            },
        });
        self.to_moderators(&results, out);
        Ok(())
    }

    pub(super) fn ask_quick_poll(
        &mut self,
        now: Instant,
        actor: &Actor,
        preset: QuickPoll,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        self.ask_poll(now, actor, quick_question(preset), out)
    }

    pub(super) fn answer_poll(
        &mut self,
        now: Instant,
        actor: &Actor,
        id: PollId,
        answer: PollAnswer,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        if actor.moderator {
            return Err(PollError::ModeratorsDoNotAnswer.into());
        }
        let poll = current_open(&mut self.polls, id)?;
        validate_answer(&poll.question, &answer).map_err(PollError::Answer)?;
        if poll.answers.contains_key(&actor.user) && !poll.question.changeable {
            return Err(PollError::AlreadyAnswered.into());
        }
        poll.answers.insert(
            actor.user,
            Answer {
                name: actor.name.clone(),
                answer,
            },
        );
        if poll.results_due.is_none() {
            let due = poll
                .results_sent
                .map_or(now, |sent| (sent + RESULTS_INTERVAL).max(now));
            poll.results_due = Some(due);
        }
        self.polls.version += 1;
        // Due now: the first answer after a quiet spell reaches moderators at once.
        self.poll_results_due(now, out);
        Ok(())
    }

    pub(super) fn close_poll(
        &mut self,
        now: Instant,
        actor: &Actor,
        id: PollId,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("close polls")?;
        current_open(&mut self.polls, id)?;
        self.close_poll_now(now, out);
        Ok(())
    }

    pub(super) fn show_poll_results(
        &mut self,
        actor: &Actor,
        id: PollId,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("show poll results")?;
        let poll = match &mut self.polls.current {
            Some(poll) if poll.id == id => poll,
            _ => return Err(PollError::Unknown(id).into()),
        };
        poll.shown = true;
        self.polls.version += 1;
        let Some(poll) = &self.polls.current else {
            return Ok(());
        };
        out.push(Output::Broadcast {
            except: None,
            message: ServerMessage::PollResults {
                results: Box::new(self.results(poll, false)),
            },
        });
        Ok(())
    }

    /// Closes the open poll, if any: the class hears it closed, moderators get the final
    /// results and the lesson's store the record.
    pub(super) fn close_poll_now(&mut self, now: Instant, out: &mut Vec<Output>) {
        let Some(poll) = self.polls.current.as_mut().filter(|p| p.is_open()) else {
            return;
        };
        poll.closed_at = Some(now);
        poll.results_due = None;
        poll.results_sent = Some(now);
        self.polls.version += 1;
        let Some(poll) = &self.polls.current else {
            return;
        };
        let info = self.poll_info(poll);
        let results = self.results(poll, true);
        let record = self.record(poll);
        out.push(Output::Broadcast {
            except: None,
            message: ServerMessage::Poll {
                poll: Box::new(info),
            },
        });
        self.to_moderators(&results, out);
        out.push(Output::PollClosed(Box::new(record)));
    }

    /// [`super::Input::Timeout`]: the poll's timer ran out, or moderators are due results.
    pub(super) fn poll_timers(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        let expired = self
            .polls
            .current
            .as_ref()
            .is_some_and(|p| p.is_open() && p.closes_at.is_some_and(|at| now >= at));
        if expired {
            self.close_poll_now(now, &mut out);
        }
        self.poll_results_due(now, &mut out);
        out
    }

    /// When the polls next need [`super::Input::Timeout`].
    pub(super) fn poll_deadline(&self) -> Option<Instant> {
        let poll = self.polls.current.as_ref()?;
        let closes = poll.closes_at.filter(|_| poll.is_open());
        [closes, poll.results_due].into_iter().flatten().min()
    }

    /// The open poll and the participant's answer to it, for `joined`: also the last poll,
    /// closed, while its results are shown.
    pub(super) fn poll_for_joined(&self, user: UserId) -> (Option<PollInfo>, Option<PollAnswer>) {
        let Some(poll) = self
            .polls
            .current
            .as_ref()
            .filter(|p| p.is_open() || p.shown)
        else {
            return (None, None);
        };
        let answer = poll.answers.get(&user).map(|a| a.answer.clone());
        (Some(self.poll_info(poll)), answer)
    }

    /// The current poll's results for a moderator who just joined.
    pub(super) fn poll_results_for_moderator(&self) -> Option<ServerMessage> {
        let poll = self.polls.current.as_ref()?;
        Some(ServerMessage::PollResults {
            results: Box::new(self.results(poll, true)),
        })
    }

    fn poll_results_due(&mut self, now: Instant, out: &mut Vec<Output>) {
        let Some(poll) = self.polls.current.as_mut() else {
            return;
        };
        if poll.results_due.is_none_or(|due| now < due) {
            return;
        }
        poll.results_due = None;
        poll.results_sent = Some(now);
        let Some(poll) = &self.polls.current else {
            return;
        };
        let results = self.results(poll, true);
        self.to_moderators(&results, out);
    }

    fn to_moderators(&self, results: &PollResults, out: &mut Vec<Output>) {
        for (id, p) in &self.participants {
            if p.moderates() && p.connection.is_some() {
                out.push(Output::Send {
                    to: *id,
                    message: ServerMessage::PollResults {
                        results: Box::new(results.clone()),
                    },
                });
            }
        }
    }

    fn ms_since_open(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.opened_at).as_millis()).unwrap_or(u64::MAX)
    }

    fn poll_info(&self, poll: &Poll) -> PollInfo {
        let q = &poll.question;
        PollInfo {
            id: poll.id,
            kind: q.kind,
            question: q.question.clone(),
            options: q.options.clone(),
            anonymous: q.anonymous,
            changeable: q.changeable,
            quiz: q.correct.is_some(),
            asked_at_ms: self.ms_since_open(poll.asked_at),
            closes_at_ms: poll.closes_at.map(|at| self.ms_since_open(at)),
            closes_in_ms: poll.closes_at.filter(|_| poll.is_open()).map(|at| {
                let now = self.polls.now.unwrap_or(poll.asked_at);
                u64::try_from(at.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX)
            }),
            closed: !poll.is_open(),
        }
    }

    /// The results; `for_moderators` adds who answered what (unless anonymous).
    fn results(&self, poll: &Poll, for_moderators: bool) -> PollResults {
        let q = &poll.question;
        let mut tallies = vec![
            0u32;
            if q.kind.has_options() {
                q.options.len()
            } else {
                0
            }
        ];
        let mut values: BTreeMap<String, u32> = BTreeMap::new();
        let mut correct_count = 0u32;
        for a in poll.answers.values() {
            match &a.answer {
                PollAnswer::Choices(choices) => {
                    for &c in choices {
                        if let Some(t) = tallies.get_mut(c as usize) {
                            *t += 1;
                        }
                    }
                }
                other => *values.entry(other.display(&q.options)).or_default() += 1,
            }
            if q.correct.as_ref().is_some_and(|c| a.answer.matches(c)) {
                correct_count += 1;
            }
        }
        let mut values: Vec<ValueTally> = values
            .into_iter()
            .map(|(value, count)| ValueTally { value, count })
            .collect();
        values.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        values.truncate(MAX_VALUES_LISTED);
        let answers = (for_moderators && !q.anonymous).then(|| {
            poll.answers
                .iter()
                .map(|(user, a)| NamedAnswer {
                    user_id: *user,
                    name: a.name.clone(),
                    answer: a.answer.clone(),
                })
                .collect()
        });
        PollResults {
            poll: self.poll_info(poll),
            correct: q.correct.clone(),
            answered: u32::try_from(poll.answers.len()).unwrap_or(u32::MAX),
            correct_count: q.correct.as_ref().map(|_| correct_count),
            tallies,
            values,
            answers,
        }
    }

    /// The record of a closed poll for the store: anonymous polls keep no user.
    fn record(&self, poll: &Poll) -> ClosedPoll {
        let q = &poll.question;
        let mut answers: Vec<StoredAnswer> = poll
            .answers
            .iter()
            .map(|(user, a)| StoredAnswer {
                user_id: (!q.anonymous).then_some(*user),
                name: (!q.anonymous).then(|| a.name.clone()),
                answer: a.answer.clone(),
                correct: q.correct.as_ref().map(|c| a.answer.matches(c)),
            })
            .collect();
        if q.anonymous {
            // In user order, the rows would still say who is who to anyone with the roster.
            answers.sort_by_cached_key(|a| a.answer.display(&q.options));
        }
        ClosedPoll {
            id: poll.id,
            question: q.clone(),
            asked_at_ms: self.ms_since_open(poll.asked_at),
            closed_at_ms: self.ms_since_open(poll.closed_at.unwrap_or(poll.asked_at)),
            answers,
        }
    }
}

/// The room's latest poll as a room keeps it across a restore ([`super::RoomState`]): times
/// on the room's own clock (milliseconds since it opened, which a restore carries on), so a
/// poll's timer goes on where it was; the node's time down does not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptPoll {
    pub id: PollId,
    pub question: PollQuestion,
    pub asked_at_ms: u64,
    #[serde(default)]
    pub closes_at_ms: Option<u64>,
    #[serde(default)]
    pub closed_at_ms: Option<u64>,
    #[serde(default)]
    pub shown: bool,
    #[serde(default)]
    pub answers: Vec<NamedAnswer>,
}

impl Room {
    /// The polls asked so far and the latest poll, for the stored state.
    pub(super) fn kept_polls(&self) -> (u32, Option<KeptPoll>) {
        let poll = self.polls.current.as_ref().map(|poll| KeptPoll {
            id: poll.id,
            question: poll.question.clone(),
            asked_at_ms: self.ms_since_open(poll.asked_at),
            closes_at_ms: poll.closes_at.map(|at| self.ms_since_open(at)),
            closed_at_ms: poll.closed_at.map(|at| self.ms_since_open(at)),
            shown: poll.shown,
            answers: poll
                .answers
                .iter()
                .map(|(user, a)| NamedAnswer {
                    user_id: *user,
                    name: a.name.clone(),
                    answer: a.answer.clone(),
                })
                .collect(),
        });
        (self.polls.asked, poll)
    }

    /// Takes back the stored polls into a room whose clock ([`Room::restore`]) is set. A poll
    /// still open goes on taking answers (its timer where it was); its answers, and those
    /// given since, are stored once, when it closes. A stored question that no longer passes
    /// the checks (a row from an older server, or damaged) is dropped, not trusted.
    pub(super) fn restore_polls(&mut self, now: Instant, asked: u32, kept: Option<KeptPoll>) {
        self.polls.asked = self.polls.asked.max(asked.min(MAX_POLLS));
        let Some(kept) = kept else {
            return;
        };
        let Ok(question) = validate_question(kept.question) else {
            return;
        };
        let at = |ms: u64| self.opened_at + Duration::from_millis(ms);
        let answers = kept
            .answers
            .into_iter()
            .filter(|a| validate_answer(&question, &a.answer).is_ok())
            .map(|a| {
                let answer = Answer {
                    name: a.name,
                    answer: a.answer,
                };
                (a.user_id, answer)
            })
            .collect();
        self.polls.current = Some(Poll {
            id: kept.id,
            asked_at: at(kept.asked_at_ms),
            closes_at: kept.closes_at_ms.map(at),
            closed_at: kept.closed_at_ms.map(at),
            question,
            shown: kept.shown,
            answers,
            results_due: None,
            results_sent: Some(now),
        });
        self.polls.asked = self
            .polls
            .asked
            .max(u32::try_from(kept.id.0).unwrap_or(MAX_POLLS));
        self.polls.version += 1;
    }
}

/// The current poll if it is `id` and open.
fn current_open(polls: &mut Polls, id: PollId) -> Result<&mut Poll, PollError> {
    match polls.current.as_mut().filter(|poll| poll.id == id) {
        Some(poll) if poll.is_open() => Ok(poll),
        Some(_) => Err(PollError::Closed(id)),
        None => Err(PollError::Unknown(id)),
    }
}
