//! Attendance reports: from the intervals and counts the server stored as rooms reported
//! them (`store/attendance.rs`), what a school asks of a lesson and a course. Who was there
//! and for how long, whether they came late or left early against the lesson's schedule, time
//! on stage, hands raised and chat messages. Pure functions of stored records, so that the
//! JSON and the CSV export of one report are the same numbers.
//!
//! Rules:
//! - An interval still open counts up to its last stamp (`last_seen_at`, refreshed every few
//!   seconds while the room runs): the numbers never run ahead of what was stored, and a
//!   server killed mid-lesson loses at most one refresh period of each open interval.
//! - Overlapping intervals (the same user in the room from two servers at once, for a moment)
//!   count once.
//! - Late: first joined more than [`PUNCTUALITY_SLACK`] after the scheduled start. Left
//!   early: gone (no interval open in a live lesson) more than [`PUNCTUALITY_SLACK`] before
//!   the lesson's end, the scheduled end or the time it was ended, whichever came first.
//! - Poll answers and breakout rooms are not reported yet: they come with their features.

use classroom_protocol::{CourseId, LessonId, UserId};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

use crate::model::{Lesson, LessonState};

/// How far from the schedule a join or a leave may be and still be on time.
pub const PUNCTUALITY_SLACK: Duration = Duration::minutes(5);

/// What an interval stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalKind {
    /// In the room.
    Present,
    /// A student on stage.
    Stage,
}

impl IntervalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IntervalKind::Present => "present",
            IntervalKind::Stage => "stage",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "present" => Some(IntervalKind::Present),
            "stage" => Some(IntervalKind::Stage),
            _ => None,
        }
    }
}

/// One stored interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntervalRecord {
    pub lesson: LessonId,
    pub user: UserId,
    pub kind: IntervalKind,
    pub started_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
    pub last_seen_at: OffsetDateTime,
    pub end_reason: Option<String>,
}

impl IntervalRecord {
    /// Where the interval ends as far as anyone knows: its end, else its last stamp.
    fn known_end(&self) -> OffsetDateTime {
        self.ended_at
            .unwrap_or(self.last_seen_at)
            .max(self.started_at)
    }
}

/// One stored lesson-and-user row: who, their role in the room, their counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttendeeRecord {
    pub lesson: LessonId,
    pub user: UserId,
    pub name: String,
    pub email: String,
    pub role: String,
    pub hands_raised: i64,
    pub chat_messages: i64,
    pub poll_answers: i64,
    pub quiz_answers: i64,
    pub quiz_correct: i64,
}

/// One stay in the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttendanceInterval {
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    /// `null` while the interval is open.
    #[serde(with = "time::serde::rfc3339::option")]
    pub left_at: Option<OffsetDateTime>,
    /// The last time the server saw it open; an open interval counts up to here.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// left, timed_out (did not reconnect in time), removed, lesson_ended, replaced,
    /// revoked, or lost (its server stopped; closed at its last stamp).
    pub left_reason: Option<String>,
}

/// One stay of a student in a breakout room of the lesson.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BreakoutStayReport {
    /// The room as the class saw it: 1 for "Room 1".
    pub room: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub joined_at: OffsetDateTime,
    /// `null` while they are there.
    #[serde(with = "time::serde::rfc3339::option")]
    pub left_at: Option<OffsetDateTime>,
}

/// One user's attendance of one lesson.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LessonAttendee {
    pub user_id: UserId,
    pub name: String,
    pub email: String,
    /// Their role in the room: teacher, assistant, student or observer.
    pub role: String,
    /// Each stay, in order; a reconnect within the grace time is one stay.
    pub intervals: Vec<AttendanceInterval>,
    #[serde(with = "time::serde::rfc3339")]
    pub first_joined_at: OffsetDateTime,
    /// When they last left; `null` while they are in the room.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_left_at: Option<OffsetDateTime>,
    pub present_seconds: i64,
    /// `present_seconds` in whole minutes.
    pub minutes_present: i64,
    /// First joined more than 5 minutes after the scheduled start.
    pub came_late: bool,
    /// Whole minutes after the scheduled start they first joined (0 unless late).
    pub late_minutes: i64,
    /// Gone more than 5 minutes before the lesson's end.
    pub left_early: bool,
    /// Time a student spent on stage.
    pub stage_seconds: i64,
    pub hands_raised: i64,
    pub chat_messages: i64,
    /// Answers to the lesson's named polls (anonymous ones keep no users).
    pub poll_answers: i64,
    /// Of those, answers to quizzes (polls with a correct answer), and how many were right.
    pub quiz_answers: i64,
    pub quiz_correct: i64,
    /// Each stay in a breakout room, in order.
    #[serde(default)]
    pub breakout_rooms: Vec<BreakoutStayReport>,
}

