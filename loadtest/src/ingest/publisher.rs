//! The teacher's encoder: rml_rtmp's client session over TCP, publishing the FLV clip in
//! real time, looped, as OBS would (metadata, the decoder configurations once, then tags at
//! their timestamps). It notes when each picture left ([`SentFrames`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent,
    ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::flv::{FlvClip, TagKind};
use super::frames::{SentFrames, flv_keys};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the publisher did, for the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct Published {
    pub video_frames: u64,
    pub audio_frames: u64,
    pub bytes: u64,
}

/// An RTMP publisher accepted by the server.
pub struct Publisher {
    stream: TcpStream,
    session: ClientSession,
}

impl Publisher {
    /// Connects to `rtmp://host:port/app` and asks to publish `key`.
    pub async fn connect(url: &str, key: &str) -> Result<Publisher, PublishError> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect_now(url, key))
            .await
            .map_err(|_| PublishError::NotAccepted(url.to_owned()))?
    }

    async fn connect_now(url: &str, key: &str) -> Result<Publisher, PublishError> {
        let rest = url
            .strip_prefix("rtmp://")
            .ok_or_else(|| PublishError::NotRtmp(url.to_owned()))?;
        let (authority, app) = rest.split_once('/').unwrap_or((rest, "live"));
        let mut stream =
            TcpStream::connect(authority)
                .await
                .map_err(|error| PublishError::Connect {
                    authority: authority.to_owned(),
                    error,
                })?;
        let _ = stream.set_nodelay(true);
        let mut handshake = Handshake::new(PeerType::Client);
        let p0p1 = handshake
            .generate_outbound_p0_and_p1()
            .map_err(PublishError::Handshake)?;
        write(&mut stream, &p0p1).await?;
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending = loop {
            let n = read(&mut stream, &mut buf).await?;
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
                Err(e) => return Err(PublishError::Handshake(e)),
            }
        };
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(url.to_owned());
        let (session, results) = ClientSession::new(config).map_err(PublishError::Session)?;
        let mut publisher = Publisher { stream, session };
        publisher.results(results).await?;
        let request = publisher
            .session
            .request_connection(app.to_owned())
            .map_err(PublishError::Session)?;
        publisher.results(vec![request]).await?;
        loop {
            if !pending.is_empty() {
                let results = publisher
                    .session
                    .handle_input(&pending)
                    .map_err(PublishError::Session)?;
                pending.clear();
                for event in publisher.results(results).await? {
                    match event {
                        ClientSessionEvent::ConnectionRequestAccepted => {
                            let request = publisher
                                .session
                                .request_publishing(key.to_owned(), PublishRequestType::Live)
                                .map_err(PublishError::Session)?;
                            publisher.results(vec![request]).await?;
                        }
                        ClientSessionEvent::PublishRequestAccepted => return Ok(publisher),
                        ClientSessionEvent::ConnectionRequestRejected { description } => {
                            return Err(PublishError::ConnectRefused(description));
                        }
                        ClientSessionEvent::UnhandleableOnStatusCode { code } => {
                            return Err(PublishError::PublishRefused(code));
                        }
                        _ => {}
                    }
                }
            }
            let n = read(&mut publisher.stream, &mut buf).await?;
            pending.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
    }

    /// Sends the clip in real time, looped, until `stop`; `published` follows the counts.
    pub async fn run(
        mut self,
        clip: &FlvClip,
        frames: Arc<SentFrames>,
        published: watch::Sender<Published>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), PublishError> {
        let mut metadata = StreamMetadata::new();
        metadata.video_width = Some(clip.width);
        metadata.video_height = Some(clip.height);
        metadata.video_codec_id = Some(7);
        metadata.audio_codec_id = Some(10);
        metadata.audio_sample_rate = Some(48_000);
        metadata.audio_channels = Some(2);
        metadata.audio_is_stereo = Some(true);
        let result = self
            .session
            .publish_metadata(&metadata)
            .map_err(PublishError::Session)?;
        self.results(vec![result]).await?;
        let start = tokio::time::Instant::now();
        let mut counts = Published::default();
        let mut buf = vec![0u8; 16 * 1024];
        for round in 0u64.. {
            for tag in &clip.tags {
                if round > 0 && tag.is_sequence_header() {
                    continue;
                }
                let millis = round * u64::from(clip.duration_ms) + u64::from(tag.millis);
                let due = start + Duration::from_millis(millis);
                // Meanwhile, read what the server sends (acknowledgements, pings).
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => break,
                        read = self.stream.read(&mut buf) => match read {
                            Ok(0) | Err(_) => return Err(PublishError::ServerClosed),
                            Ok(n) => {
                                let results = self
                                    .session
                                    .handle_input(buf.get(..n).unwrap_or_default())
                                    .map_err(PublishError::Session)?;
                                self.results(results).await?;
                            }
                        },
                        _ = stop.changed() => return Ok(()),
                    }
                }
                // Noted before the write: the server may forward the picture before this task
                // runs again, and its arrival must not find the previous loop's send.
                let now = SystemTime::now();
                counts.bytes += tag.body.len() as u64;
                match tag.kind {
                    TagKind::Video if !tag.is_sequence_header() => {
                        counts.video_frames += 1;
                        for key in flv_keys(&tag.body, clip.nal_length_size) {
                            frames.sent(key, now);
                        }
                    }
                    TagKind::Audio if !tag.is_sequence_header() => counts.audio_frames += 1,
                    _ => {}
                }
                let timestamp = RtmpTimestamp::new(millis as u32);
                let body = tag.body.clone();
                let result = match tag.kind {
                    TagKind::Video => self.session.publish_video_data(body, timestamp, false),
                    TagKind::Audio => self.session.publish_audio_data(body, timestamp, false),
                }
                .map_err(PublishError::Session)?;
                self.results(vec![result]).await?;
                published.send_replace(counts);
            }
        }
        Ok(())
    }

    /// Writes what the session produced; returns the events it raised.
    async fn results(
        &mut self,
        results: Vec<ClientSessionResult>,
    ) -> Result<Vec<ClientSessionEvent>, PublishError> {
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
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), PublishError> {
    stream
        .write_all(bytes)
        .await
        .map_err(PublishError::Connection)
}

async fn read(stream: &mut TcpStream, buf: &mut [u8]) -> Result<usize, PublishError> {
    match stream.read(buf).await {
        Ok(0) => Err(PublishError::ServerClosedRtmp),
        Ok(n) => Ok(n),
        Err(e) => Err(PublishError::Connection(e)),
    }
}

/// Why the encoder could not publish, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("{0} did not accept the publish within 10 s")]
    NotAccepted(String),
    #[error("not an rtmp:// URL: {0}")]
    NotRtmp(String),
    #[error("cannot connect to {authority}: {error}")]
    Connect {
        authority: String,
        error: std::io::Error,
    },
    #[error("handshake: {0:?}")]
    Handshake(HandshakeError),
    /// rml_rtmp's session refused a step (a request, the input, a tag).
    #[error("{0:?}")]
    Session(ClientSessionError),
    #[error("connect refused: {0}")]
    ConnectRefused(String),
    #[error("publish refused: {0}")]
    PublishRefused(String),
    /// While publishing: the read side ended or failed.
    #[error("the server closed the connection")]
    ServerClosed,
    /// While connecting.
    #[error("the server closed the RTMP connection")]
    ServerClosedRtmp,
    #[error("RTMP connection: {0}")]
    Connection(std::io::Error),
}
