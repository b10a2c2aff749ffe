//! An edge node's session: the participant's room is on another node (its home), so this
//! node relays the participant's signaling there and the home's back, frame for frame, over
//! the participant's virtual connection on the node pair's link (`docs/scale-out.md`). The
//! home's room decides everything and applies its own per-connection limits; this side keeps
//! the client's socket alive (pings, the idle timeout), passes each side's close on, and
//! closes the client with `1012` (join again) when the home goes away or this node drains.

use std::pin::Pin;
use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes};
use classroom_protocol::CloseReason;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{CLOSE_POLICY, close};
use crate::driver::Rooms;

/// A frame between an edge node and a room's home node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeFrame {
    /// A signaling message, as the client or the room wrote it.
    Text(String),
    /// One side closed the participant's connection with this code and reason.
    Close { code: u16, reason: String },
}

/// The participant's connection to the home node is gone (the link to it failed or closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection to the room's home node is gone")]
pub struct HomeGone;

/// A participant's connection to the home node, as the server opened it: what goes into
/// `to_home` reaches a session at the home as if the client had sent it (the participant's
/// `join` first), what the home sends comes out of `from_home`, which ends when the home or
/// the link goes. Each is bounded: a send waits while the home has not taken the frames
/// before it, and the server stops taking the home's frames while this side does not read
/// them. Dropping both closes the connection at the home.
pub struct HomeLink {
    pub to_home: Pin<Box<dyn futures_util::Sink<HomeFrame, Error = HomeGone> + Send>>,
    pub from_home: Pin<Box<dyn Stream<Item = HomeFrame> + Send>>,
}

impl std::fmt::Debug for HomeLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HomeLink")
    }
}

impl HomeLink {
    /// A link over two channels (`to_home`'s receiver and `from_home`'s sender are the
    /// home's side).
    pub fn channels(
        to_home: mpsc::Sender<HomeFrame>,
        from_home: mpsc::Receiver<HomeFrame>,
    ) -> HomeLink {
        let sink = futures_util::sink::unfold(to_home, |to_home, frame| async move {
            to_home.send(frame).await.map_err(|_| HomeGone)?;
            Ok::<_, HomeGone>(to_home)
        });
        let stream = futures_util::stream::unfold(from_home, |mut from_home| async move {
            from_home.recv().await.map(|frame| (frame, from_home))
        });
        HomeLink {
            to_home: Box::pin(sink),
            from_home: Box::pin(stream),
        }
    }
}

/// Relays until either side ends; `join` is the client's first message, already read.
pub(super) async fn relay<Tx, Rx, E>(
    mut sink: Tx,
    mut stream: Rx,
    link: HomeLink,
    join: Utf8Bytes,
    rooms: &Arc<Rooms>,
) where
    Tx: Sink<Message> + Unpin,
    Rx: Stream<Item = Result<Message, E>> + Unpin,
{
    let HomeLink {
        mut to_home,
        mut from_home,
    } = link;
    let reconnect = CloseReason::Draining;
    let mut draining = rooms.draining_signal();
    if *draining.borrow_and_update() {
        close(&mut sink, reconnect.code(), reconnect.as_str()).await;
        return;
    }
    if to_home
        .send(HomeFrame::Text(join.as_str().to_owned()))
        .await
        .is_err()
    {
        close(&mut sink, reconnect.code(), reconnect.as_str()).await;
        return;
    }
    let config = rooms.config().clone();
    let mut heartbeat = tokio::time::interval(config.heartbeat_interval);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            changed = draining.changed() => {
                // `Err`: the rooms are gone, as good as drained.
                if changed.is_err() || *draining.borrow_and_update() {
                    close(&mut sink, reconnect.code(), reconnect.as_str()).await;
                    break;
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    // Bounded: a client faster than the home waits here, unread.
                    if to_home.send(HomeFrame::Text(text.as_str().to_owned())).await.is_err() {
                        close(&mut sink, reconnect.code(), reconnect.as_str()).await;
                        break;
                    }
                }
                // Not part of the protocol; the home would refuse it too (and count it).
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {
                    last_heard = Instant::now();
                }
                // The client's close code goes to the home (a session there sees it as the
                // client's own close).
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| (f.code, f.reason.as_str().to_owned()));
                    let _ = to_home.send(HomeFrame::Close { code, reason }).await;
                    break;
                }
                Some(Err(_)) | None => break,
            },
            frame = from_home.next() => match frame {
                Some(HomeFrame::Text(text)) => {
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(HomeFrame::Close { code, reason }) => {
                    let _ = sink
                        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    break;
                }
                // The home node is gone (or unreachable): the client joins again, and the REST
                // join sends it to a live node.
                None => {
                    close(&mut sink, reconnect.code(), reconnect.as_str()).await;
                    break;
                }
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > config.idle_timeout {
                    close(&mut sink, CLOSE_POLICY, "idle").await;
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
}
