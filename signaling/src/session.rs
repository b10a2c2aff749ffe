//! One WebSocket session: reads the `join`, then relays the client's messages to its room and
//! the room's messages to the client. It enforces the per-connection limits (message size,
//! message rate, join deadline, heartbeats) before anything reaches the room.
//!
//! The session runs over any [`Sink`] and [`Stream`] of WebSocket [`Message`]s ([`serve`]);
//! [`run_session`] is the thin adapter for axum's socket. Its clock is tokio's, so the tests
//! below drive it through channels with time paused.

use std::sync::{Arc, OnceLock};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use classroom_protocol::signal::{ClientEnvelope, ClientMessage, ServerMessage};
use classroom_protocol::{AccessDenied, CloseReason, ErrorCode, PROTOCOL_VERSION};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::driver::{
    AdmitError, DocumentCheck, Leg, Outbound, Outbox, RoomCommand, Rooms, TokenVerifier, encode,
};
use crate::limits::{MessageGate, Verdict};

mod home;
mod place;

pub use home::{HomeFrame, HomeGone, HomeLink};

/// Close codes (4000-4999 are the application's: `CloseReason`, `AccessDenied`).
const CLOSE_POLICY: u16 = 1008;
/// The database could not be asked whether the user may enter: try again.
const CLOSE_TRY_AGAIN: u16 = 1013;
/// How long a closed flood may go on being read before the socket is dropped.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// A client message that could not be used, as the error to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The request id, when the message was JSON with a numeric `id`.
    pub id: Option<u64>,
    /// The protocol error code (`malformed_json`, `unknown_type`, …; see docs/protocol.md).
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub message: String,
}

/// Why a join token was refused ([`TokenVerifier::verify`]); the message is the client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidToken {
    /// Not a token of ours: unreadable, or its signature is wrong.
    #[error("the token is malformed or its signature is wrong; sign in again")]
    Malformed,
    #[error("the token has expired; sign in again")]
    Expired,
    /// A token of ours, but not a join token.
    #[error("this kind of token is not accepted here")]
    WrongAudience,
}

fn refuse(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Refused {
    Refused {
        id,
        code,
        message: message.into(),
    }
}

/// Parses one client text message into an envelope exactly as a session does, or says what
/// is wrong with it: the size limit (`max_bytes`), JSON, the protocol version and the message
/// type are checked in that order. Never panics, whatever the input; fuzzed by
/// `fuzz/fuzz_targets/signaling_message.rs`.
///
/// A message whose `type` is not one of [`client_message_types`] is `unknown_type`; one of a
/// known type that does not fit it (a field missing or of the wrong kind, even a nested value
/// of an unknown variant) is `invalid_message`. The type decides, not serde's error text.
pub fn parse_client_text(text: &str, max_bytes: usize) -> Result<ClientEnvelope, Refused> {
    if text.len() > max_bytes {
        return Err(refuse(
            None,
            ErrorCode::MessageTooLarge,
            format!("messages are limited to {max_bytes} bytes"),
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        refuse(
            None,
            ErrorCode::MalformedJson,
            format!("not valid JSON: {e}"),
        )
    })?;
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    match value.get("v").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(refuse(
                id,
                ErrorCode::UnsupportedVersion,
                format!("protocol version {v} is not supported; use {PROTOCOL_VERSION}"),
            ));
        }
        None => {
            return Err(refuse(
                id,
                ErrorCode::InvalidMessage,
                "every message needs \"v\": 1",
            ));
        }
    }
    let kind = value
        .get("type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    if !client_message_types().contains(&kind) {
        return Err(refuse(
            id,
            ErrorCode::UnknownType,
            format!("unknown message type `{kind}`; see docs/protocol.md"),
        ));
    }
    let kind = kind.to_string();
    serde_json::from_value(value)
        .map_err(|e| refuse(id, ErrorCode::InvalidMessage, format!("`{kind}`: {e}")))
}

