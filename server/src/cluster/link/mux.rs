//! One node link's virtual connections over its one WebSocket: the table of connections, the
//! per-connection windows, and the driver that pumps frames between the table and the socket.
//!
//! Each direction of each connection has a window of [`WINDOW`] text frames in flight: the
//! sender takes a credit per text frame and waits when it has none; the receiver queues up to
//! the window and hands credits back as its consumer takes the frames. So the link's reader
//! never waits on one connection (a slow participant's queue is full only if its sender broke
//! the window, which closes that connection), and a slow participant stalls only itself, as
//! its own socket did before. The link's write queue is unbounded in type but bounded in fact:
//! it holds at most each connection's window of text plus a few control frames each.
//!
//! The link is alive while the socket is: pings every [`PING_EVERY`], and nothing heard for
//! [`IDLE`] ends it. When it ends, every connection's stream ends and every send fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

use super::frame::{ConnId, LinkFrame};

/// Text frames in flight per direction of one connection (a session's outbox is 64 deep;
/// signaling comes in bursts of a few messages).
pub const WINDOW: u32 = 32;
/// How often a side pings the other.
pub const PING_EVERY: Duration = Duration::from_secs(2);
/// Nothing heard for this long: the other node is gone (a partition, a frozen process).
pub const IDLE: Duration = Duration::from_secs(6);

/// Close codes a link sends of its own.
pub const CLOSE_WINDOW: u16 = 1008;
pub const CLOSE_LINK_FULL: u16 = 1013;
/// The far side of a connection went away without a close of its own.
pub const CLOSE_GONE: u16 = 1001;

/// What the socket gave the link.
#[derive(Debug)]
pub enum Wire {
    Frame(Vec<u8>),
    /// A ping, a pong or anything else that shows the other side is there.
    Alive,
    /// The socket closed or failed.
    End,
}

/// What the link gives the socket.
#[derive(Debug)]
pub enum WireOut {
    Frame(Vec<u8>),
    Ping,
    Close,
}

/// What a connection receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Text(String),
    Close {
        code: u16,
        reason: String,
    },
    /// The answer to a ping the connection's own side sent ([`ConnSender::ping`]): liveness
    /// is the link's business, so a connection's pings are answered on this side.
    Pong,
}

/// The connection is gone (closed by either side, or the link ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection over the node link is gone")]
pub struct Gone;

struct Slot {
    inbound: mpsc::Sender<Inbound>,
    credit: Arc<Semaphore>,
}

struct Shared {
    writes: mpsc::UnboundedSender<LinkFrame>,
    conns: Mutex<HashMap<ConnId, Slot>>,
    alive: AtomicBool,
    /// Connections one link may carry.
    max_conns: usize,
    next: AtomicU64,
}

impl Shared {
    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Slot>> {
        // Each update of the table is one statement: consistent under a panic elsewhere.
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, frame: LinkFrame) {
        // Fails only once the driver is gone, when nothing is to be sent any more.
        let _ = self.writes.send(frame);
    }

    /// Forgets `conn`; whether it was there.
    fn remove(&self, conn: ConnId) -> bool {
        let slot = self.conns().remove(&conn);
        match slot {
            Some(slot) => {
                slot.credit.close();
                true
            }
            None => false,
        }
    }

    fn end(&self) {
        self.alive.store(false, Ordering::Release);
        let slots: Vec<Slot> = self.conns().drain().map(|(_, slot)| slot).collect();
        for slot in slots {
            slot.credit.close();
        }
    }
}

/// One node link (either end); cheap to clone.
#[derive(Clone)]
pub struct Link {
    shared: Arc<Shared>,
}

/// A link's driver, to run once over its socket ([`Driver::run`]).
pub struct Driver {
    shared: Arc<Shared>,
    writes: mpsc::UnboundedReceiver<LinkFrame>,
}

