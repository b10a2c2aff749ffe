//! The job queue as the recorder sees it, and the workers that drain it: replays of
//! recordings, course documents (see [`crate::documents`]), and webhook deliveries (sent by
//! the server's [`WebhookSender`]: the recorder has no HTTP client).
//!
//! The queue itself is durable and lives in the database (the server implements
//! [`JobQueue`] with its store): a job survives restarts, and with PostgreSQL several nodes
//! claim from one queue without taking the same job. A worker claims a job, keeps its claim
//! alive while ffmpeg (or LibreOffice) runs, and reports success (the replay or document
//! becomes ready) or failure (the store retries it later with backoff, then keeps it failed
//! with the reason; a document the server cannot read fails at once, as another attempt would
//! fail the same way).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use classroom_protocol::{DocumentId, LessonId, ReplayId};
use tokio::sync::{Notify, watch};
use tracing::{info, warn};

use crate::config::RecorderConfig;
use crate::documents::{self, DocumentConfig, DocumentOutput, SourceFormat};
use crate::live::{FinishedRecording, QUEUED_MARKER};
use crate::pipeline::{self, ReplayOutput};
use crate::stats::RecorderStats;

/// A boxed future, so that [`JobQueue`] can be a trait object.
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub task: Task,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// The worker that claimed it: renewals and outcomes count only from it.
    pub worker: String,
}

/// What a job makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// The replay of a finished recording.
    Replay {
        lesson: LessonId,
        /// The recording's folder name under `data_dir/recordings`.
        recording: String,
        /// The replay it makes (registered, processing, when the job was queued).
        replay: ReplayId,
    },
    /// The pages of a document uploaded as `format` (its folder under `data_dir/documents`).
    Document {
        document: DocumentId,
        format: SourceFormat,
    },
    /// One stored webhook event POSTed to its webhook.
    Webhook { delivery: i64 },
}

/// What a job made.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutput {
    Replay(ReplayOutput),
    Document(DocumentOutput),
    /// The receiver answered 2xx.
    Webhook,
}

/// Sends one webhook delivery; the server implements it with its HTTP client.
pub trait WebhookSender: Send + Sync + 'static {
    /// `Err((reason, retry))`: why the receiver did not take it, and whether another attempt
    /// may succeed.
    fn send(&self, delivery: i64) -> QueueFuture<'_, Result<(), (String, bool)>>;
}

/// The durable queue (the database).
pub trait JobQueue: Send + Sync + 'static {
    /// Queues the replay job of a finished recording and registers its replay as processing
    /// (a breakout room's linked to its lesson, round and room). Queueing the same recording
    /// again does nothing.
    fn enqueue(&self, recording: FinishedRecording) -> QueueFuture<'_, Result<(), QueueError>>;
    /// The next job due, claimed by this worker; `None` when there is none.
    fn claim(&self, worker: String) -> QueueFuture<'_, Result<Option<Job>, QueueError>>;
    /// The worker still runs the job: renews its claim.
    fn keep_alive(&self, job: &Job) -> QueueFuture<'_, ()>;
    fn succeeded(&self, job: Job, output: JobOutput) -> QueueFuture<'_, Result<(), QueueError>>;
    /// The job failed; the queue retries it later (`retry`) or marks it failed for good.
    fn failed(
        &self,
        job: Job,
        reason: String,
        retry: bool,
    ) -> QueueFuture<'_, Result<(), QueueError>>;
}

/// Why the [`JobQueue`] could not do what it was asked; nothing changed in the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The store that holds the queue failed (the database is unreachable, a query failed).
    #[error(transparent)]
    Store(Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Why a finished recording could not be queued ([`Workers::enqueue`]).
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The job is queued, but the recording's folder could not be marked queued.
    #[error(transparent)]
    Marker(std::io::Error),
    /// The task writing the marker stopped (the runtime is shutting down).
    #[error(transparent)]
    MarkerTask(tokio::task::JoinError),
}

/// A worker renews its claim this often; a claim not renewed for [`CLAIM_LEASE`] is taken
/// over (its node died).
pub const KEEP_ALIVE: Duration = Duration::from_secs(20);
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);
/// Idle workers look for due jobs this often (retries, other nodes' jobs) besides being
/// woken when a job is queued here.
const POLL: Duration = Duration::from_secs(2);

/// Where recordings, replays and documents live.
#[derive(Debug, Clone)]
pub struct Folders {
    pub recordings: PathBuf,
    pub replays: PathBuf,
    pub documents: PathBuf,
}

