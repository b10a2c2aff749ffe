//! Attendance: a subscriber of the room-event dispatcher that writes what rooms report
//! ([`RoomEvent::Attendance`], stamped with wall time by the room task) to the store as it
//! happens, one event at a time, so that a crash loses nothing already reported.
//!
//! Crash safety (see `courses/migrations/*/0011_attendance.sql`): an interval is stored open
//! when it starts, and every [`REFRESH`] this subscriber stamps the open intervals it opened
//! as seen. Reports count an open interval up to that stamp. A server killed mid-lesson stops
//! stamping; after [`STALE_AFTER`] any server's sweep closes those intervals at their last
//! stamp (reason `lost`), and a user who joins again closes theirs at once. A graceful stop
//! ends the same way: its rooms close without anyone leaving, so the stays are not cut short
//! at the stop but kept up to their last stamp.

use std::collections::HashSet;
use std::time::Duration;

use classroom_courses::Store;
use classroom_courses::store::AttendanceCount;
use classroom_protocol::signal::LeaveReason;
use classroom_protocol::{LessonId, ParticipantRole};
use classroom_signaling::{AttendanceEvent, LessonEffect, RoomEvent};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::events::Overflow;

/// How often open intervals are stamped as seen: at most this much of a stay is lost when
/// the server is killed.
pub const REFRESH: Duration = Duration::from_secs(15);

/// An open interval not stamped for this long belongs to a server that stopped.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// Attendance waits for room for every fact it stores and for the lessons' ends: a dropped
/// event is a stay never closed or a hand never counted. They are a few a second at most.
pub const OVERFLOW: Overflow = Overflow::WaitFor(|e| {
    matches!(
        e,
        RoomEvent::Attendance { .. } | RoomEvent::Lesson(LessonEffect::Ended(_))
    )
});

/// Writes attendance until the dispatcher stops.
pub async fn follow_rooms(
    store: Store,
    mut events: mpsc::Receiver<RoomEvent>,
    webhooks: crate::webhook::WebhookEvents,
) {
    let started = OffsetDateTime::now_utc();
    let mut writer = Writer {
        store,
        started,
        open: HashSet::new(),
        webhooks,
    };
    let mut ticks = tokio::time::interval(REFRESH);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => writer.apply(event).await,
                None => return,
            },
            _ = ticks.tick() => writer.refresh(OffsetDateTime::now_utc()).await,
        }
    }
}

struct Writer {
    store: Store,
    /// When this server started: the open intervals it stamps are the ones it opened since.
    started: OffsetDateTime,
    /// Lessons where this server opened intervals that may still be open.
    open: HashSet<LessonId>,
    /// lesson.ended goes out once the lesson's attendance is closed, with its summary.
    webhooks: crate::webhook::WebhookEvents,
}

impl Writer {
    async fn apply(&mut self, event: RoomEvent) {
        let (lesson, at, event) = match event {
            RoomEvent::Attendance { lesson, at, event } => {
                (lesson, OffsetDateTime::from(at), event)
            }
            RoomEvent::Lesson(LessonEffect::Ended(lesson)) => {
                let now = OffsetDateTime::now_utc();
                let mut tries = Retries::default();
                while let Err(e) = self.store.attendance_lesson_ended(lesson, now).await {
                    if !tries.again().await {
                        tracing::error!(%lesson, error = %e, "could not close the lesson's attendance");
                        break;
                    }
                }
                let mut tries = Retries::default();
                while let Err(e) = self.store.attendance_breakouts_ended(lesson, now).await {
                    if !tries.again().await {
                        tracing::error!(%lesson, error = %e, "could not close the lesson's breakout stays");
                        break;
                    }
                }
                self.open.remove(&lesson);
                self.webhooks.lesson_ended(lesson, now).await;
                return;
            }
            _ => return,
        };
        if matches!(event, AttendanceEvent::Joined { .. }) {
            self.open.insert(lesson);
        }
        let mut tries = Retries::default();
        while let Err(e) = self.store_event(lesson, at, &event).await {
            if !tries.again().await {
                let user = event.user();
                tracing::error!(%lesson, %user, error = %e, ?event, "could not store an attendance event");
                break;
            }
        }
    }

    async fn store_event(
        &self,
        lesson: LessonId,
        at: OffsetDateTime,
        event: &AttendanceEvent,
    ) -> classroom_courses::StoreResult<()> {
        let user = event.user();
        match *event {
            AttendanceEvent::Joined { role, .. } => {
                self.store
                    .attendance_joined(lesson, user, role_name(role), at)
                    .await
            }
            AttendanceEvent::Left { reason, .. } => {
                self.store
                    .attendance_left(lesson, user, leave_reason(reason), at)
                    .await?;
                // A student who leaves from a breakout room is no longer in it.
                self.store.attendance_breakout(lesson, user, None, at).await
            }
            AttendanceEvent::Breakout { room, .. } => {
                self.store.attendance_breakout(lesson, user, room, at).await
            }
            AttendanceEvent::Stage { on_stage, .. } => {
                self.store
                    .attendance_stage(lesson, user, on_stage, at)
                    .await
            }
            AttendanceEvent::HandRaised { .. } => {
                self.store
                    .attendance_count(lesson, user, AttendanceCount::HandRaised)
                    .await
            }
            AttendanceEvent::ChatSent { .. } => {
                self.store
                    .attendance_count(lesson, user, AttendanceCount::ChatSent)
                    .await
            }
        }
    }

    /// Stamps this server's open intervals, and closes those of servers that stopped.
    async fn refresh(&mut self, now: OffsetDateTime) {
        let lessons: Vec<LessonId> = self.open.iter().copied().collect();
        for lesson in lessons {
            match self.store.attendance_seen(lesson, self.started, now).await {
                Ok(0) => {
                    self.open.remove(&lesson);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%lesson, error = %e, "could not stamp open attendance"),
            }
        }
        let stale_before = now - STALE_AFTER;
        match self.store.attendance_close_stale(stale_before).await {
            Ok(0) => {}
            Ok(closed) => tracing::info!(
                closed,
                "closed attendance intervals of a server that stopped, at their last stamp"
            ),
            Err(e) => tracing::warn!(error = %e, "could not close stale attendance intervals"),
        }
    }
}

fn role_name(role: ParticipantRole) -> &'static str {
    match role {
        ParticipantRole::Teacher => "teacher",
        ParticipantRole::Assistant => "assistant",
        ParticipantRole::Student => "student",
        ParticipantRole::Observer => "observer",
    }
}

fn leave_reason(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::Left => "left",
        LeaveReason::TimedOut => "timed_out",
        LeaveReason::Removed => "removed",
        LeaveReason::LessonEnded => "lesson_ended",
        LeaveReason::Replaced => "replaced",
        LeaveReason::Revoked => "revoked",
        LeaveReason::Moved => "moved",
    }
}

/// A failed write is tried again after a short wait, a few times: a database that restarts
/// or fails over for a moment must not cost a stay. Beyond that the event is logged and
/// dropped, rather than holding every consumer of room events behind it. (A count whose write
/// succeeded but whose reply was lost is counted twice: rare, and a hand more is harmless.)
#[derive(Default)]
struct Retries {
    done: usize,
}

impl Retries {
    const WAITS: [Duration; 3] = [
        Duration::from_millis(200),
        Duration::from_secs(1),
        Duration::from_secs(5),
    ];

    /// Waits before the next try; `false` when there is none left.
    async fn again(&mut self) -> bool {
        let Some(wait) = Self::WAITS.get(self.done) else {
            return false;
        };
        self.done += 1;
        tokio::time::sleep(*wait).await;
        true
    }
}