impl Link {
    /// A link carrying at most `max_conns` connections, and its driver.
    pub fn new(max_conns: usize) -> (Link, Driver) {
        let (writes, queue) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            writes,
            conns: Mutex::new(HashMap::new()),
            alive: AtomicBool::new(true),
            max_conns,
            next: AtomicU64::new(1),
        });
        let driver = Driver {
            shared: shared.clone(),
            writes: queue,
        };
        (Link { shared }, driver)
    }

    pub fn is_alive(&self) -> bool {
        self.shared.alive.load(Ordering::Acquire)
    }

    /// Connections open on the link now.
    pub fn connections(&self) -> usize {
        self.shared.conns().len()
    }

    /// Sends a node-to-node message ([`super::node`]); dropped when the link is dead.
    pub fn send_node(&self, bytes: Vec<u8>) {
        if self.is_alive() {
            self.shared.write(LinkFrame::Node(bytes));
        }
    }

    /// The edge's side: opens a connection at the home; `None` when the link is dead or full.
    pub fn open(&self) -> Option<Conn> {
        let id = ConnId(self.shared.next.fetch_add(1, Ordering::Relaxed));
        let conn = self.register(id)?;
        self.shared.write(LinkFrame::Open(id));
        Some(conn)
    }

    /// The home's side: the edge opened connection `id`; `None` when the link is full (the
    /// edge hears so) or `id` is open already.
    pub fn accept(&self, id: ConnId) -> Option<Conn> {
        let conn = self.register(id);
        if conn.is_none() && !self.shared.conns().contains_key(&id) {
            self.shared.write(LinkFrame::Close {
                conn: id,
                code: CLOSE_LINK_FULL,
                reason: "link_full".into(),
            });
        }
        conn
    }

    fn register(&self, id: ConnId) -> Option<Conn> {
        if !self.is_alive() {
            return None;
        }
        // A pong of the connection's own and a close always find room beside a full window.
        let (inbound, receiver) = mpsc::channel(WINDOW as usize + 4);
        let credit = Arc::new(Semaphore::new(WINDOW as usize));
        {
            let mut conns = self.shared.conns();
            if conns.len() >= self.shared.max_conns || conns.contains_key(&id) {
                return None;
            }
            let slot = Slot {
                inbound: inbound.clone(),
                credit: credit.clone(),
            };
            conns.insert(id, slot);
        }
        let guard = Arc::new(Guard {
            id,
            shared: self.shared.clone(),
        });
        Some(Conn {
            sender: ConnSender {
                id,
                shared: self.shared.clone(),
                credit,
                loopback: inbound.downgrade(),
                _guard: guard.clone(),
            },
            receiver: ConnReceiver {
                id,
                shared: self.shared.clone(),
                inbound: receiver,
                taken: 0,
                _guard: guard,
            },
        })
    }

    /// A frame from the other node, to its connection. `Open` and `Node` are the driver's
    /// caller's (only a home accepts connections).
    fn dispatch(&self, frame: LinkFrame) {
        match frame {
            LinkFrame::Open(_) | LinkFrame::Node(_) => {}
            LinkFrame::Text(id, text) => {
                let sent = match self.shared.conns().get(&id) {
                    Some(slot) => slot.inbound.try_send(Inbound::Text(text)),
                    // Closed on this side while the frame was on its way.
                    None => return,
                };
                match sent {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        tracing::warn!(conn = %id, "cluster link: a connection broke its window; closing it");
                        if self.shared.remove(id) {
                            self.shared.write(LinkFrame::Close {
                                conn: id,
                                code: CLOSE_WINDOW,
                                reason: "window".into(),
                            });
                        }
                    }
                    // Its receiver is gone: its guard closes it.
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            LinkFrame::Close { conn, code, reason } => {
                let slot = self.shared.conns().remove(&conn);
                if let Some(slot) = slot {
                    slot.credit.close();
                    let _ = slot.inbound.try_send(Inbound::Close { code, reason });
                }
            }
            LinkFrame::Credit(id, n) => {
                if let Some(slot) = self.shared.conns().get(&id) {
                    // Never more than a window in hand, whatever the other side says.
                    let room = (WINDOW as usize).saturating_sub(slot.credit.available_permits());
                    slot.credit.add_permits((n as usize).min(room));
                }
            }
        }
    }
}

