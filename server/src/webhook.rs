//! Webhooks, wired in: the events a school's webhooks hear are queued here (lesson.started
//! when a lesson goes live, lesson.ended with its attendance once attendance is closed,
//! replay.ready when a replay job completes), and [`HttpSender`] POSTs them for the job
//! queue's workers, signed (see `classroom_courses::webhook` and docs/webhooks.md).
//!
//! The HTTP client is a small HTTP/1.1 one of our own: the workspace's reqwest is built
//! without TLS, and what is needed is one POST and a status line, to addresses checked
//! against the outbound policy (the same as restream destinations) at every attempt.

use std::sync::Arc;
use std::time::Duration;

use classroom_courses::Store;
use classroom_courses::StoreError;
use classroom_courses::attendance::{LessonBrief, lesson_attendee};
use classroom_courses::model::{LessonState, Replay};
use classroom_courses::restream::DestinationRefused;
use classroom_courses::webhook::{
    EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, event_body, sign,
};
use classroom_protocol::LessonId;
use classroom_protocol::outbound::OutboundPolicy;
use classroom_recorder::WebhookSender;
use classroom_recorder::worker::QueueFuture;
use classroom_rtmp::restream::PushTls;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// `[webhooks]`: how deliveries are sent and retried. Where they may go is
/// `restream.allowed_networks` (public addresses, plus the networks allowed there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Attempts before a delivery stays failed.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub retry_backoff_secs: u64,
    /// How long a receiver has to connect and answer.
    pub timeout_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            max_attempts: 8,
            retry_backoff_secs: 30,
            timeout_secs: 10,
        }
    }
}

/// Waits between tries to queue an event.
const ENQUEUE_RETRIES: [Duration; 3] = [
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(5),
];

/// The most of a receiver's answer read: its status line is all that counts.
const MAX_RESPONSE_HEAD: usize = 8 * 1024;

/// Queues webhook events and wakes the workers.
#[derive(Clone)]
pub struct WebhookEvents {
    pub store: Store,
    pub wake: Arc<Notify>,
}

impl WebhookEvents {
    /// The lesson went live.
    pub async fn lesson_started(&self, lesson: LessonId) {
        let result = async {
            let lesson = self.store.lesson(lesson).await?;
            let data = serde_json::json!({ "lesson": LessonBrief::from(&lesson) });
            let id = format!("lesson-{}-started", lesson.id);
            self.enqueue(lesson.course_id, &id, "lesson.started", data)
                .await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(%lesson, error = %e, "could not queue the lesson.started webhook");
        }
    }

    /// The lesson ended and its attendance is closed: the summary per student.
    pub async fn lesson_ended(&self, lesson: LessonId, now: OffsetDateTime) {
        let result = async {
            let mut lesson = self.store.lesson(lesson).await?;
            // The lessons subscriber may not have stored the end yet: it is now either way.
            if lesson.ended_at.is_none() {
                lesson.ended_at = Some(now);
                lesson.state = LessonState::Ended;
            }
            let attendees = self.store.lesson_attendees(lesson.id, None).await?;
            let intervals = self.store.lesson_intervals(lesson.id, None).await?;
            let students: Vec<_> = attendees
                .items
                .iter()
                .filter(|a| a.role == "student")
                .filter_map(|a| {
                    let theirs: Vec<_> = intervals.iter().filter(|i| i.user == a.user).collect();
                    lesson_attendee(&lesson, a, &theirs)
                })
                .map(|a| {
                    serde_json::json!({
                        "user_id": a.user_id,
                        "name": a.name,
                        "email": a.email,
                        "minutes_present": a.minutes_present,
                        "present_seconds": a.present_seconds,
                        "came_late": a.came_late,
                        "late_minutes": a.late_minutes,
                        "left_early": a.left_early,
                    })
                })
                .collect();
            let data = serde_json::json!({
                "lesson": LessonBrief::from(&lesson),
                "attendance": students,
            });
            let id = format!("lesson-{}-ended", lesson.id);
            self.enqueue(lesson.course_id, &id, "lesson.ended", data)
                .await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(%lesson, error = %e, "could not queue the lesson.ended webhook");
        }
    }

    /// A replay is ready to watch.
    pub async fn replay_ready(&self, replay: &Replay) {
        let data = serde_json::json!({
            "replay": {
                "id": replay.id,
                "lesson_id": replay.lesson_id,
                "course_id": replay.course_id,
                "title": replay.title,
                "duration_ms": replay.duration_ms,
            }
        });
        let id = format!("replay-{}-ready", replay.id);
        if let Err(e) = self
            .enqueue(replay.course_id, &id, "replay.ready", data)
            .await
        {
            tracing::error!(replay = %replay.id, error = %e, "could not queue the replay.ready webhook");
        }
    }

