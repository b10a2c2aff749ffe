//! Domain types. Values that come from users are constructed only by parsing (`Email::parse`),
//! so an invalid email or an empty title cannot exist past the edge.

use std::fmt;

use classroom_protocol::{CourseId, DocumentId, LessonId, ReplayId, RoomName, UserId, UserRole};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A request field that failed validation. Becomes a 422 naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

impl std::error::Error for FieldError {}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A normalized (trimmed, lower-case) email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

/// The longest email address accepted (RFC 5321's path limit less its brackets).
pub const MAX_EMAIL_LEN: usize = 254;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let email = raw.trim().to_lowercase();
        let bad = |why: &str| FieldError::new("email", format!("`{}` {why}", raw.trim()));
        if email.is_empty() {
            return Err(FieldError::new("email", "an email address is required"));
        }
        // Characters as written, as the OpenAPI document's maxLength counts them.
        if raw.trim().chars().count() > MAX_EMAIL_LEN {
            return Err(FieldError::new("email", "is longer than 254 characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains spaces or control characters"));
        }
        match email.split_once('@') {
            Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
            {
                Ok(Email(email))
            }
            _ => Err(bad("is not an email address (expected name@domain)")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_text("name", raw, 200).map(PersonName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A course or lesson title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        parse_text("title", raw, 200).map(Title)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A course description: free text, may be empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description(String);

impl Description {
    pub const MAX_CHARS: usize = 10_000;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(FieldError::new(
                "description",
                format!("is longer than {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Description(raw.trim().to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn parse_text(field: &'static str, raw: &str, max_chars: usize) -> Result<String, FieldError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if text.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("is longer than {max_chars} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(field, "contains control characters"));
    }
    Ok(text.to_string())
}

/// A plaintext password on its way to the hasher. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 256;

    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        Self::parse_field("password", raw)
    }

    pub fn parse_field(field: &'static str, raw: &str) -> Result<Self, FieldError> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(FieldError::new(
                field,
                format!("must have at least {} characters", Self::MIN_CHARS),
            ));
        }
        if n > Self::MAX_CHARS {
            return Err(FieldError::new(
                field,
                format!("must have at most {} characters", Self::MAX_CHARS),
            ));
        }
        Ok(Password(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Milliseconds since the Unix epoch: how timestamps are stored in both databases.
pub fn to_millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A user account as the API shows it (no password hash, ever).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: UserRole,
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A user account with its secrets, for authentication only.
#[derive(Debug, Clone)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
    pub session_version: i64,
}

/// A course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Course {
    pub id: CourseId,
    pub title: String,
    pub description: String,
    pub created_by: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Its lessons are recorded from the moment they go live (teachers can still pause or
    /// stop, and start recording when this is off).
    #[serde(default)]
    pub record_by_default: bool,
}

/// How a user relates to a course; decides what they may see and do in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CourseMembership {
    /// A school admin who is not a teacher of the course.
    Admin,
    Teacher,
    Student,
}

/// The life of a lesson: scheduled → live → ended, or scheduled → cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LessonState {
    Scheduled,
    Live,
    Ended,
    Cancelled,
}

/// What can happen to a lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LessonEvent {
    /// A teacher goes live.
    GoLive,
    /// The teacher ends the lesson (or the room closes).
    End,
    /// The lesson is called off before it started.
    Cancel,
    /// Title or times change; only before the lesson started.
    Edit,
}

/// A lesson event that the lesson's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the lesson is {from}, so it cannot be {action}")]
pub struct LessonTransitionError {
    pub from: &'static str,
    pub action: &'static str,
}

