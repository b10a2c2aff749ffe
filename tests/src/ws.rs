//! A signaling client for tests: a real WebSocket to `/ws`, speaking the protocol's types.

use std::time::Duration;

use classroom_protocol::ErrorCode;
use classroom_protocol::signal::{ClientEnvelope, ClientMessage, ParticipantId, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for an expected message.
pub const WAIT: Duration = Duration::from_secs(5);

pub struct Ws {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Set after `joined`.
    pub me: Option<ParticipantId>,
}

impl Ws {
    /// Opens a WebSocket to the server at `base` (`http://host:port`).
    pub async fn connect(base: &str) -> Ws {
        let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the WebSocket opens");
        Ws {
            socket,
            next_id: 1,
            me: None,
        }
    }

    /// Connects and joins with `token`, returning the `joined` snapshot.
    pub async fn join(base: &str, token: &str) -> (Ws, ServerMessage) {
        let mut ws = Ws::connect(base).await;
        ws.send(ClientMessage::join(token.to_string())).await;
        let joined = ws
            .recv_where(|m| matches!(m, ServerMessage::Joined { .. }))
            .await;
        if let ServerMessage::Joined { you, .. } = &joined {
            ws.me = Some(you.id);
        }
        (ws, joined)
    }

    /// Sends a message with a fresh request id, and returns the id.
    pub async fn send(&mut self, message: ClientMessage) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let envelope = ClientEnvelope {
            v: 1,
            id: Some(id),
            message,
        };
        let text = serde_json::to_string(&envelope).expect("serializes");
        self.send_text(&text).await;
        id
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("sent");
    }

    /// The next protocol message, or `None` when the server closed the connection.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a message in time");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Some(
                        serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("bad server message {text}: {e}")),
                    );
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(_))) => panic!("the server sent binary"),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next protocol message if one comes within `wait`: `Ok(None)` when the server
    /// closed the connection, `Err(())` when nothing came in time.
    #[allow(clippy::result_unit_err)]
    pub async fn recv_within(&mut self, wait: Duration) -> Result<Option<ServerMessage>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let Ok(frame) = tokio::time::timeout_at(deadline, self.socket.next()).await else {
                return Err(());
            };
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Ok(Some(
                        serde_json::from_str(&text)
                            .unwrap_or_else(|e| panic!("bad server message {text}: {e}")),
                    ));
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(_))) => panic!("the server sent binary"),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(None),
            }
        }
    }

    /// Skips messages until one matches.
    pub async fn recv_where(&mut self, want: impl Fn(&ServerMessage) -> bool) -> ServerMessage {
        loop {
            match self.recv().await {
                Some(message) if want(&message) => return message,
                Some(_) => continue,
                None => panic!("the connection closed before the expected message"),
            }
        }
    }

    /// The reply (ok or error) to request `id`.
    pub async fn reply(&mut self, id: u64) -> ServerMessage {
        self.recv_where(|m| match m {
            ServerMessage::Ok { id: got } => *got == id,
            ServerMessage::Error { id: got, .. } => *got == Some(id),
            _ => false,
        })
        .await
    }

    /// Sends and asserts an `ok`.
    pub async fn ok(&mut self, message: ClientMessage) {
        let id = self.send(message).await;
        let reply = self.reply(id).await;
        assert_eq!(reply, ServerMessage::Ok { id }, "expected ok");
    }

    /// Sends and returns the error code (panics on ok).
    pub async fn refused(&mut self, message: ClientMessage) -> ErrorCode {
        let id = self.send(message).await;
        match self.reply(id).await {
            ServerMessage::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Sends a binary frame (not part of the protocol: for tests of hostile clients);
    /// `false` when the connection is gone.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> bool {
        self.socket.send(Message::binary(bytes)).await.is_ok()
    }

    /// Skips messages until the server closes the connection; returns them and the close
    /// frame's code and reason (`None` when it closed without one).
    pub async fn close_frame(&mut self) -> (Vec<ServerMessage>, Option<(u16, String)>) {
        let mut skipped = Vec::new();
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("a message or the close in time");
            match frame {
                Some(Ok(Message::Text(text))) => skipped.push(
                    serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("bad server message {text}: {e}")),
                ),
                Some(Ok(Message::Close(frame))) => {
                    return (
                        skipped,
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                    );
                }
                Some(Err(_)) | None => return (skipped, None),
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Waits until the server closes the connection, skipping messages.
    pub async fn closed(&mut self) {
        while self.recv().await.is_some() {}
    }

    /// Waits (up to `wait`) until the server closes the connection, skipping messages, and
    /// returns the code of its close frame (`None` when it ended without one).
    pub async fn close_code_within(&mut self, wait: Duration) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("the server did not close the connection within {wait:?}")
                });
            match frame {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// Drops the TCP connection without a close handshake (a network drop).
    pub fn drop_connection(self) {
        drop(self.socket);
    }
}