/// One student's attendance across the held lessons of a course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StudentSummary {
    pub user_id: UserId,
    pub name: String,
    pub email: String,
    /// The course's lessons that took place (live or ended).
    pub lessons_held: i64,
    pub lessons_attended: i64,
    pub present_seconds: i64,
    pub minutes_present: i64,
    pub times_late: i64,
    pub times_left_early: i64,
    pub stage_seconds: i64,
    pub hands_raised: i64,
    pub chat_messages: i64,
    /// Answers to the lesson's named polls (anonymous ones keep no users).
    pub poll_answers: i64,
    /// Of those, answers to quizzes (polls with a correct answer), and how many were right.
    pub quiz_answers: i64,
    pub quiz_correct: i64,
    /// Stays in breakout rooms across the lessons, and the time they add up to (a stay still
    /// open counts once it ends).
    #[serde(default)]
    pub breakout_stays: i64,
    #[serde(default)]
    pub breakout_seconds: i64,
}

/// A lesson as attendance reports name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LessonBrief {
    pub id: LessonId,
    pub course_id: CourseId,
    pub title: String,
    #[serde(with = "time::serde::rfc3339")]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub ends_at: OffsetDateTime,
    /// scheduled, live, ended or cancelled.
    pub state: String,
}

impl From<&Lesson> for LessonBrief {
    fn from(lesson: &Lesson) -> Self {
        LessonBrief {
            id: lesson.id,
            course_id: lesson.course_id,
            title: lesson.title.clone(),
            starts_at: lesson.starts_at,
            ends_at: lesson.ends_at,
            state: lesson.state.as_str().to_string(),
        }
    }
}

/// Whether a lesson took place (and so counts in a course's summary).
pub fn was_held(lesson: &Lesson) -> bool {
    matches!(lesson.state, LessonState::Live | LessonState::Ended)
}

/// The report of one user in one lesson; `intervals` are theirs in that lesson (any order).
/// `None` when they were never in the room.
pub fn lesson_attendee(
    lesson: &Lesson,
    attendee: &AttendeeRecord,
    intervals: &[&IntervalRecord],
) -> Option<LessonAttendee> {
    let mut present: Vec<&IntervalRecord> = intervals
        .iter()
        .copied()
        .filter(|i| i.kind == IntervalKind::Present)
        .collect();
    present.sort_by_key(|i| (i.started_at, i.known_end()));
    let first_joined_at = present.first()?.started_at;
    let in_room = lesson.state == LessonState::Live && present.iter().any(|i| i.ended_at.is_none());
    let last_left_at = if in_room {
        None
    } else {
        present.iter().map(|i| i.known_end()).max()
    };
    let present_seconds = covered_seconds(&present);
    let stage: Vec<&IntervalRecord> = intervals
        .iter()
        .copied()
        .filter(|i| i.kind == IntervalKind::Stage)
        .collect();
    let late_by = first_joined_at - lesson.starts_at;
    let came_late = late_by > PUNCTUALITY_SLACK;
    let lesson_end = match lesson.ended_at {
        Some(ended) => ended.min(lesson.ends_at),
        None => lesson.ends_at,
    };
    let left_early = last_left_at.is_some_and(|left| left < lesson_end - PUNCTUALITY_SLACK);
    Some(LessonAttendee {
        user_id: attendee.user,
        name: attendee.name.clone(),
        email: attendee.email.clone(),
        role: attendee.role.clone(),
        intervals: present
            .iter()
            .map(|i| AttendanceInterval {
                joined_at: i.started_at,
                left_at: i.ended_at,
                last_seen_at: i.last_seen_at,
                left_reason: i.end_reason.clone(),
            })
            .collect(),
        first_joined_at,
        last_left_at,
        present_seconds,
        minutes_present: present_seconds / 60,
        came_late,
        late_minutes: if came_late {
            late_by.whole_minutes()
        } else {
            0
        },
        left_early,
        stage_seconds: covered_seconds(&stage),
        hands_raised: attendee.hands_raised,
        chat_messages: attendee.chat_messages,
        poll_answers: attendee.poll_answers,
        quiz_answers: attendee.quiz_answers,
        quiz_correct: attendee.quiz_correct,
        breakout_rooms: Vec::new(),
    })
}

