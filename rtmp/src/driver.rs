//! The tokio edge: a TCP listener, one task per encoder connection running an
//! [`IngestSession`], ffmpeg transcoders on demand, and two narrow traits towards the rest of
//! the server: [`StreamKeys`] (which lesson a key opens) and [`IngestSink`] (where events go).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use classroom_codec::annexb::AnnexBSplitter;
use classroom_codec::ogg::OggOpusReader;
use classroom_codec::rtp::RtpPacket;
use classroom_protocol::LessonId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::events::{ConnectionId, IngestEvent, StreamKey};
use crate::session::{IngestSession, SessionConfig, SessionOutput};
use crate::sources::{ClaimError, Sources};
use crate::stats::{IngestSnapshot, IngestStats, SessionOutcome};
use crate::transcode::{TranscodeError, TranscodeKind, Transcoder, find_ffmpeg};

/// Which lesson a stream key publishes to. Implementations compare the secret in constant time
/// and never log it.
pub trait StreamKeys: Send + Sync + 'static {
    fn lesson_for_key(&self, key: &StreamKey) -> impl Future<Output = Option<LessonId>> + Send;
}

/// Where ingest events go (the SFU's in-process publisher interface). Awaiting applies
/// backpressure to the encoder's connection.
///
/// `source` is the connection the event comes from: the generation of the lesson's source.
/// Connections run as tasks of their own, so an old connection's last events (its Unpublish,
/// a packet still in flight) can arrive after a newer connection published to the same
/// lesson; the sink applies an event only when `source` published the source it holds.
pub trait IngestSink: Send + Sync + 'static {
    fn deliver(&self, source: ConnectionId, event: IngestEvent) -> impl Future<Output = ()> + Send;
}

impl IngestSink for mpsc::Sender<IngestEvent> {
    async fn deliver(&self, _source: ConnectionId, event: IngestEvent) {
        // A closed receiver means the server is shutting down: nothing left to tell.
        let _ = self.send(event).await;
    }
}

impl IngestSink for mpsc::Sender<(ConnectionId, IngestEvent)> {
    async fn deliver(&self, source: ConnectionId, event: IngestEvent) {
        let _ = self.send((source, event)).await;
    }
}

/// Listener settings. The server's config file maps onto this.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Default `0.0.0.0:1935`.
    pub listen: SocketAddr,
    pub session: SessionConfig,
    /// Connections beyond this are closed at once (a flood cannot exhaust memory or tasks).
    pub max_connections: usize,
    /// How long a dropped encoder's source waits for it to reconnect.
    pub reconnect_grace: Duration,
    /// ffmpeg binary; `None` looks for `ffmpeg` on PATH.
    pub ffmpeg: Option<PathBuf>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            session: SessionConfig::default(),
            max_connections: 64,
            reconnect_grace: Duration::from_secs(10),
            ffmpeg: None,
        }
    }
}

const READ_BUFFER: usize = 64 * 1024;
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);

struct Shared {
    sources: Mutex<Sources>,
    session: SessionConfig,
    ffmpeg: Option<PathBuf>,
    next_connection: AtomicU64,
    stats: IngestStats,
    /// The connection publishing to each lesson, and how to make it stop.
    publishers: Mutex<HashMap<LessonId, (ConnectionId, Arc<Notify>)>>,
}

/// Read access for the rest of the server while the listener runs.
#[derive(Clone)]
pub struct IngestHandle {
    shared: Arc<Shared>,
}

impl IngestHandle {
    /// The lesson's video packets from its last keyframe on: send them to a new subscriber
    /// first, so that it decodes at once.
    pub fn current_gop(&self, lesson: LessonId) -> Vec<RtpPacket> {
        self.shared
            .sources
            .lock()
            .map(|s| s.current_gop(lesson))
            .unwrap_or_default()
    }

    pub fn is_publishing(&self, lesson: LessonId) -> bool {
        self.shared
            .sources
            .lock()
            .is_ok_and(|s| s.is_publishing(lesson))
    }

    /// ffmpeg was found: B-frame video and AAC audio can be converted.
    pub fn transcoder_available(&self) -> bool {
        self.shared.ffmpeg.is_some()
    }

    /// Closes the connection of the encoder publishing to `lesson`, as if it had stopped
    /// (its source ends at once). For a lesson that ended, or a stream key rotated.
    pub fn stop_publisher(&self, lesson: LessonId) {
        self.kick(lesson, None);
    }

