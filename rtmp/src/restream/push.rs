//! One destination: an RTMP client (rml_rtmp's client session over TCP) that connects,
//! publishes with the destination's stream key and sends the lesson's tags, and a supervisor
//! that retries with backoff when it fails. Each connection runs in its own task: whatever a
//! destination sends back (even bytes that make the RTMP library panic) ends that connection
//! only, never the lesson or the other destinations.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent,
    ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::backoff::{Backoff, Retry, RetryPolicy};
use super::dial::{DialError, Dialer};
use super::tags::{Tag, TagKind};
use super::tls::TlsConnectError;

/// A destination's connection: TCP for `rtmp://`, TLS over TCP for `rtmps://`.
trait Wire: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Wire for T {}

/// Connecting and being accepted as a publisher must take no longer than this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Tags waiting for one destination; beyond this it is not keeping up and skips to the next
/// keyframe.
pub const DESTINATION_QUEUE: usize = 512;

/// Where to push: `rtmp://host:port/app` (or `rtmps://`, with `tls`) and the stream key.
#[derive(Clone, PartialEq, Eq)]
pub struct PushTarget {
    pub host: String,
    pub port: u16,
    pub app: String,
    /// The URL without the key, sent as `tcUrl`.
    pub url: String,
    pub stream_key: String,
    pub tls: bool,
}

impl fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushTarget")
            .field("url", &self.url)
            .field("stream_key", &"<hidden>")
            .finish()
    }
}

/// How a destination is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushState {
    Connecting,
    Live,
    /// Failed with this reason; trying again soon.
    Retrying(String),
    /// Failed too often; no more attempts in this restream.
    Failed(String),
}

/// A destination's state changed; `restarts` counts connections after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushStatus {
    pub destination: u64,
    pub state: PushState,
    pub restarts: u64,
}