/// Sums up one student across `lessons` (the held lessons of a course) from their reports.
pub fn student_summary(
    user: UserId,
    name: &str,
    email: &str,
    lessons_held: usize,
    reports: &[LessonAttendee],
) -> StudentSummary {
    let sum = |f: fn(&LessonAttendee) -> i64| reports.iter().map(f).sum::<i64>();
    let present_seconds = sum(|r| r.present_seconds);
    StudentSummary {
        user_id: user,
        name: name.to_string(),
        email: email.to_string(),
        lessons_held: i64::try_from(lessons_held).unwrap_or(i64::MAX),
        lessons_attended: i64::try_from(reports.len()).unwrap_or(i64::MAX),
        present_seconds,
        minutes_present: present_seconds / 60,
        times_late: sum(|r| i64::from(r.came_late)),
        times_left_early: sum(|r| i64::from(r.left_early)),
        stage_seconds: sum(|r| r.stage_seconds),
        hands_raised: sum(|r| r.hands_raised),
        chat_messages: sum(|r| r.chat_messages),
        poll_answers: sum(|r| r.poll_answers),
        quiz_answers: sum(|r| r.quiz_answers),
        quiz_correct: sum(|r| r.quiz_correct),
        breakout_stays: sum(|r| i64::try_from(r.breakout_rooms.len()).unwrap_or(i64::MAX)),
        breakout_seconds: sum(|r| {
            r.breakout_rooms
                .iter()
                .filter_map(|s| Some((s.left_at? - s.joined_at).whole_seconds().max(0)))
                .sum()
        }),
    }
}

/// Seconds covered by at least one of `intervals`.
fn covered_seconds(intervals: &[&IntervalRecord]) -> i64 {
    let mut spans: Vec<(OffsetDateTime, OffsetDateTime)> = intervals
        .iter()
        .map(|i| (i.started_at, i.known_end()))
        .collect();
    spans.sort();
    let mut total = Duration::ZERO;
    let mut current: Option<(OffsetDateTime, OffsetDateTime)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    total.whole_seconds()
}

/// The CSV of a lesson's attendance: one row per user, the JSON report's numbers.
pub fn lesson_csv(rows: &[LessonAttendee]) -> String {
    let mut out = String::from(
        "user_id,name,email,role,first_joined_at,last_left_at,intervals,present_seconds,\
         minutes_present,came_late,late_minutes,left_early,stage_seconds,hands_raised,\
         chat_messages,poll_answers,quiz_answers,quiz_correct,breakout_rooms\n",
    );
    for r in rows {
        let cells = [
            r.user_id.0.to_string(),
            r.name.clone(),
            r.email.clone(),
            r.role.clone(),
            rfc3339(r.first_joined_at),
            r.last_left_at.map(rfc3339).unwrap_or_default(),
            r.intervals.len().to_string(),
            r.present_seconds.to_string(),
            r.minutes_present.to_string(),
            r.came_late.to_string(),
            r.late_minutes.to_string(),
            r.left_early.to_string(),
            r.stage_seconds.to_string(),
            r.hands_raised.to_string(),
            r.chat_messages.to_string(),
            r.poll_answers.to_string(),
            r.quiz_answers.to_string(),
            r.quiz_correct.to_string(),
            // The rooms in order, "2;3" for Room 2 then Room 3.
            r.breakout_rooms
                .iter()
                .map(|s| s.room.to_string())
                .collect::<Vec<_>>()
                .join(";"),
        ];
        push_row(&mut out, &cells);
    }
    out
}

