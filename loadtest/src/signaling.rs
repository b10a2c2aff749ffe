//! The signaling connection of one simulated participant: a WebSocket to `/ws` speaking the
//! protocol's own types (`classroom-protocol`).

use std::time::Duration;

use classroom_protocol::ErrorCode;
use classroom_protocol::signal::{ClientEnvelope, ClientMessage, ParticipantId, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Debug, Error)]
pub enum SignalingError {
    #[error("cannot open the WebSocket: {0}")]
    Connect(tokio_tungstenite::tungstenite::Error),
    #[error("the WebSocket failed: {0}")]
    Socket(tokio_tungstenite::tungstenite::Error),
    #[error("the server closed the signaling connection")]
    Closed,
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    #[error("the server sent something that is not a protocol message: {0}")]
    BadMessage(String),
    #[error("the server refused: {code}: {message}")]
    Refused { code: ErrorCode, message: String },
}

pub struct Signaling {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Signaling {
    /// Opens a WebSocket to `base` (`http://host:port`).
    pub async fn connect(base: &str) -> Result<Signaling, SignalingError> {
        let url = format!(
            "{}/ws",
            base.trim_end_matches('/')
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        );
        Self::connect_url(&url).await
    }

    /// Opens a WebSocket to `url` (`ws://node2:8080/ws`: a join's `signaling_url`).
    pub async fn connect_url(url: &str) -> Result<Signaling, SignalingError> {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .map_err(SignalingError::Connect)?;
        Ok(Signaling { socket, next_id: 1 })
    }

    /// Sends a message with a fresh request id and returns the id.
    pub async fn send(&mut self, message: ClientMessage) -> Result<u64, SignalingError> {
        let id = self.next_id;
        self.next_id += 1;
        let envelope = ClientEnvelope {
            v: classroom_protocol::PROTOCOL_VERSION,
            id: Some(id),
            message,
        };
        let text = serde_json::to_string(&envelope)
            .map_err(|e| SignalingError::BadMessage(e.to_string()))?;
        self.socket
            .send(Message::text(text))
            .await
            .map_err(SignalingError::Socket)?;
        Ok(id)
    }

    /// The next protocol message within `wait`: `Ok(None)` when nothing came in time.
    pub async fn recv_within(
        &mut self,
        wait: Duration,
    ) -> Result<Option<ServerMessage>, SignalingError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let Ok(frame) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                return Ok(None);
            };
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return serde_json::from_str(&text)
                        .map(Some)
                        .map_err(|e| SignalingError::BadMessage(format!("{e}: {text}")));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(_))) => {
                    return Err(SignalingError::BadMessage("a binary frame".into()));
                }
                Some(Ok(Message::Close(_))) | None => return Err(SignalingError::Closed),
                Some(Err(e)) => return Err(SignalingError::Socket(e)),
            }
        }
    }

    /// Joins with `token`; returns our participant id and the messages that came first.
    pub async fn join(
        &mut self,
        token: String,
        wait: Duration,
    ) -> Result<ParticipantId, SignalingError> {
        self.send(ClientMessage::join(token)).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await? {
                Some(ServerMessage::Joined { you, .. }) => return Ok(you.id),
                Some(ServerMessage::Error { code, message, .. }) => {
                    return Err(SignalingError::Refused { code, message });
                }
                Some(_) => continue,
                None => return Err(SignalingError::Timeout(wait)),
            }
        }
    }

    /// Sends a close frame (after `leave`); errors do not matter any more.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