/// The decoder configurations and picture size a new connection starts with.
#[derive(Debug, Default, Clone)]
pub struct StreamHeaders {
    pub video: Option<Tag>,
    pub audio: Option<Tag>,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

pub type SharedHeaders = Arc<Mutex<StreamHeaders>>;

pub(super) fn headers(shared: &SharedHeaders) -> StreamHeaders {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Pushes to one destination until `tags` closes, retrying by `policy`.
pub(super) async fn run_destination(
    id: u64,
    target: PushTarget,
    policy: RetryPolicy,
    dialer: Dialer,
    mut tags: mpsc::Receiver<Tag>,
    shared: SharedHeaders,
    statuses: mpsc::UnboundedSender<PushStatus>,
) {
    let mut backoff = Backoff::new(policy);
    let mut restarts = 0u64;
    let report = |state: PushState, restarts: u64| {
        let _ = statuses.send(PushStatus {
            destination: id,
            state,
            restarts,
        });
    };
    loop {
        report(PushState::Connecting, restarts);
        let (live_tx, mut live_rx) = mpsc::unbounded_channel::<()>();
        let (feed_tx, feed_rx) = mpsc::channel::<Tag>(DESTINATION_QUEUE);
        let mut feed = Feed::new(feed_tx);
        let mut attempt = tokio::spawn(connection(
            target.clone(),
            dialer.clone(),
            feed_rx,
            shared.clone(),
            live_tx,
        ));
        // This destination removed (its task aborted): the connection goes with it at once.
        let _abort = AbortOnDrop(attempt.abort_handle());
        let reason = loop {
            tokio::select! {
                result = &mut attempt => {
                    break match result {
                        Ok(reason) => reason.to_string(),
                        Err(e) if e.is_panic() => {
                            "the service sent data that could not be read".to_owned()
                        }
                        Err(_) => "the connection was stopped".to_owned(),
                    };
                }
                Some(()) = live_rx.recv() => {
                    backoff.live(Instant::now());
                    report(PushState::Live, restarts);
                }
                tag = tags.recv() => {
                    let Some(tag) = tag else {
                        attempt.abort();
                        return;
                    };
                    feed.offer(tag);
                }
            }
        };
        tracing::info!(destination = id, url = %target.url, %reason, "restream destination failed");
        match backoff.failed(Instant::now()) {
            Retry::GiveUp => {
                report(PushState::Failed(reason), restarts);
                // Keep draining so the lesson never waits for us.
                while tags.recv().await.is_some() {}
                return;
            }
            Retry::After(delay) => {
                report(PushState::Retrying(reason), restarts);
                let sleep = tokio::time::sleep(delay);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        tag = tags.recv() => if tag.is_none() { return },
                    }
                }
            }
        }
        restarts += 1;
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A queue of tags to a slower consumer. When it is full, tags are dropped and video resumes
/// at the next keyframe, so a consumer that falls behind never makes the lesson wait and never
/// gets a broken picture.
pub(super) struct Feed {
    tx: mpsc::Sender<Tag>,
    lagging: bool,
}

impl Feed {
    pub(super) fn new(tx: mpsc::Sender<Tag>) -> Self {
        Feed { tx, lagging: false }
    }

    /// False when the consumer is gone.
    pub(super) fn offer(&mut self, tag: Tag) -> bool {
        let resumes = tag.kind != TagKind::Video || tag.is_keyframe() || tag.is_sequence_header();
        if self.lagging && !resumes {
            return true;
        }
        let keyframe = tag.is_keyframe();
        match self.tx.try_send(tag) {
            Ok(()) => {
                if keyframe {
                    self.lagging = false;
                }
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.lagging = true;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// One connection: returns why it ended.
async fn connection(
    target: PushTarget,
    dialer: Dialer,
    mut tags: mpsc::Receiver<Tag>,
    shared: SharedHeaders,
    live: mpsc::UnboundedSender<()>,
) -> PushError {
    let mut client = match tokio::time::timeout(CONNECT_TIMEOUT, publish(&target, &dialer)).await {
        Ok(Ok(client)) => client,
        Ok(Err(reason)) => return reason,
        Err(_) => return PushError::NotAcceptedInTime,
    };
    let _ = live.send(());
    let headers = headers(&shared);
    if let Err(reason) = client.start(&headers).await {
        return reason;
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            tag = tags.recv() => {
                let Some(tag) = tag else { return PushError::RestreamStopped };
                if let Err(reason) = client.send(tag).await {
                    return reason;
                }
            }
            read = client.stream.read(&mut buf) => {
                match read {
                    Ok(0) => return PushError::ClosedByService,
                    Err(e) => return PushError::Connection(e),
                    Ok(n) => {
                        if let Err(reason) = client.input(buf.get(..n).unwrap_or_default()).await {
                            return reason;
                        }
                    }
                }
            }
        }
    }
}

/// A connection accepted as a publisher.
struct Publisher {
    stream: Box<dyn Wire>,
    session: ClientSession,
    /// The lesson time of this connection's timestamp 0.
    base: Option<u64>,
    /// Video waits for a keyframe (at the start and after a skipped tag).
    waiting_for_keyframe: bool,
}

/// Connects, shakes hands, connects to the app and asks to publish with the key.
async fn publish(target: &PushTarget, dialer: &Dialer) -> Result<Publisher, PushError> {
    let tcp = dialer
        .connect(&target.host, target.port)
        .await
        .map_err(|error| {
            // The detail (refused or timed out, the address) is for the operator only.
            tracing::info!(url = %target.url, %error, "restream destination not reached");
            PushError::Dial {
                host: target.host.clone(),
                port: target.port,
                error,
            }
        })?;
    let _ = tcp.set_nodelay(true);
    let mut stream: Box<dyn Wire> = if target.tls {
        Box::new(dialer.tls.connect(&target.host, tcp).await?)
    } else {
        Box::new(tcp)
    };
    let mut handshake = Handshake::new(PeerType::Client);
    let p0p1 = handshake
        .generate_outbound_p0_and_p1()
        .map_err(PushError::Handshake)?;
    write(&mut stream, &p0p1).await?;
    let mut buf = vec![0u8; 16 * 1024];
    let leftover = loop {
        let n = stream.read(&mut buf).await.map_err(PushError::Read)?;
        if n == 0 {
            return Err(PushError::ClosedDuring("the RTMP handshake"));
        }
        match handshake.process_bytes(buf.get(..n).unwrap_or_default()) {
            Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                write(&mut stream, &response_bytes).await?;
            }
            Ok(HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            }) => {
                write(&mut stream, &response_bytes).await?;
                break remaining_bytes;
            }
            Err(e) => return Err(PushError::Handshake(e)),
        }
    };
    let mut config = ClientSessionConfig::new();
    config.tc_url = Some(target.url.clone());
    config.flash_version = "FMLE/3.0 (compatible; classroom)".to_owned();
    let (session, results) = ClientSession::new(config).map_err(PushError::Session)?;
    let mut publisher = Publisher {
        stream,
        session,
        base: None,
        waiting_for_keyframe: true,
    };
    publisher.results(results).await?;
    let request = publisher
        .session
        .request_connection(target.app.clone())
        .map_err(|error| PushError::ConnectRequest {
            app: target.app.clone(),
            error,
        })?;
    publisher.results(vec![request]).await?;
    let mut asked_to_publish = false;
    let mut pending = leftover;
    loop {
        if !pending.is_empty() {
            let results = publisher
                .session
                .handle_input(&pending)
                .map_err(PushError::UnreadableAnswer)?;
            pending.clear();
            for event in publisher.results(results).await? {
                match event {
                    ClientSessionEvent::ConnectionRequestAccepted if !asked_to_publish => {
                        asked_to_publish = true;
                        let request = publisher
                            .session
                            .request_publishing(target.stream_key.clone(), PublishRequestType::Live)
                            .map_err(PushError::PublishRequest)?;
                        publisher.results(vec![request]).await?;
                    }
                    ClientSessionEvent::ConnectionRequestRejected { description } => {
                        return Err(PushError::AppRefused {
                            app: target.app.clone(),
                            description,
                        });
                    }
                    ClientSessionEvent::PublishRequestAccepted => return Ok(publisher),
                    ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                        return Err(PushError::PublishRefused(code));
                    }
                    _ => {}
                }
            }
        }
        let n = publisher
            .stream
            .read(&mut buf)
            .await
            .map_err(PushError::Read)?;
        if n == 0 {
            return Err(PushError::ClosedDuring(if asked_to_publish {
                "the publish request (wrong stream key?)"
            } else {
                "the connect request (wrong application?)"
            }));
        }
        pending.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}

impl Publisher {
    /// Sends what the session produced; returns the events it raised.
    async fn results(
        &mut self,
        results: Vec<ClientSessionResult>,
    ) -> Result<Vec<ClientSessionEvent>, PushError> {
        let mut events = Vec::new();
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(packet) => {
                    write(&mut self.stream, &packet.bytes).await?;
                }
                ClientSessionResult::RaisedEvent(event) => events.push(event),
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(events)
    }

    /// Bytes from the service while publishing (acknowledgements, pings).
    async fn input(&mut self, bytes: &[u8]) -> Result<(), PushError> {
        let results = self
            .session
            .handle_input(bytes)
            .map_err(PushError::Unreadable)?;
        for event in self.results(results).await? {
            if let ClientSessionEvent::UnhandleableOnStatusCode { code } = event
                && (code.contains("Failed") || code.contains("Error") || code.contains("Unpublish"))
            {
                return Err(PushError::StoppedByService(code));
            }
        }
        Ok(())
    }

    /// Metadata and decoder configurations, before any media.
    async fn start(&mut self, headers: &StreamHeaders) -> Result<(), PushError> {
        let mut metadata = StreamMetadata::new();
        metadata.video_width = headers.width;
        metadata.video_height = headers.height;
        metadata.video_codec_id = Some(7);
        metadata.audio_codec_id = Some(10);
        metadata.audio_sample_rate = Some(48_000);
        metadata.audio_channels = Some(2);
        metadata.audio_is_stereo = Some(true);
        metadata.encoder = Some("classroom".to_owned());
        let result = self
            .session
            .publish_metadata(&metadata)
            .map_err(PushError::Metadata)?;
        self.results(vec![result]).await?;
        for tag in [&headers.video, &headers.audio].into_iter().flatten() {
            self.write_tag(tag.kind, 0, tag.body.clone()).await?;
        }
        Ok(())
    }

    async fn send(&mut self, tag: Tag) -> Result<(), PushError> {
        if tag.kind == TagKind::Video && !tag.is_sequence_header() {
            if self.waiting_for_keyframe && !tag.is_keyframe() {
                return Ok(());
            }
            self.waiting_for_keyframe = false;
        }
        // Timestamps start near 0 on each connection (a second of slack for audio that
        // arrives a little before the first keyframe).
        let base = *self.base.get_or_insert(tag.millis.saturating_sub(1_000));
        let millis = tag.millis.saturating_sub(base);
        self.write_tag(tag.kind, millis, tag.body).await
    }

    async fn write_tag(
        &mut self,
        kind: TagKind,
        millis: u64,
        body: Bytes,
    ) -> Result<(), PushError> {
        let timestamp = RtmpTimestamp::new(millis as u32);
        let result = match kind {
            TagKind::Video => self.session.publish_video_data(body, timestamp, false),
            TagKind::Audio => self.session.publish_audio_data(body, timestamp, false),
        }
        .map_err(PushError::Media)?;
        self.results(vec![result]).await.map(drop)
    }
}

/// Writes and flushes: TLS holds records back until flushed (a no-op on plain TCP).
async fn write(stream: &mut Box<dyn Wire>, bytes: &[u8]) -> Result<(), PushError> {
    stream
        .write_all(bytes)
        .await
        .map_err(PushError::Connection)?;
    stream.flush().await.map_err(PushError::Connection)
}

/// Why a connection to a destination ended; its message is what the teacher sees
/// ([`PushState::Retrying`], [`PushState::Failed`]).
#[derive(Debug, thiserror::Error)]
pub(super) enum PushError {
    /// The destination's TCP connection could not be opened.
    #[error("{}", .error.reason(.host, *.port))]
    Dial {
        host: String,
        port: u16,
        error: DialError,
    },
    #[error(transparent)]
    Tls(#[from] TlsConnectError),
    /// Reading from the service failed.
    #[error(transparent)]
    Read(std::io::Error),
    /// Writing to the service failed, or reading while live.
    #[error("the connection failed: {0}")]
    Connection(std::io::Error),
    #[error("the service closed the connection during {0}")]
    ClosedDuring(&'static str),
    #[error("the service closed the connection")]
    ClosedByService,
    #[error("the RTMP handshake with the service failed: {0}")]
    Handshake(HandshakeError),
    #[error("could not start an RTMP session: {0}")]
    Session(ClientSessionError),
    #[error("could not ask the service to connect to `{app}`: {error}")]
    ConnectRequest {
        app: String,
        error: ClientSessionError,
    },
    #[error("the service's answer could not be read: {0}")]
    UnreadableAnswer(ClientSessionError),
    #[error("could not ask the service to publish: {0}")]
    PublishRequest(ClientSessionError),
    #[error("the service refused the application `{app}`: {description}")]
    AppRefused { app: String, description: String },
    #[error("the service refused to publish: {0}")]
    PublishRefused(String),
    #[error("the service did not accept the stream within 10 s")]
    NotAcceptedInTime,
    #[error("the service sent something unreadable: {0}")]
    Unreadable(ClientSessionError),
    #[error("the service stopped the stream: {0}")]
    StoppedByService(String),
    #[error("could not send the stream's metadata: {0}")]
    Metadata(ClientSessionError),
    #[error("could not send media to the service: {0}")]
    Media(ClientSessionError),
    #[error("the restream stopped")]
    RestreamStopped,
}
