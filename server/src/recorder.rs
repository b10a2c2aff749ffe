//! The recorder, wired in: signaling's recording events drive the live recorder, a lesson of
//! a course that records by default starts recording when it goes live, finished recordings
//! (and those a crash left unfinished) are queued in the database, and this node's workers
//! turn them into replays; the same workers prepare the documents teachers upload. The queue
//! is the store's `recording_jobs` table ([`StoreQueue`] implements the recorder's
//! [`JobQueue`] with it).

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Instant;

use anyhow::Context;
use classroom_courses::model::{DocumentSource, RecordingJob, ReplayBreakout, ReplayChapter};
use classroom_courses::store::RetryPolicy;
use classroom_courses::{Store, StoreError};
use classroom_media::driver::MediaHandle;
use classroom_protocol::signal::ServerMessage;
use classroom_protocol::{LessonId, RoomName};
use classroom_recorder::documents::SourceFormat;
use classroom_recorder::events::Event;
use classroom_recorder::worker::{CLAIM_LEASE, QueueError, QueueFuture};
use classroom_recorder::{
    DocumentConfig, FinishedRecording, Folders, Job, JobOutput, JobQueue, LiveRecorder,
    RecorderConfig, RecorderStats, Task, WebhookSender, Workers,
};
use classroom_signaling::{LessonEffect, RecordingEffect, RoomActivity, RoomEvent, Rooms};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, watch};

use crate::events::Overflow;
use crate::webhook::WebhookEvents;

/// The recorder waits for room for what starts, steers and lays out a recording: a lesson
/// going live (its course may record by default), the recording's controls, who is in the
/// room when it starts and which track is which. It drops messages broadcast in a recorded
/// room (chat, joins, hands, strokes) when it is behind: like the packets a slow disk costs,
/// they cost a line of the replay, never the live lesson or the other consumers (counted in
/// `classroom_room_events_overflow_total`). The page shown is the exception: a lost `slide`
/// or `board` would leave the replay's main view on the wrong page until the next turn (a
/// lost stroke costs that stroke only), and they come at the pace of a teacher's clicks.
pub const OVERFLOW: Overflow = Overflow::WaitFor(|e| match e {
    RoomEvent::Lesson(LessonEffect::WentLive(_)) | RoomEvent::Recording { .. } => true,
    RoomEvent::Activity { activity, .. } => !matches!(
        activity,
        RoomActivity::Broadcast(message)
            if !matches!(message, ServerMessage::Slide { .. } | ServerMessage::Board { .. })
    ),
    RoomEvent::Lesson(LessonEffect::Ended(_) | LessonEffect::UserRemoved { .. })
    | RoomEvent::Media { .. }
    | RoomEvent::Attendance { .. } => false,
    RoomEvent::PollClosed { .. } => false,
});

/// The recorder of this server.
pub struct Recorder {
    live: LiveRecorder,
    workers: Arc<Workers>,
    store: Store,
    pub stats: Arc<RecorderStats>,
    events: WebhookEvents,
}

/// How the workers send webhook deliveries and retry them.
pub struct WebhookSetup {
    pub sender: Arc<dyn WebhookSender>,
    pub policy: RetryPolicy,
}

/// Where replays are kept (`<data_dir>/replays`).
pub fn replays_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("replays")
}

/// Where course documents are kept (`<data_dir>/documents`).
pub fn documents_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("documents")
}

/// Starts the workers (until `shutdown`) and queues recordings a crash left unfinished.
pub async fn start(
    config: &RecorderConfig,
    documents: &DocumentConfig,
    data_dir: &std::path::Path,
    store: Store,
    media: MediaHandle,
    shutdown: watch::Receiver<bool>,
    webhooks: WebhookSetup,
) -> anyhow::Result<Arc<Recorder>> {
    let folders = Folders {
        recordings: data_dir.join("recordings"),
        replays: replays_dir(data_dir),
        documents: documents_dir(data_dir),
    };
    for dir in [&folders.recordings, &folders.replays, &folders.documents] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let stats = Arc::new(RecorderStats::default());
    let (finished, mut finished_rx) = mpsc::unbounded_channel();
    let live = LiveRecorder::new(
        folders.recordings.clone(),
        media,
        stats.clone(),
        finished,
        config.queue_packets,
    );
    let wake = Arc::new(Notify::new());
    let events = WebhookEvents {
        store: store.clone(),
        wake: wake.clone(),
    };
    let queue = Arc::new(StoreQueue {
        store: store.clone(),
        webhook_policy: webhooks.policy,
        events: events.clone(),
        policy: RetryPolicy {
            max_attempts: config.max_attempts.max(1),
            backoff: time::Duration::seconds(config.retry_backoff_secs as i64),
        },
    });
    let workers = Arc::new(Workers {
        config: config.clone(),
        documents: documents.clone(),
        folders: folders.clone(),
        queue,
        webhooks: webhooks.sender,
        stats: stats.clone(),
        wake,
        node: format!("{}:{}", hostname(), std::process::id()),
    });
    // Reads the track files of crashed recordings: off the async workers.
    let recordings = folders.recordings.clone();
    let unfinished =
        tokio::task::spawn_blocking(move || classroom_recorder::live::unfinished(&recordings))
            .await
            .context("the search for unfinished recordings stopped")?
            .context("cannot look for unfinished recordings")?;
    for recording in unfinished {
        if let Err(e) = workers.enqueue(&recording).await {
            tracing::warn!(recording = %recording.name, error = %e, "cannot queue an unfinished recording");
        }
    }
    workers.spawn(shutdown);
    let queueing = workers.clone();
    tokio::spawn(async move {
        while let Some(recording) = finished_rx.recv().await {
            queue_finished(&queueing, recording).await;
        }
    });
    Ok(Arc::new(Recorder {
        live,
        workers,
        store,
        stats,
        events,
    }))
}

