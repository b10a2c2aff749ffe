//! The node link's thin tokio layer: one task per link with its own UDP socket, woken by
//! datagrams, by its SFU end's batches and by its deadline; and the [`MediaHandle`] calls
//! that set a link up. The descriptions they exchange are opaque strings for signaling
//! between nodes to carry (the edge's offer, the home's answer).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use classroom_protocol::RoomName;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use super::{NodeLink, NodeLinkError, NodeLinkStats, NodeOutput, Role};
use crate::driver::{MediaHandle, RELAY_QUEUE};
use crate::relay;

/// An edge's link between its offer and the home's answer.
pub struct PendingNodeLink {
    link: NodeLink,
    socket: UdpSocket,
    wake: Arc<Notify>,
}

/// A running link. Dropping it closes the link (the other side ends it at once).
#[derive(Debug)]
pub struct NodeLinkHandle {
    local_addr: SocketAddr,
    stats: Arc<Mutex<NodeLinkStats>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl MediaHandle {
    /// At an edge node: opens a link for `room` on a socket bound to `bind` (its address is
    /// the link's candidate, so bind a specific IP the home can reach), joined to the room's
    /// worker; returns it and its offer for the home ([`MediaHandle::node_link_answer`]).
    pub async fn node_link_offer(
        &self,
        room: RoomName,
        bind: SocketAddr,
    ) -> Result<(PendingNodeLink, String), NodeLinkError> {
        let (link, socket, wake) = self.open_link(room, bind, Role::Edge).await?;
        let mut pending = PendingNodeLink { link, socket, wake };
        let offer = pending.link.description();
        Ok((pending, offer))
    }

    /// At the room's home node: answers an edge's offer with a link for `room` on a socket
    /// bound to `bind`, joined to the room's worker; returns it and the answer for the edge
    /// ([`PendingNodeLink::connect`]).
    pub async fn node_link_answer(
        &self,
        room: RoomName,
        bind: SocketAddr,
        offer: &str,
    ) -> Result<(NodeLinkHandle, String), NodeLinkError> {
        // Refused before anything is set up.
        super::Description::parse(offer)?;
        let (mut link, socket, wake) = self.open_link(room, bind, Role::Home).await?;
        let answer = link.description();
        link.connect(Instant::now(), offer)?;
        Ok((spawn(link, socket, wake)?, answer))
    }

    async fn open_link(
        &self,
        room: RoomName,
        bind: SocketAddr,
        role: Role,
    ) -> Result<(NodeLink, UdpSocket, Arc<Notify>), NodeLinkError> {
        let socket = UdpSocket::bind(bind).await?;
        let local = socket.local_addr()?;
        let (mut ours, theirs) = relay::link(RELAY_QUEUE);
        let wake = Arc::new(Notify::new());
        let worker = self
            .attach_relay(room, theirs, Arc::clone(&wake), role == Role::Home)
            .await
            .map_err(|_| NodeLinkError::Stopped)?;
        ours.wake_peer_with(worker);
        Ok((
            NodeLink::new(Instant::now(), role, local, ours),
            socket,
            wake,
        ))
    }
}

impl PendingNodeLink {
    /// Takes the home's answer and connects.
    pub fn connect(mut self, answer: &str) -> Result<NodeLinkHandle, NodeLinkError> {
        self.link.connect(Instant::now(), answer)?;
        spawn(self.link, self.socket, self.wake)
    }
}

impl NodeLinkHandle {
    /// The link's own socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Its counters, as of its last turn.
    pub fn stats(&self) -> NodeLinkStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the link has ended (closed by either side, or the other side is gone).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// The counters of the links of `links` still running, summed, and how many run (what a
    /// node reports of all its links).
    pub fn running_totals<'a>(
        links: impl IntoIterator<Item = &'a NodeLinkHandle>,
    ) -> (NodeLinkStats, usize) {
        let mut total = NodeLinkStats::default();
        let mut running = 0;
        for link in links.into_iter().filter(|l| !l.is_finished()) {
            running += 1;
            total += link.stats();
        }
        (total, running)
    }

    /// Stops the link without a word to the other side, as a node that dies would: the
    /// other side notices after [`super::LINK_TIMEOUT`]. Its own SFU ends the room's link.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for NodeLinkHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn spawn(
    link: NodeLink,
    socket: UdpSocket,
    wake: Arc<Notify>,
) -> Result<NodeLinkHandle, NodeLinkError> {
    let local_addr = socket.local_addr()?;
    let stats = Arc::new(Mutex::new(link.stats()));
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(link, socket, wake, stopped, Arc::clone(&stats)));
    Ok(NodeLinkHandle {
        local_addr,
        stats,
        stop: Some(stop),
        task,
    })
}

async fn run(
    mut link: NodeLink,
    socket: UdpSocket,
    wake: Arc<Notify>,
    mut stop: oneshot::Receiver<()>,
    stats: Arc<Mutex<NodeLinkStats>>,
) {
    let mut buf = vec![0; 2048];
    loop {
        let deadline = transmit(&mut link, &socket).await;
        *stats.lock().unwrap_or_else(PoisonError::into_inner) = link.stats();
        if link.is_closed() {
            debug!(local = %socket.local_addr().map(|a| a.to_string()).unwrap_or_default(), "node link ended");
            break;
        }
        tokio::select! {
            _ = &mut stop => break,
            received = socket.recv_from(&mut buf) => match received {
                Ok((len, source)) => link.handle_datagram(Instant::now(), source, &buf[..len]),
                // ICMP unreachable and the like: the other side's timeout decides.
                Err(error) => debug!(%error, "node link receive failed"),
            },
            () = wake.notified() => link.handle_relay(Instant::now()),
            () = tokio::time::sleep_until(deadline.into()) => link.handle_timeout(Instant::now()),
        }
    }
    // The data channel's close goes out before the end: the other side ends the link at
    // once instead of after its timeout.
    link.close();
    transmit(&mut link, &socket).await;
    *stats.lock().unwrap_or_else(PoisonError::into_inner) = link.stats();
    // Dropping the link drops its relay end: the SFU removes what came over it.
}

/// Sends what the link has to send; returns its next deadline.
async fn transmit(link: &mut NodeLink, socket: &UdpSocket) -> Instant {
    loop {
        match link.poll_output() {
            NodeOutput::Transmit { destination, bytes } => {
                if let Err(error) = socket.send_to(&bytes, destination).await {
                    debug!(%error, "node link send failed");
                }
            }
            NodeOutput::Timeout(at) => return at,
        }
    }
}