    async fn enqueue(
        &self,
        course: classroom_protocol::CourseId,
        event_id: &str,
        event: &str,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        let body = event_body(event_id, event, now, data);
        // A database that is busy or fails over for a moment must not cost the event: a few
        // tries (an event stored twice is stored once, by its id).
        let mut waits = ENQUEUE_RETRIES.iter();
        let jobs = loop {
            match self
                .store
                .enqueue_webhook_event(course, event_id, event, &body, now)
                .await
            {
                Ok(jobs) => break jobs,
                Err(e) => match waits.next() {
                    Some(wait) => {
                        tracing::warn!(event_id, error = %e, "could not queue a webhook event; trying again");
                        tokio::time::sleep(*wait).await;
                    }
                    None => return Err(e),
                },
            }
        };
        if !jobs.is_empty() {
            tracing::debug!(event_id, deliveries = jobs.len(), "webhook event queued");
            self.wake.notify_waiters();
        }
        Ok(())
    }
}

/// Sends deliveries for the workers.
pub struct HttpSender {
    pub store: Store,
    pub outbound: Arc<OutboundPolicy>,
    pub tls: PushTls,
    pub timeout: Duration,
}

impl WebhookSender for HttpSender {
    fn send(&self, delivery: i64) -> QueueFuture<'_, Result<(), (String, bool)>> {
        Box::pin(async move {
            let delivery = match self.store.webhook_delivery(delivery).await {
                Ok(delivery) => delivery,
                Err(StoreError::NotFound(_)) => {
                    return Err(("the webhook was removed".to_owned(), false));
                }
                Err(e) => return Err((format!("cannot read the delivery: {e}"), true)),
            };
            let url = &delivery.target.url;
            let addresses = match url.allowed_addresses(&self.outbound).await {
                Ok(addresses) => addresses,
                // The name may resolve again later; a refused address will not change.
                Err(e @ DestinationRefused::Unresolvable { .. }) => {
                    return Err((e.to_string(), true));
                }
                Err(e) => return Err((e.to_string(), false)),
            };
            let timestamp = OffsetDateTime::now_utc().unix_timestamp();
            let signature = sign(
                delivery.target.secret.as_bytes(),
                timestamp,
                delivery.body.as_bytes(),
            );
            let request = format!(
                "POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: classroomd\r\n\
                 Content-Type: application/json\r\nContent-Length: {len}\r\n\
                 {EVENT_HEADER}: {event}\r\n{TIMESTAMP_HEADER}: {timestamp}\r\n\
                 {SIGNATURE_HEADER}: {signature}\r\nConnection: close\r\n\r\n",
                target = url.target(),
                host = url.authority(),
                len = delivery.body.len(),
                event = delivery.event_id,
            );
            let post = async {
                let mut last = String::from("no address to connect to");
                for address in addresses {
                    let tcp = match TcpStream::connect(address).await {
                        Ok(tcp) => tcp,
                        Err(e) => {
                            last = format!("cannot connect to {}: {e}", url.host());
                            continue;
                        }
                    };
                    return if url.tls() {
                        match self.tls.connect(url.host(), tcp).await {
                            Ok(tls) => exchange(tls, &request, &delivery.body).await,
                            Err(e) => Err(e.to_string()),
                        }
                    } else {
                        exchange(tcp, &request, &delivery.body).await
                    };
                }
                Err(last)
            };
            match tokio::time::timeout(self.timeout, post).await {
                Ok(Ok(status)) if (200..300).contains(&status) => Ok(()),
                Ok(Ok(status)) => Err((format!("the receiver answered {status}"), true)),
                Ok(Err(reason)) => Err((reason, true)),
                Err(_) => Err(("the receiver did not answer in time".to_owned(), true)),
            }
        })
    }
}

/// Sends the request and reads the answer's status code.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: &str,
    body: &str,
) -> Result<u16, String> {
    let io = |e: std::io::Error| format!("the connection failed: {e}");
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    stream.write_all(body.as_bytes()).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut answer = Vec::with_capacity(256);
    let mut buf = [0u8; 1024];
    while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < MAX_RESPONSE_HEAD {
        let n = stream.read(&mut buf).await.map_err(io)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    status_code(&answer).ok_or_else(|| "the receiver's answer is not HTTP".to_owned())
}

/// The status code of an HTTP/1 status line (`HTTP/1.1 204 No Content`).
fn status_code(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?.trim();
    (code.len() == 3).then_some(())?;
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::status_code;

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 20000 OK\r\n"), None);
        assert_eq!(status_code(b""), None);
    }
}