/// The `type`s of [`ClientMessage`], as its `Deserialize` knows them (so a new message needs
/// no second list): asked once by deserializing a type no message has, through an error type
/// that keeps the variant names serde reports as expected.
pub fn client_message_types() -> &'static [&'static str] {
    static TYPES: OnceLock<&'static [&'static str]> = OnceLock::new();
    TYPES.get_or_init(|| {
        use serde::Deserialize;
        use serde::de::value::MapDeserializer;
        // No message type contains a NUL; serde asks for the tag before any other field.
        let probe = MapDeserializer::<_, TypeProbe>::new(std::iter::once(("type", "\0")));
        match ClientMessage::deserialize(probe) {
            Err(TypeProbe(Some(expected))) => expected,
            _ => &[],
        }
    })
}

/// The error of [`client_message_types`]'s probe: the expected variants of an unknown one.
#[derive(Debug)]
struct TypeProbe(Option<&'static [&'static str]>);

impl std::fmt::Display for TypeProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probing the client message types")
    }
}

impl std::error::Error for TypeProbe {}

impl serde::de::Error for TypeProbe {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        TypeProbe(None)
    }

    fn unknown_variant(_: &str, expected: &'static [&'static str]) -> Self {
        TypeProbe(Some(expected))
    }
}

fn error_text(refused: Refused) -> Utf8Bytes {
    encode(&ServerMessage::Error {
        id: refused.id,
        code: refused.code,
        message: refused.message,
        grant: None,
    })
}