async fn queue_finished(workers: &Workers, recording: FinishedRecording) {
    for attempt in 1..=5u32 {
        match workers.enqueue(&recording).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(recording = %recording.name, attempt, error = %e, "cannot queue a finished recording");
                tokio::time::sleep(std::time::Duration::from_secs(u64::from(attempt))).await;
            }
        }
    }
    tracing::error!(recording = %recording.name, "the recording stays unqueued; it is queued on the next start");
}

impl Recorder {
    /// Follows the rooms' events until the dispatcher stops: recording controls, what happens
    /// in recorded rooms, and lessons going live (their course may record by default).
    pub fn follow(self: &Arc<Self>, mut events: mpsc::Receiver<RoomEvent>, rooms: Weak<Rooms>) {
        let recorder = self.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    RoomEvent::Recording {
                        room,
                        lesson,
                        effect,
                    } => recorder.recording(&room, lesson, effect).await,
                    RoomEvent::Activity { room, activity } => {
                        recorder
                            .live
                            .note(&room, Instant::now(), activity_event(activity));
                    }
                    RoomEvent::Lesson(LessonEffect::WentLive(lesson)) => {
                        recorder.maybe_auto_record(lesson, rooms.clone());
                    }
                    RoomEvent::Lesson(
                        LessonEffect::Ended(_) | LessonEffect::UserRemoved { .. },
                    )
                    | RoomEvent::Media { .. }
                    | RoomEvent::Attendance { .. } => {}
                    RoomEvent::PollClosed { .. } => {}
                }
            }
        });
    }

    async fn recording(&self, room: &RoomName, lesson: LessonId, effect: RecordingEffect) {
        let result = match effect {
            RecordingEffect::Started => self.live.start(room, lesson).await.map(|_| ()),
            RecordingEffect::Paused => {
                self.live.pause(room);
                Ok(())
            }
            RecordingEffect::Resumed => self.live.resume(room).await,
            RecordingEffect::Stopped => {
                self.live.stop(room);
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::error!(%room, error = %e, "the recorder could not follow the room");
        }
    }

    /// A lesson went live: its course may record by default.
    fn maybe_auto_record(&self, lesson: LessonId, rooms: Weak<Rooms>) {
        let store = self.store.clone();
        tokio::spawn(async move {
            let course = match store.lesson(lesson).await {
                Ok(lesson) => store.course(lesson.course_id).await,
                Err(e) => Err(e),
            };
            match course {
                Ok(course) if course.record_by_default => {
                    if let Some(rooms) = rooms.upgrade() {
                        rooms.start_recording(&RoomName::for_lesson(lesson)).await;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%lesson, error = %e, "cannot read the course's recording default")
                }
            }
        });
    }

    /// Queues webhook events (and wakes the workers for them).
    pub fn webhook_events(&self) -> WebhookEvents {
        self.events.clone()
    }

    /// Workers wake up for a job queued by hand (tests, tools).
    pub fn wake_workers(&self) {
        self.workers.wake.notify_waiters();
    }

    /// What wakes the workers, for the API (a document was uploaded).
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.workers.wake.clone()
    }
}

