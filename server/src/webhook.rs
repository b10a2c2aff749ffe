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
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncWrite};
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

/// The most of a receiver's answer buffered (hyper's smallest): its status is all that counts.
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
                "breakout": replay.breakout,
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
            let request = || {
                hyper::Request::post(url.target())
                    .header(hyper::header::HOST, url.authority())
                    .header(hyper::header::USER_AGENT, "classroomd")
                    .header(hyper::header::CONTENT_TYPE, "application/json")
                    .header(EVENT_HEADER, delivery.event_id.as_str())
                    .header(TIMESTAMP_HEADER, timestamp.to_string())
                    .header(SIGNATURE_HEADER, signature.as_str())
                    .header(hyper::header::CONNECTION, "close")
                    .body(delivery.body.clone())
                    .map_err(|e| format!("cannot make the request: {e}"))
            };
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
                            Ok(tls) => exchange(tls, request()?).await,
                            Err(e) => Err(e.to_string()),
                        }
                    } else {
                        exchange(tcp, request()?).await
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

/// Sends the request over `stream` (HTTP/1.1, hyper's client) and returns the answer's status
/// code; the answer's body is not read.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: hyper::Request<String>,
) -> Result<u16, String> {
    let failed = |e: hyper::Error| format!("the exchange failed: {e}");
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_RESPONSE_HEAD)
        .handshake(TokioIo::new(stream))
        .await
        .map_err(failed)?;
    let answer = sender.send_request(request);
    tokio::pin!(connection, answer);
    // The connection is driven until the answer's head is in; a receiver that answers and
    // closes at once may end the connection first, with the answer already there.
    let answer = tokio::select! {
        biased;
        answer = &mut answer => answer,
        ended = &mut connection => {
            ended.map_err(failed)?;
            answer.await
        }
    };
    Ok(answer.map_err(failed)?.status().as_u16())
}