impl LessonState {
    pub fn as_str(self) -> &'static str {
        match self {
            LessonState::Scheduled => "scheduled",
            LessonState::Live => "live",
            LessonState::Ended => "ended",
            LessonState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Scheduled, Self::Live, Self::Ended, Self::Cancelled]
            .into_iter()
            .find(|state| state.as_str() == s)
    }

    /// The state after `event`, or why the event is refused. The only place lesson rules live.
    pub fn apply(self, event: LessonEvent) -> Result<LessonState, LessonTransitionError> {
        use LessonEvent::*;
        use LessonState::*;
        match (self, event) {
            (Scheduled, GoLive) => Ok(Live),
            (Live, GoLive) => Ok(Live),
            (Live, End) => Ok(Ended),
            (Scheduled, Cancel) => Ok(Cancelled),
            (Scheduled, Edit) => Ok(Scheduled),
            (from, event) => Err(LessonTransitionError {
                from: from.as_str(),
                action: match event {
                    GoLive => "started",
                    End => "ended",
                    Cancel => "cancelled",
                    Edit => "edited",
                },
            }),
        }
    }

    /// Whether a participant may still join the lesson's room.
    pub fn is_joinable(self) -> bool {
        matches!(self, LessonState::Scheduled | LessonState::Live)
    }
}

/// A lesson of a course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Lesson {
    pub id: LessonId,
    pub course_id: CourseId,
    pub title: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    pub state: LessonState,
    #[serde(with = "time::serde::rfc3339::option")]
    pub live_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ended_at: Option<OffsetDateTime>,
    /// The room of this lesson's live session.
    pub room: RoomName,
}

/// A user a moderator removed from a lesson: refused entry until a teacher lets them back in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Removal {
    pub user_id: UserId,
    pub name: String,
    pub email: String,
    /// The moderator who removed them.
    pub removed_by: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub removed_at: OffsetDateTime,
}

/// Where a replay is in its pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayState {
    Processing,
    Ready,
    Failed,
}

impl ReplayState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayState::Processing => "processing",
            ReplayState::Ready => "ready",
            ReplayState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Processing, Self::Ready, Self::Failed]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A replay of a lesson in its course's library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Replay {
    pub id: ReplayId,
    pub lesson_id: LessonId,
    pub course_id: CourseId,
    pub title: String,
    pub state: ReplayState,
    pub duration_ms: Option<i64>,
    pub size_bytes: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ready_at: Option<OffsetDateTime>,
    /// Chapter marks: stage changes, screen share on and off (ready replays).
    #[serde(default)]
    pub chapters: Vec<ReplayChapter>,
    /// Why the replay could not be prepared (failed replays; the last error while retrying).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The breakout room recorded, for a breakout room's replay; absent for the lesson's
    /// main room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakout: Option<ReplayBreakout>,
}

/// The breakout room a replay recorded: its round in the lesson and its index in the round
/// (from 0; the web client shows "Room 1" for 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplayBreakout {
    pub round: u32,
    pub room: u32,
}

impl ReplayBreakout {
    /// The breakout room `room` names; `None` for a lesson's main room.
    pub fn of_room(room: &classroom_protocol::RoomName) -> Option<Self> {
        room.breakout()
            .map(|(_, round, room)| ReplayBreakout { round, room })
    }
}

/// A chapter mark of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplayChapter {
    /// Milliseconds from the replay's start.
    pub at_ms: u64,
    pub title: String,
}

/// Where a job of the queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub const ALL: [JobState; 4] = [Self::Queued, Self::Running, Self::Done, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What a job of the queue makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// The replay of a finished recording.
    Replay,
    /// The pages of an uploaded document.
    Document,
    /// One event POSTed to one webhook.
    Webhook,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Replay => "replay",
            JobKind::Document => "document",
            JobKind::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Replay, Self::Document, Self::Webhook]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A job of the queue: make the replay of one recording, or the pages of one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordingJob {
    pub id: i64,
    pub kind: JobKind,
    /// The recording's folder under `<data_dir>/recordings` (replay jobs).
    pub recording: Option<String>,
    /// The recorded lesson (replay jobs).
    pub lesson_id: Option<LessonId>,
    /// The replay it makes (replay jobs).
    pub replay_id: Option<ReplayId>,
    /// The document it prepares (document jobs).
    pub document_id: Option<DocumentId>,
    /// The webhook delivery it sends (webhook jobs).
    pub delivery_id: Option<i64>,
    pub state: JobState,
    /// Attempts so far.
    pub attempts: i64,
    /// A queued job is not claimed before this time.
    #[serde(with = "time::serde::rfc3339")]
    pub run_after: OffsetDateTime,
    /// The worker that claimed it last.
    pub worker: Option<String>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// The kind of file a document was uploaded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentSource {
    Pdf,
    Pptx,
    Odp,
    Docx,
}