    /// Closes `conn` if it is still the one publishing to `lesson` (not a newer connection
    /// that took its place): for a publish the server could not complete.
    pub fn stop_connection(&self, lesson: LessonId, conn: ConnectionId) {
        self.kick(lesson, Some(conn));
    }

    /// The lessons an encoder is publishing to now.
    pub fn publishing(&self) -> Vec<LessonId> {
        self.shared
            .publishers
            .lock()
            .map(|p| p.keys().copied().collect())
            .unwrap_or_default()
    }

    fn kick(&self, lesson: LessonId, only: Option<ConnectionId>) {
        if let Ok(publishers) = self.shared.publishers.lock()
            && let Some((current, stop)) = publishers.get(&lesson)
            && only.is_none_or(|c| c == *current)
        {
            stop.notify_one();
        }
    }

    /// The ingest's counters now.
    pub fn stats(&self) -> IngestSnapshot {
        let active = self.shared.sources.lock().map_or(0, |s| s.active());
        self.shared.stats.snapshot(active as u64)
    }
}

pub struct IngestServer {
    listener: TcpListener,
    max_connections: usize,
    shared: Arc<Shared>,
}

impl IngestServer {
    pub async fn bind(config: IngestConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let ffmpeg = find_ffmpeg(config.ffmpeg.as_deref()).await;
        if ffmpeg.is_none() {
            tracing::warn!(
                "ffmpeg not found: RTMP streams with B-frames will be refused and AAC audio dropped"
            );
        }
        let mut session = config.session;
        session.transcoder_available = ffmpeg.is_some();
        let seed = std::process::id() ^ (Instant::now().elapsed().subsec_nanos());
        Ok(IngestServer {
            listener,
            max_connections: config.max_connections,
            shared: Arc::new(Shared {
                sources: Mutex::new(Sources::new(config.reconnect_grace, seed)),
                session,
                ffmpeg,
                next_connection: AtomicU64::new(1),
                stats: IngestStats::default(),
                publishers: Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn handle(&self) -> IngestHandle {
        IngestHandle {
            shared: self.shared.clone(),
        }
    }

    /// Accepts encoders until `shutdown` completes, then closes every connection.
    pub async fn run<K: StreamKeys, S: IngestSink>(
        self,
        keys: Arc<K>,
        sink: Arc<S>,
        shutdown: impl Future<Output = ()>,
    ) {
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let Ok((stream, peer)) = accepted else { continue };
                    let Ok(permit) = permits.clone().try_acquire_owned() else {
                        self.shared.stats.session(SessionOutcome::OverLimit);
                        tracing::warn!(%peer, "RTMP connection refused: too many connections");
                        drop(stream);
                        continue;
                    };
                    let conn = ConnectionId(self.shared.next_connection.fetch_add(1, Ordering::Relaxed));
                    let connection = Connection {
                        conn,
                        shared: self.shared.clone(),
                        keys: keys.clone(),
                        sink: sink.clone(),
                        stop: stop_rx.clone(),
                        kick: Arc::new(Notify::new()),
                        outcome: None,
                    };
                    tasks.spawn(async move {
                        connection.run(stream).await;
                        drop(permit);
                    });
                }
                _ = sweep.tick() => {
                    let expired = self
                        .shared
                        .sources
                        .lock()
                        .map(|mut s| s.expire(Instant::now()))
                        .unwrap_or_default();
                    for (source, event) in expired {
                        sink.deliver(source, event).await;
                    }
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = &mut shutdown => break,
            }
        }
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
    }
}

struct Connection<K, S> {
    conn: ConnectionId,
    shared: Arc<Shared>,
    keys: Arc<K>,
    sink: Arc<S>,
    stop: watch::Receiver<bool>,
    /// Notified to close this connection ([`IngestHandle::stop_publisher`]).
    kick: Arc<Notify>,
    /// How the publish went, counted once when the connection ends.
    outcome: Option<SessionOutcome>,
}

/// The transcoders of one connection, started on first use.
#[derive(Default)]
struct Transcoders {
    video: Option<Counted<Transcoder>>,
    audio: Option<Counted<Transcoder>>,
    annexb: AnnexBSplitter,
    ogg: OggOpusReader,
    audio_failed: bool,
}

impl<K: StreamKeys, S: IngestSink> Connection<K, S> {
    async fn run(mut self, stream: TcpStream) {
        let conn = self.conn;
        let peer = stream.peer_addr().ok();
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let mut session = IngestSession::new(self.shared.session.clone(), Instant::now());
        let mut transcoders = Transcoders::default();
        let mut buf = vec![0u8; READ_BUFFER];
        let mut clean = false;
        tracing::debug!(%conn, ?peer, "RTMP connection");
        'connection: loop {
            while let Some(output) = session.poll_output() {
                match output {
                    SessionOutput::Send(bytes) => {
                        let write = tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&bytes));
                        if !matches!(write.await, Ok(Ok(()))) {
                            break 'connection;
                        }
                    }
                    SessionOutput::CheckKey(key) => self.check_key(&mut session, &key).await,
                    SessionOutput::Event(event) => {
                        self.count(&event, &session);
                        self.sink.deliver(conn, event).await
                    }
                    SessionOutput::VideoToTranscoder(bytes) => {
                        if let Err(reason) = self.transcode_video(&mut transcoders, bytes) {
                            self.outcome = Some(SessionOutcome::Unsupported);
                            self.sink
                                .deliver(
                                    conn,
                                    IngestEvent::Refused {
                                        lesson: session.lesson(),
                                        reason: reason.to_string(),
                                    },
                                )
                                .await;
                            tracing::warn!(%conn, "RTMP publish stopped: {reason}");
                            break 'connection;
                        }
                    }
                    SessionOutput::AudioToTranscoder(bytes) => {
                        self.transcode_audio(&mut transcoders, bytes);
                    }
                    SessionOutput::Close {
                        reason,
                        clean: was_clean,
                    } => {
                        tracing::info!(%conn, lesson = ?session.lesson(), "RTMP connection closed: {reason}");
                        clean = was_clean;
                        break 'connection;
                    }
                }
            }
            let deadline = tokio::time::Instant::from_std(session.poll_timeout());
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        self.shared.stats.bytes(n);
                        session.handle_input(Instant::now(), buf.get(..n).unwrap_or_default())
                    }
                },
                out = recv(transcoders.video.as_mut().map(|t| &mut t.inner)) => match out {
                    Some(bytes) => match transcoders.annexb.push(&bytes) {
                        Ok(nals) => nals.into_iter().for_each(|n| session.handle_transcoded_nal(n)),
                        Err(e) => { self.refuse(&session, e.to_string()).await; break }
                    },
                    None => { self.refuse(&session, "the video transcoder stopped".to_owned()).await; break }
                },
                out = recv(transcoders.audio.as_mut().map(|t| &mut t.inner)) => match out {
                    Some(bytes) => match transcoders.ogg.push(&bytes) {
                        Ok(packets) => packets.into_iter().for_each(|p| session.handle_opus(p)),
                        Err(e) => { tracing::warn!(%conn, "audio transcoder: {e}"); transcoders.stop_audio() }
                    },
                    None => { tracing::warn!(%conn, "the audio transcoder stopped"); transcoders.stop_audio() }
                },
                () = tokio::time::sleep_until(deadline) => session.handle_timeout(Instant::now()),
                _ = self.stop.changed() => { clean = true; break }
                () = self.kick.notified() => {
                    tracing::info!(%conn, lesson = ?session.lesson(), "RTMP publisher stopped by the server");
                    clean = true;
                    break
                }
            }
        }
        self.shared
            .stats
            .session(self.outcome.unwrap_or(SessionOutcome::NoPublish));
        if let Some(lesson) = session.lesson()
            && let Ok(mut publishers) = self.shared.publishers.lock()
            && publishers.get(&lesson).is_some_and(|(c, _)| *c == conn)
        {
            publishers.remove(&lesson);
        }
        let dropped = session.dropped_frames();
        if dropped > 0 {
            tracing::info!(%conn, dropped, "RTMP video pictures dropped");
        }
        if let Some((lesson, media)) = session.into_media() {
            let event = self
                .shared
                .sources
                .lock()
                .ok()
                .and_then(|mut s| s.release(lesson, conn, media, clean, Instant::now()));
            if let Some(event) = event {
                self.sink.deliver(conn, event).await;
            }
        }
    }

    async fn check_key(&mut self, session: &mut IngestSession, key: &StreamKey) {
        let Some(lesson) = self.keys.lesson_for_key(key).await else {
            self.outcome = Some(SessionOutcome::WrongKey);
            tracing::info!(conn = %self.conn, "RTMP publish refused: unknown stream key");
            session.publish_refused(
                None,
                "the stream key is not valid: copy it again from the lesson page".to_owned(),
            );
            return;
        };
        let claimed = match self.shared.sources.lock() {
            Ok(mut sources) => sources.claim(lesson, self.conn),
            Err(_) => return session.publish_refused(Some(lesson), "server error".to_owned()),
        };
        match claimed {
            Ok((media, resumed)) => {
                self.outcome = Some(if resumed {
                    SessionOutcome::Resumed
                } else {
                    SessionOutcome::Accepted
                });
                if let Ok(mut publishers) = self.shared.publishers.lock() {
                    publishers.insert(lesson, (self.conn, self.kick.clone()));
                }
                tracing::info!(conn = %self.conn, %lesson, resumed, "RTMP publish accepted");
                session.publish_accepted(lesson, media, resumed);
            }
            Err(e) => {
                self.outcome = Some(match e {
                    ClaimError::InUse => SessionOutcome::InUse,
                });
                tracing::info!(conn = %self.conn, %lesson, "RTMP publish refused: {e}");
                session.publish_refused(Some(lesson), e.to_string());
            }
        }
    }

    fn transcode_video(&self, t: &mut Transcoders, bytes: Bytes) -> Result<(), TranscodeError> {
        let ffmpeg = self
            .shared
            .ffmpeg
            .as_deref()
            .ok_or(TranscodeError::NoFfmpeg)?;
        if t.video.is_none() {
            let video = Transcoder::spawn(ffmpeg, TranscodeKind::Video)?;
            t.video = Some(Counted::new(video, &self.shared));
        }
        match &t.video {
            Some(video) => video.inner.feed(bytes),
            None => Ok(()),
        }
    }

    fn transcode_audio(&self, t: &mut Transcoders, bytes: Bytes) {
        if t.audio_failed {
            return;
        }
        let Some(ffmpeg) = self.shared.ffmpeg.as_deref() else {
            return;
        };
        if t.audio.is_none() {
            match Transcoder::spawn(ffmpeg, TranscodeKind::Audio) {
                Ok(audio) => t.audio = Some(Counted::new(audio, &self.shared)),
                Err(e) => {
                    tracing::warn!(conn = %self.conn, "audio transcoder: {e}");
                    return t.stop_audio();
                }
            }
        }
        if let Some(Err(e)) = t.audio.as_ref().map(|a| a.inner.feed(bytes)) {
            tracing::warn!(conn = %self.conn, "audio transcoder: {e}");
            t.stop_audio();
        }
    }

    /// Counts what goes to the SFU, and refusals of the media after an accepted publish.
    fn count(&mut self, event: &IngestEvent, session: &IngestSession) {
        let stats = &self.shared.stats;
        match event {
            IngestEvent::Packet {
                track: crate::TrackKind::Video,
                packet,
                ..
            } if packet.marker => stats.video_frame(),
            IngestEvent::Packet {
                track: crate::TrackKind::Audio,
                ..
            } => stats.audio_frame(),
            // A refused key has no lesson yet: counted in `check_key`.
            IngestEvent::Refused { .. } if session.lesson().is_some() => {
                self.outcome = Some(SessionOutcome::Unsupported);
            }
            _ => {}
        }
    }

    async fn refuse(&mut self, session: &IngestSession, reason: String) {
        self.outcome = Some(SessionOutcome::Unsupported);
        tracing::warn!(conn = %self.conn, "RTMP publish stopped: {reason}");
        let refused = IngestEvent::Refused {
            lesson: session.lesson(),
            reason,
        };
        self.sink.deliver(self.conn, refused).await;
    }
}

impl Transcoders {
    /// Audio is optional: after a failure the video goes on without it.
    fn stop_audio(&mut self) {
        self.audio = None;
        self.audio_failed = true;
    }
}

/// The next output of a transcoder; pending forever when there is none.
async fn recv(transcoder: Option<&mut Transcoder>) -> Option<Bytes> {
    match transcoder {
        Some(t) => t.output.recv().await,
        None => std::future::pending().await,
    }
}

/// A running transcoder, counted in the stats while it lives.
struct Counted<T> {
    inner: T,
    shared: Arc<Shared>,
}

impl<T> Counted<T> {
    fn new(inner: T, shared: &Arc<Shared>) -> Self {
        shared.stats.transcoder_started();
        Counted {
            inner,
            shared: shared.clone(),
        }
    }
}

impl<T> Drop for Counted<T> {
    fn drop(&mut self) {
        self.shared.stats.transcoder_stopped();
    }
}