/// Queues finished recordings and runs the workers until `shutdown`.
pub struct Workers {
    pub config: RecorderConfig,
    pub documents: DocumentConfig,
    pub folders: Folders,
    pub queue: Arc<dyn JobQueue>,
    pub webhooks: Arc<dyn WebhookSender>,
    pub stats: Arc<RecorderStats>,
    pub wake: Arc<Notify>,
    /// Names this node's claims (`host:pid`).
    pub node: String,
}

impl Workers {
    /// Queues a finished recording's job (and marks the folder queued).
    pub async fn enqueue(&self, recording: &FinishedRecording) -> Result<(), EnqueueError> {
        self.queue.enqueue(recording.clone()).await?;
        let marker = self
            .folders
            .recordings
            .join(&recording.name)
            .join(QUEUED_MARKER);
        // Off the runtime: the disk may be stalled.
        tokio::task::spawn_blocking(move || std::fs::write(marker, b""))
            .await
            .map_err(EnqueueError::MarkerTask)?
            .map_err(EnqueueError::Marker)?;
        self.wake.notify_waiters();
        Ok(())
    }

    /// Runs `config.workers` workers until `shutdown` turns true.
    pub fn spawn(self: &Arc<Self>, shutdown: watch::Receiver<bool>) {
        for index in 0..self.config.workers {
            let workers = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move { workers.work(index, shutdown).await });
        }
    }

    async fn work(&self, index: usize, mut shutdown: watch::Receiver<bool>) {
        let worker = format!("{}#{index}", self.node);
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.queue.claim(worker.clone()).await {
                Ok(Some(job)) => {
                    self.run(job).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => warn!(error = %e, "cannot claim a job"),
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn run(&self, job: Job) {
        let started = Instant::now();
        info!(job = job.id, task = ?job.task, attempt = job.attempt, "job started");
        if let Task::Webhook { delivery } = job.task {
            let result = self.webhooks.send(delivery).await;
            let reported = match result {
                Ok(()) => self.queue.succeeded(job.clone(), JobOutput::Webhook).await,
                Err((reason, retry)) => {
                    info!(job = job.id, error = %reason, retry, "webhook not delivered");
                    self.queue.failed(job.clone(), reason, retry).await
                }
            };
            if let Err(e) = reported {
                warn!(job = job.id, error = %e, "cannot record the job's outcome; it will be retried");
            }
            return;
        }
        let work = match job.task.clone() {
            Task::Replay {
                recording, replay, ..
            } => {
                let recording = self.folders.recordings.join(recording);
                let out = self.folders.replays.join(replay.to_string());
                let config = self.config.clone();
                let documents = self.folders.documents.clone();
                tokio::task::spawn_blocking(move || {
                    pipeline::process(&config, &recording, &documents, &out)
                        .map(JobOutput::Replay)
                        .map_err(|e| (e.to_string(), e.is_retryable()))
                })
            }
            Task::Document { document, format } => {
                let folder = self.folders.documents.join(document.to_string());
                let config = self.documents.clone();
                tokio::task::spawn_blocking(move || {
                    documents::prepare(&config, &folder, format)
                        .map(JobOutput::Document)
                        .map_err(|e| (e.to_string(), e.is_retryable()))
                })
            }
            Task::Webhook { .. } => return,
        };
        let mut work = work;
        let result = loop {
            tokio::select! {
                result = &mut work => break result,
                _ = tokio::time::sleep(KEEP_ALIVE) => self.queue.keep_alive(&job).await,
            }
        };
        let millis = started.elapsed().as_millis() as u64;
        let replay = matches!(job.task, Task::Replay { .. });
        let reported = match result {
            Ok(Ok(output)) => {
                info!(job = job.id, took_ms = millis, "job done");
                if replay {
                    self.stats.job_finished(true, millis);
                }
                self.queue.succeeded(job.clone(), output).await
            }
            Ok(Err((reason, retry))) => {
                warn!(job = job.id, error = %reason, "job failed");
                if replay {
                    self.stats.job_finished(false, millis);
                }
                self.queue.failed(job.clone(), reason, retry).await
            }
            Err(e) => {
                warn!(job = job.id, error = %e, "job panicked");
                if replay {
                    self.stats.job_finished(false, millis);
                }
                self.queue
                    .failed(job.clone(), format!("internal error: {e}"), true)
                    .await
            }
        };
        if let Err(e) = reported {
            warn!(job = job.id, error = %e, "cannot record the job's outcome; it will be retried");
        }
    }
}