impl DocumentSource {
    pub const ALL: [DocumentSource; 4] = [Self::Pdf, Self::Pptx, Self::Odp, Self::Docx];

    pub fn as_str(self) -> &'static str {
        match self {
            DocumentSource::Pdf => "pdf",
            DocumentSource::Pptx => "pptx",
            DocumentSource::Odp => "odp",
            DocumentSource::Docx => "docx",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kind a file's name says (`Lecture 3.PPTX` is a PPTX), if it is one we take.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let (_, extension) = name.rsplit_once('.')?;
        Self::parse(&extension.to_ascii_lowercase())
    }

    /// The kind a request's media type says, if it is one we take.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        Some(match essence.to_ascii_lowercase().as_str() {
            "application/pdf" => Self::Pdf,
            "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
                Self::Pptx
            }
            "application/vnd.oasis.opendocument.presentation" => Self::Odp,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Self::Docx,
            _ => return None,
        })
    }
}

/// Where a document is in its preparation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentState {
    /// Queued or being converted.
    Processing,
    /// Its pages can be shown.
    Ready,
    /// It could not be prepared: `error` says why.
    Failed,
}

impl DocumentState {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentState::Processing => "processing",
            DocumentState::Ready => "ready",
            DocumentState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Processing, Self::Ready, Self::Failed]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A document of a course's materials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Document {
    pub id: DocumentId,
    pub course_id: CourseId,
    pub title: String,
    pub source: DocumentSource,
    pub state: DocumentState,
    /// Bytes uploaded.
    pub size_bytes: i64,
    /// Pages (ready documents).
    pub pages: Option<i64>,
    /// Why it could not be prepared (failed documents).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub uploaded_by: Option<UserId>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ready_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            Email::parse("  Ada@School.EDU ").map(|e| e.0),
            Ok("ada@school.edu".into())
        );
        for bad in ["", "ada", "@school", "ada@", "a b@c.d", "a@b@c"] {
            let err = Email::parse(bad).expect_err(bad);
            assert_eq!(err.field, "email");
        }
    }

    #[test]
    fn titles_and_names_refuse_empty_and_control_characters() {
        assert!(Title::parse("   ").is_err());
        assert!(PersonName::parse("Ada\u{0}").is_err());
        assert!(Title::parse(&"x".repeat(201)).is_err());
        assert_eq!(Title::parse(" Algebra ").map(|t| t.0), Ok("Algebra".into()));
    }

    #[test]
    fn passwords_never_print() {
        let p = Password::parse("correct horse").expect("long enough");
        assert!(!format!("{p:?}").contains("horse"));
        assert!(Password::parse("short").is_err());
    }

    #[test]
    fn lesson_state_machine_allows_only_its_transitions() {
        use LessonEvent::*;
        use LessonState::*;
        assert_eq!(Scheduled.apply(GoLive), Ok(Live));
        assert_eq!(
            Live.apply(GoLive),
            Ok(Live),
            "a second teacher joining keeps it live"
        );
        assert_eq!(Live.apply(End), Ok(Ended));
        assert_eq!(Scheduled.apply(Cancel), Ok(Cancelled));
        assert_eq!(Scheduled.apply(Edit), Ok(Scheduled));
        for (from, event) in [
            (Scheduled, End),
            (Live, Cancel),
            (Live, Edit),
            (Ended, GoLive),
            (Cancelled, GoLive),
        ] {
            assert!(
                from.apply(event).is_err(),
                "{from:?} + {event:?} must be refused"
            );
        }
        let err = Ended.apply(GoLive).expect_err("ended is final");
        assert_eq!(
            err.to_string(),
            "the lesson is ended, so it cannot be started"
        );
    }

    #[test]
    fn millis_round_trip() {
        let t = time::macros::datetime!(2026-11-24 09:30:00.123 UTC);
        assert_eq!(from_millis(to_millis(t)), t);
    }
}