async fn close(socket: &mut (impl Sink<Message> + Unpin), code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

/// Runs one axum WebSocket session to its end (see [`serve`]).
pub async fn run_session(socket: WebSocket, rooms: Arc<Rooms>, verifier: Arc<dyn TokenVerifier>) {
    let (sink, stream) = socket.split();
    serve(sink, stream, rooms, verifier).await;
}

/// Runs one session to its end: `stream` is what the client sends, `sink` what it receives.
/// It ends when the client goes (its stream ends or fails), the room closes it, or a limit
/// does; a send that fails ends it too.
pub async fn serve<Tx, Rx, E>(
    sink: Tx,
    stream: Rx,
    rooms: Arc<Rooms>,
    verifier: Arc<dyn TokenVerifier>,
) where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
{
    serve_from(sink, stream, rooms, verifier, None).await;
}

/// [`serve`] for a participant who came over an edge node's signaling link (`edge`, as this
/// node numbers it): their media peers are to live in that edge's SFU.
pub async fn serve_relayed<Tx, Rx, E>(
    sink: Tx,
    stream: Rx,
    rooms: Arc<Rooms>,
    verifier: Arc<dyn TokenVerifier>,
    edge: crate::media::EdgeId,
) where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
{
    serve_from(sink, stream, rooms, verifier, Some(edge)).await;
}

async fn serve_from<Tx, Rx, E>(
    mut sink: Tx,
    mut stream: Rx,
    rooms: Arc<Rooms>,
    verifier: Arc<dyn TokenVerifier>,
    edge: Option<crate::media::EdgeId>,
) where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
{
    let opened_at = Instant::now();
    let config = rooms.config().clone();
    let mut counted = rooms.stats_handle().connection_opened();

    // 1. The join, within the deadline.
    let first = tokio::time::timeout(config.join_timeout, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    })
    .await;
    let text = match first {
        Ok(Some(text)) => text,
        Ok(None) => return,
        Err(_) => {
            let _ = sink
                .send(Message::Text(error_text(refuse(
                    None,
                    ErrorCode::JoinTimeout,
                    "send `join` first, within 10 seconds",
                ))))
                .await;
            close(&mut sink, CLOSE_POLICY, "join timeout").await;
            return;
        }
    };
    let (join_id, token, go_live) = match parse_client_text(&text, config.max_message_bytes) {
        Ok(ClientEnvelope {
            id,
            message: ClientMessage::Join { token, go_live },
            ..
        }) => (id, token, go_live),
        Ok(envelope) => {
            let _ = sink
                .send(Message::Text(error_text(refuse(
                    envelope.id,
                    ErrorCode::NotJoined,
                    "the first message must be `join`",
                ))))
                .await;
            close(&mut sink, CLOSE_POLICY, "join first").await;
            return;
        }
        Err(refused) => {
            let _ = sink.send(Message::Text(error_text(refused))).await;
            close(&mut sink, CLOSE_POLICY, "bad join").await;
            return;
        }
    };
    let claims = match verifier.verify(&token) {
        Ok(claims) => claims,
        Err(why) => {
            let _ = sink
                .send(Message::Text(error_text(refuse(
                    join_id,
                    ErrorCode::InvalidToken,
                    why.to_string(),
                ))))
                .await;
            close(&mut sink, CLOSE_POLICY, "invalid token").await;
            return;
        }
    };
    // The token may predate a change: a disabled account, a removal, a cancelled lesson.
    let changes_before = rooms.access_changes_seen();
    if let Err(refused) = verifier.admit(&claims).await {
        if refused == AdmitError::ElsewhereNode
            && let Some(link) = verifier.home_link(&claims).await
        {
            home::relay(sink, stream, link, text, &rooms).await;
            return;
        }
        let (code, close_code) = match refused {
            AdmitError::Denied(why) => (why.error_code(), why.close_code()),
            AdmitError::Unavailable => (ErrorCode::Unavailable, CLOSE_TRY_AGAIN),
            AdmitError::ElsewhereNode => (ErrorCode::WrongNode, CLOSE_TRY_AGAIN),
        };
        let error = refuse(join_id, code, refused.to_string());
        let _ = sink.send(Message::Text(error_text(error))).await;
        close(&mut sink, close_code, code.as_str()).await;
        return;
    }
    if rooms.is_draining() {
        let error = refuse(
            join_id,
            ErrorCode::ServerDraining,
            "this server is restarting; join again in a moment".to_string(),
        );
        let _ = sink.send(Message::Text(error_text(error))).await;
        close(&mut sink, CloseReason::Draining.code(), "server_draining").await;
        return;
    }
    let user = claims.user();
    let recheck = claims.clone();
    let room = rooms.room_for(&claims);
    let connection = rooms.next_connection();
    let (sender, mut outbound) = mpsc::channel(config.outbox_capacity);
    let breakout_outbox = sender.downgrade();
    let outbox = Outbox::new(sender, Leg::HOME);
    let (reply, joined) = oneshot::channel();
    let join = RoomCommand::Join {
        id: join_id,
        claims: Box::new(claims),
        connection,
        opened_at: opened_at.into_std(),
        edge,
        go_live,
        outbox,
        reply,
    };
    let participant = match (room.is_ended(), room.commands.send(join).await) {
        (false, Ok(())) => match joined.await {
            Ok(Ok(participant)) => {
                counted.joined();
                participant
            }
            Ok(Err(e)) => {
                let _ = sink
                    .send(Message::Text(error_text(refuse(
                        join_id,
                        e.code(),
                        e.to_string(),
                    ))))
                    .await;
                match e.denied() {
                    Some(why) => close(&mut sink, why.close_code(), why.code()).await,
                    None => close(&mut sink, CLOSE_POLICY, "join refused").await,
                }
                return;
            }
            Err(_) => return,
        },
        _ => {
            let ended = AccessDenied::LessonEnded;
            let _ = sink
                .send(Message::Text(error_text(refuse(
                    join_id,
                    ended.error_code(),
                    ended.message(),
                ))))
                .await;
            close(&mut sink, ended.close_code(), ended.code()).await;
            return;
        }
    };
    // A change that reached the rooms between our check and our entry missed us: check again
    // (the room closes us out with the reason, as it would have).
    if rooms.access_changes_seen() != changes_before
        && let (Err(AdmitError::Denied(why)), Some(user)) = (verifier.admit(&recheck).await, user)
    {
        let _ = room.commands.send(RoomCommand::Revoke { user, why }).await;
    }
    let course = recheck.course;
    // Kept for the breakout rooms the main room may move the session to.
    let mut place = place::Place::new(
        room,
        participant,
        connection,
        recheck,
        breakout_outbox,
        edge,
    );
    // 2. Relay until either side ends.
    let mut gate = MessageGate::new(
        config.messages_per_second,
        config.message_burst,
        Instant::now().into_std(),
    );
    let mut heartbeat = tokio::time::interval(config.heartbeat_interval);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    let mut closed_by_room = false;
    loop {
        tokio::select! {
            incoming = stream.next() => {
                // Text and binary frames alike go through the rate gate: binary ones used to
                // skip it and earn an error reply each (5,000 replies to a flood).
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => Some(text),
                    Some(Ok(Message::Binary(_))) => None,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        last_heard = Instant::now();
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                };
                let now = Instant::now();
                last_heard = now;
                match gate.admit(now.into_std()) {
                    Verdict::Pass => {}
                    Verdict::Refuse { tell } => {
                        counted.stats().rate_limited();
                        if tell {
                            let _ = sink.send(Message::Text(error_text(refuse(None, ErrorCode::RateLimited, "too many messages; slow down")))).await;
                        }
                        continue;
                    }
                    Verdict::Close => {
                        counted.stats().rate_limited();
                        tracing::info!(%participant, "closing a connection that kept flooding after it was refused");
                        close(&mut sink, CLOSE_POLICY, "rate limit").await;
                        // Read on until the client's close (briefly): a socket closed with
                        // unread input is reset, and the reset can discard the replies and
                        // the close frame still on their way.
                        let _ = tokio::time::timeout(CLOSE_LINGER, async {
                            while let Some(Ok(message)) = stream.next().await {
                                if matches!(message, Message::Close(_)) {
                                    break;
                                }
                            }
                        })
                        .await;
                        break;
                    }
                }
                let Some(text) = text else {
                    counted.stats().message();
                    counted.stats().message_refused();
                    let _ = sink.send(Message::Text(error_text(refuse(None, ErrorCode::InvalidMessage, "binary messages are not part of the protocol")))).await;
                    continue;
                };
                counted.stats().message();
                match parse_client_text(&text, config.max_message_bytes) {
                    Ok(mut envelope) => {
                        // A document opened to the class is checked against the database: one
                        // of this course's, ready, with the pages it really has.
                        if let ClientMessage::OpenDocument { document, pages, .. } = &mut envelope.message {
                            let refusal = match verifier.document_pages(course, *document).await {
                                Ok(DocumentCheck::Pages(real)) => {
                                    *pages = real;
                                    None
                                }
                                Ok(DocumentCheck::Unchecked) => None,
                                Ok(DocumentCheck::Unknown) => Some((ErrorCode::InvalidMessage, "no document of this course with this id is ready to show")),
                                Err(_) => Some((ErrorCode::Unavailable, "the server cannot check the document right now; try again in a moment")),
                            };
                            if let Some((code, why)) = refusal {
                                counted.stats().message_refused();
                                let _ = sink.send(Message::Text(error_text(refuse(envelope.id, code, why)))).await;
                                continue;
                            }
                        }
                        let (room, participant) = place.route(&envelope.message);
                        let command = RoomCommand::Message { participant, connection, id: envelope.id, message: envelope.message };
                        if room.commands.send(command).await.is_err() {
                            break;
                        }
                    }
                    Err(refused) => {
                        counted.stats().message_refused();
                        let _ = sink.send(Message::Text(error_text(refused))).await;
                    }
                }
            }
            out = outbound.recv() => match out {
                // What a breakout room the session has left sent before it heard of the
                // departure: not for the room the client is in now (its ids, its tracks).
                Some((leg, _)) if !place.hears(leg) => {}
                Some((_, Outbound::Text(text))) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Some((_, Outbound::Transfer(to))) => {
                    if let Err(e) = place.transfer(&rooms, to).await {
                        tracing::info!(%participant, "a move to a breakout room failed: {e}");
                        let error = refuse(None, ErrorCode::BreakoutState, e.to_string());
                        if sink.send(Message::Text(error_text(error))).await.is_err() {
                            break;
                        }
                    }
                }
                Some((_, Outbound::Voice(on))) => place.voice(on).await,
                Some((_, Outbound::Close(why))) => {
                    closed_by_room = true;
                    close(&mut sink, why.code(), why.as_str()).await;
                    break;
                }
                None => {
                    closed_by_room = true;
                    let why = CloseReason::Done;
                    close(&mut sink, why.code(), why.as_str()).await;
                    break;
                }
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > config.idle_timeout {
                    tracing::info!(%participant, "no sign of life; closing the connection");
                    close(&mut sink, CLOSE_POLICY, "idle").await;
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    place.end(closed_by_room).await;
}

#[cfg(test)]
mod tests;