/// The CSV of a course's summary: one row per student, the JSON report's numbers.
pub fn course_csv(rows: &[StudentSummary]) -> String {
    let mut out = String::from(
        "user_id,name,email,lessons_held,lessons_attended,present_seconds,minutes_present,\
         times_late,times_left_early,stage_seconds,hands_raised,chat_messages,poll_answers,\
         quiz_answers,quiz_correct,breakout_stays,breakout_seconds\n",
    );
    for r in rows {
        let cells = [
            r.user_id.0.to_string(),
            r.name.clone(),
            r.email.clone(),
            r.lessons_held.to_string(),
            r.lessons_attended.to_string(),
            r.present_seconds.to_string(),
            r.minutes_present.to_string(),
            r.times_late.to_string(),
            r.times_left_early.to_string(),
            r.stage_seconds.to_string(),
            r.hands_raised.to_string(),
            r.chat_messages.to_string(),
            r.poll_answers.to_string(),
            r.quiz_answers.to_string(),
            r.quiz_correct.to_string(),
            r.breakout_stays.to_string(),
            r.breakout_seconds.to_string(),
        ];
        push_row(&mut out, &cells);
    }
    out
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn push_row(out: &mut String, cells: &[String]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&crate::csv_export::cell(cell));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use classroom_protocol::RoomName;

    fn lesson(state: LessonState, ended_at: Option<OffsetDateTime>) -> Lesson {
        Lesson {
            id: LessonId(1),
            course_id: CourseId(1),
            title: "Fractions".into(),
            starts_at: datetime!(2030-01-07 09:00 UTC),
            ends_at: datetime!(2030-01-07 09:45 UTC),
            state,
            live_at: Some(datetime!(2030-01-07 09:00 UTC)),
            ended_at,
            room: RoomName::for_lesson(LessonId(1)),
        }
    }

    fn attendee() -> AttendeeRecord {
        AttendeeRecord {
            lesson: LessonId(1),
            user: UserId(2),
            name: "Sam".into(),
            email: "sam@school.edu".into(),
            role: "student".into(),
            hands_raised: 2,
            chat_messages: 3,
            poll_answers: 2,
            quiz_answers: 1,
            quiz_correct: 1,
        }
    }

    fn interval(
        kind: IntervalKind,
        from: OffsetDateTime,
        to: Option<OffsetDateTime>,
        seen: OffsetDateTime,
    ) -> IntervalRecord {
        IntervalRecord {
            lesson: LessonId(1),
            user: UserId(2),
            kind,
            started_at: from,
            ended_at: to,
            last_seen_at: seen,
            end_reason: to.map(|_| "left".into()),
        }
    }

    #[test]
    fn overlapping_stays_count_once_and_open_ones_up_to_their_last_stamp() {
        let ended = lesson(LessonState::Ended, Some(datetime!(2030-01-07 09:45 UTC)));
        let a = interval(
            IntervalKind::Present,
            datetime!(2030-01-07 09:02 UTC),
            Some(datetime!(2030-01-07 09:20 UTC)),
            datetime!(2030-01-07 09:20 UTC),
        );
        // Overlaps the first by five minutes; left open by a crash, seen last at 09:30.
        let b = interval(
            IntervalKind::Present,
            datetime!(2030-01-07 09:15 UTC),
            None,
            datetime!(2030-01-07 09:30 UTC),
        );
        let report = lesson_attendee(&ended, &attendee(), &[&b, &a]).expect("attended");
        assert_eq!(report.present_seconds, 28 * 60);
        assert_eq!(report.minutes_present, 28);
        assert_eq!(report.intervals.len(), 2);
        assert_eq!(report.intervals[0].joined_at, a.started_at, "in order");
        assert!(!report.came_late, "two minutes late is on time");
        assert_eq!(report.last_left_at, Some(datetime!(2030-01-07 09:30 UTC)));
        assert!(report.left_early, "gone 15 minutes before the end");
    }

    #[test]
    fn late_and_early_follow_the_schedule_and_the_actual_end() {
        // The teacher ended the lesson at 09:30: leaving at 09:29 is not early.
        let ended = lesson(LessonState::Ended, Some(datetime!(2030-01-07 09:30 UTC)));
        let stay = interval(
            IntervalKind::Present,
            datetime!(2030-01-07 09:12 UTC),
            Some(datetime!(2030-01-07 09:29 UTC)),
            datetime!(2030-01-07 09:29 UTC),
        );
        let report = lesson_attendee(&ended, &attendee(), &[&stay]).expect("attended");
        assert!(report.came_late);
        assert_eq!(report.late_minutes, 12);
        assert!(!report.left_early);

        // Still in the room of a live lesson: neither left nor early.
        let live = lesson(LessonState::Live, None);
        let open = interval(
            IntervalKind::Present,
            datetime!(2030-01-07 09:00 UTC),
            None,
            datetime!(2030-01-07 09:10 UTC),
        );
        let stage = interval(
            IntervalKind::Stage,
            datetime!(2030-01-07 09:05 UTC),
            Some(datetime!(2030-01-07 09:07 UTC)),
            datetime!(2030-01-07 09:07 UTC),
        );
        let report = lesson_attendee(&live, &attendee(), &[&open, &stage]).expect("attended");
        assert_eq!(report.last_left_at, None);
        assert!(!report.left_early);
        assert_eq!(report.present_seconds, 600);
        assert_eq!(report.stage_seconds, 120);
        assert!(lesson_attendee(&live, &attendee(), &[&stage]).is_none());
    }
}