fn activity_event(activity: RoomActivity) -> Event {
    match activity {
        RoomActivity::Broadcast(message) => Event::Room { message },
        RoomActivity::Participants(participants) => Event::Participants { participants },
        RoomActivity::Publisher {
            peer,
            participant,
            sources,
        } => Event::Publisher {
            peer: peer.0,
            participant,
            sources,
        },
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The job queue in the database.
struct StoreQueue {
    store: Store,
    policy: RetryPolicy,
    /// Webhook deliveries retry on their own schedule (`[webhooks]`).
    webhook_policy: RetryPolicy,
    events: WebhookEvents,
}

fn store_failed(e: impl std::error::Error + Send + Sync + 'static) -> QueueError {
    QueueError::Store(Box::new(e))
}

impl JobQueue for StoreQueue {
    fn enqueue(&self, recording: FinishedRecording) -> QueueFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let breakout = ReplayBreakout::of_room(&recording.room);
            self.store
                .enqueue_room_recording(
                    recording.lesson,
                    breakout,
                    &recording.name,
                    OffsetDateTime::now_utc(),
                )
                .await
                .map(|_| ())
                .map_err(store_failed)
        })
    }

    fn claim(&self, worker: String) -> QueueFuture<'_, Result<Option<Job>, QueueError>> {
        Box::pin(async move {
            let lease = time::Duration::try_from(CLAIM_LEASE).unwrap_or(time::Duration::MINUTE);
            let Some(job) = self
                .store
                .claim_recording_job(&worker, OffsetDateTime::now_utc(), lease)
                .await
                .map_err(store_failed)?
            else {
                return Ok(None);
            };
            let task = match self.task(&job).await.map_err(store_failed)? {
                Ok(task) => task,
                Err(reason) => {
                    // A job that cannot be run (its row is inconsistent) fails for good
                    // rather than being claimed again and again.
                    self.store
                        .give_up_job(job.id, &worker, &reason, OffsetDateTime::now_utc())
                        .await
                        .map_err(store_failed)?;
                    return Ok(None);
                }
            };
            Ok(Some(Job {
                id: job.id,
                task,
                attempt: u32::try_from(job.attempts).unwrap_or(u32::MAX),
                worker,
            }))
        })
    }

    fn keep_alive(&self, job: &Job) -> QueueFuture<'_, ()> {
        let (id, worker) = (job.id, job.worker.clone());
        Box::pin(async move {
            if let Err(e) = self
                .store
                .renew_recording_job(id, &worker, OffsetDateTime::now_utc())
                .await
            {
                tracing::warn!(job = id, error = %e, "cannot renew a job's claim");
            }
        })
    }

    fn succeeded(&self, job: Job, output: JobOutput) -> QueueFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let now = OffsetDateTime::now_utc();
            match output {
                JobOutput::Replay(output) => {
                    let chapters: Vec<ReplayChapter> = output
                        .chapters
                        .into_iter()
                        .map(|c| ReplayChapter {
                            at_ms: c.at_ms,
                            title: c.title,
                        })
                        .collect();
                    let replay = self
                        .store
                        .complete_recording_job(
                            job.id,
                            &job.worker,
                            output.duration_ms,
                            output.size_bytes,
                            &chapters,
                            now,
                        )
                        .await
                        .map_err(store_failed)?;
                    tracing::debug!(replay = %replay.id, "replay registered");
                    self.events.replay_ready(&replay).await;
                    Ok(())
                }
                JobOutput::Document(output) => self
                    .store
                    .complete_document_job(job.id, &job.worker, i64::from(output.pages), now)
                    .await
                    .map(|document| tracing::debug!(document = %document.id, "document ready"))
                    .map_err(store_failed),
                JobOutput::Webhook => self
                    .store
                    .complete_webhook_job(job.id, &job.worker, now)
                    .await
                    .map_err(store_failed),
            }
        })
    }

    fn failed(
        &self,
        job: Job,
        reason: String,
        retry: bool,
    ) -> QueueFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            let now = OffsetDateTime::now_utc();
            let policy = match job.task {
                Task::Webhook { .. } => self.webhook_policy,
                _ => self.policy,
            };
            let failed = if retry {
                self.store
                    .fail_recording_job(job.id, &job.worker, &reason, policy, now)
                    .await
            } else {
                self.store
                    .give_up_job(job.id, &job.worker, &reason, now)
                    .await
            };
            failed.map(|_| ()).map_err(store_failed)
        })
    }
}

impl StoreQueue {
    /// What a claimed job's row asks for; the inner `Err` says why it cannot be run. A
    /// database failure leaves the claim to lapse, so the job is taken again later.
    async fn task(&self, job: &RecordingJob) -> Result<Result<Task, String>, StoreError> {
        if let Some(delivery) = job.delivery_id {
            return Ok(Ok(Task::Webhook { delivery }));
        }
        Ok(
            match (
                &job.recording,
                job.lesson_id,
                job.replay_id,
                job.document_id,
            ) {
                (Some(recording), Some(lesson), Some(replay), None) => Ok(Task::Replay {
                    lesson,
                    recording: recording.clone(),
                    replay,
                }),
                (None, None, None, Some(document)) => {
                    let document = match self.store.document(document).await {
                        Ok(document) => document,
                        Err(StoreError::NotFound(_)) => {
                            return Ok(Err("the document is gone".into()));
                        }
                        Err(e) => return Err(e),
                    };
                    let format = match document.source {
                        DocumentSource::Pdf => SourceFormat::Pdf,
                        DocumentSource::Pptx => SourceFormat::Pptx,
                        DocumentSource::Odp => SourceFormat::Odp,
                        DocumentSource::Docx => SourceFormat::Docx,
                    };
                    Ok(Task::Document {
                        document: document.id,
                        format,
                    })
                }
                _ => Err("internal error: the job names neither a recording nor a document".into()),
            },
        )
    }
}