impl Driver {
    /// Pumps frames between the link and the socket (`incoming`, `outgoing`) until the socket
    /// ends, a frame does not parse, or the other side falls silent; then ends every
    /// connection. `on_open` gets each connection the other side opens (a home's), `on_node`
    /// each node-to-node message's bytes ([`super::node`]).
    pub async fn run<I, O>(
        self,
        incoming: I,
        outgoing: O,
        mut on_open: impl FnMut(Link, ConnId),
        mut on_node: impl FnMut(Vec<u8>),
    ) where
        I: Stream<Item = Wire> + Unpin,
        O: Sink<WireOut> + Unpin,
    {
        let Driver { shared, mut writes } = self;
        let link = Link {
            shared: shared.clone(),
        };
        let started = Instant::now();
        let heard = AtomicU64::new(0);
        let since_start = || started.elapsed().as_millis() as u64;
        let mut incoming = incoming;
        let reader = async {
            while let Some(wire) = incoming.next().await {
                heard.store(since_start(), Ordering::Relaxed);
                let bytes = match wire {
                    Wire::Frame(bytes) => bytes,
                    Wire::Alive => continue,
                    Wire::End => break,
                };
                match LinkFrame::decode(&bytes) {
                    Ok(LinkFrame::Open(id)) => on_open(link.clone(), id),
                    Ok(LinkFrame::Node(bytes)) => on_node(bytes),
                    Ok(frame) => link.dispatch(frame),
                    Err(e) => {
                        tracing::warn!(error = %e, "cluster link: a frame that does not parse; ending the link");
                        break;
                    }
                }
            }
        };
        let mut outgoing = outgoing;
        let writer = async {
            let mut ping = tokio::time::interval(PING_EVERY);
            loop {
                tokio::select! {
                    frame = writes.recv() => {
                        let Some(frame) = frame else { break };
                        if outgoing.send(WireOut::Frame(frame.encode())).await.is_err() {
                            break;
                        }
                    }
                    _ = ping.tick() => {
                        let silent = since_start().saturating_sub(heard.load(Ordering::Relaxed));
                        if silent > IDLE.as_millis() as u64 {
                            tracing::warn!("cluster link: the other node fell silent; ending the link");
                            break;
                        }
                        if outgoing.send(WireOut::Ping).await.is_err() {
                            break;
                        }
                    }
                }
            }
        };
        tokio::select! {
            () = reader => {}
            () = writer => {}
        }
        shared.end();
        let _ = outgoing.send(WireOut::Close).await;
    }
}

/// Closes a connection whose both halves are gone without a close, and forgets it.
struct Guard {
    id: ConnId,
    shared: Arc<Shared>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.shared.remove(self.id) {
            self.shared.write(LinkFrame::Close {
                conn: self.id,
                code: CLOSE_GONE,
                reason: String::new(),
            });
        }
    }
}

/// A connection over a link: its sending and receiving halves.
pub struct Conn {
    pub sender: ConnSender,
    pub receiver: ConnReceiver,
}

/// Sends a connection's frames to the other node.
pub struct ConnSender {
    id: ConnId,
    shared: Arc<Shared>,
    credit: Arc<Semaphore>,
    /// This connection's own inbound queue, for its pongs; weak, so that the queue ends when
    /// the link lets the connection go.
    loopback: mpsc::WeakSender<Inbound>,
    _guard: Arc<Guard>,
}

impl ConnSender {
    /// Sends a text frame, once the other side has room for it.
    pub async fn text(&self, text: String) -> Result<(), Gone> {
        let permit = self.credit.acquire().await.map_err(|_| Gone)?;
        permit.forget();
        if !self.shared.conns().contains_key(&self.id) {
            return Err(Gone);
        }
        self.shared.write(LinkFrame::Text(self.id, text));
        Ok(())
    }

    /// Closes the connection with `code` and `reason` (the other side gets them).
    pub fn close(&self, code: u16, reason: String) {
        if self.shared.remove(self.id) {
            self.shared.write(LinkFrame::Close {
                conn: self.id,
                code,
                reason,
            });
        }
    }

    /// A ping of the connection's own: answered here with a pong.
    pub fn ping(&self) {
        if let Some(queue) = self.loopback.upgrade() {
            let _ = queue.try_send(Inbound::Pong);
        }
    }
}

/// Receives a connection's frames from the other node.
pub struct ConnReceiver {
    id: ConnId,
    shared: Arc<Shared>,
    inbound: mpsc::Receiver<Inbound>,
    /// Text frames taken since the last credit sent back.
    taken: u32,
    _guard: Arc<Guard>,
}

impl ConnReceiver {
    /// The next frame; `None` once the connection or the link is gone.
    pub async fn recv(&mut self) -> Option<Inbound> {
        let inbound = self.inbound.recv().await?;
        if matches!(inbound, Inbound::Text(_)) {
            self.taken += 1;
            if self.taken >= WINDOW / 2 {
                if self.shared.conns().contains_key(&self.id) {
                    self.shared.write(LinkFrame::Credit(self.id, self.taken));
                }
                self.taken = 0;
            }
        }
        Some(inbound)
    }
}

#[cfg(test)]
#[path = "mux_tests.rs"]
mod tests;
