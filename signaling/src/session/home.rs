//! An edge node's session: the participant's room is on another node (its home), so this
//! node relays the participant's signaling there and the home's back, frame for frame
//! (`docs/scale-out.md`, step 1: one link per participant). The home's room decides
//! everything and applies its own per-connection limits; this side keeps the client's socket
//! alive (pings, the idle timeout), passes each side's close on, and closes the client with
//! `1012` (join again) when the home goes away or this node drains.

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
    /// The home closed the participant's connection with this code and reason.
    Close { code: u16, reason: String },
}

/// A participant's connection to the home node, as the server opened it: what goes in
/// `to_home` reaches the home's `/ws` (the participant's `join` first), what the home sends
/// comes out of `from_home`. Dropping `to_home` closes the connection.
#[derive(Debug)]
pub struct HomeLink {
    pub to_home: mpsc::Sender<HomeFrame>,
    pub from_home: mpsc::Receiver<HomeFrame>,
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
        to_home,
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
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            frame = from_home.recv() => match frame {
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
