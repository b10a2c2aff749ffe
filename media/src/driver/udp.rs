//! A media worker's UDP socket, batched through quinn-udp: the datagrams one drain of the core
//! gives are queued and sent at its end, each run of equal-size datagrams to one destination
//! (a subscriber's burst) as one UDP GSO `sendmsg`; what waits in the socket is read with
//! `recvmmsg`, and a GRO buffer (several datagrams of one sender coalesced by the kernel) is
//! split at its stride. The kernel's share of the CPU per forwarded packet is mostly per
//! system call, and a forwarded packet used to be one `sendto` per copy.
//!
//! Where the kernel or the device cannot do GSO, quinn-udp says so (`max_gso_segments` of 1,
//! or it drops to 1 after the first `EIO`/`EINVAL`); then every datagram goes alone, as before.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tracing::debug;

/// Most bytes one GSO send carries: a UDP datagram's payload limit (65,507 over IPv4), less
/// room to spare; segments past it start the next send.
const MAX_GSO_BYTES: usize = 60_000;
/// Most bytes the kernel coalesces into one GRO buffer (its 64 KiB skb limit); every receive
/// slot must hold that much, or the rest of the coalesced datagrams would be cut off.
const GRO_SLOT: usize = 64 * 1024;
/// Queued bytes at which `queue` asks the caller to flush before queueing more, so that one
/// long drain (a keyframe to many subscribers) does not grow the buffer without bound.
const FLUSH_BYTES: usize = 256 * 1024;

/// The socket, its quinn-udp state, the datagrams queued for sending and the receive slots.
pub(super) struct UdpIo {
    socket: UdpSocket,
    state: UdpSocketState,
    /// Queued datagrams back to back, in the order the core gave them.
    out: Vec<u8>,
    /// Each queued datagram's destination and where it ends in `out`.
    queued: Vec<(SocketAddr, usize)>,
    /// Receive slots, `slot` bytes each.
    slots: Vec<u8>,
    slot: usize,
    meta: Vec<RecvMeta>,
    /// GSO sends made and datagrams they carried, for the worker's stats.
    pub(super) stats: UdpStats,
}

/// What the batching did, counted since the worker started.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct UdpStats {
    /// `sendmsg` calls (one per GSO run or lone datagram).
    pub(super) send_calls: u64,
    /// Datagrams those calls carried.
    pub(super) datagrams_sent: u64,
    /// Receive calls that returned datagrams, and the datagrams they returned.
    pub(super) recv_calls: u64,
    pub(super) datagrams_received: u64,
}

impl UdpIo {
    /// Takes a tokio socket (registered with the current runtime) and sets it up for quinn-udp
    /// (GRO on where the kernel has it, don't-fragment, packet info). `batch` is how many
    /// receive slots to read in one call.
    pub(super) fn new(socket: UdpSocket, batch: usize) -> io::Result<UdpIo> {
        let state = UdpSocketState::new((&socket).into())?;
        let batch = batch.clamp(1, quinn_udp::BATCH_SIZE);
        // Without GRO, one datagram per slot: WebRTC keeps them under ~1200 bytes.
        let slot = if state.gro_segments() > 1 {
            GRO_SLOT
        } else {
            super::RECV_BUFFER
        };
        Ok(UdpIo {
            socket,
            state,
            out: Vec::new(),
            queued: Vec::new(),
            // Zeroed pages are mapped lazily: a slot costs memory only as far as it is filled.
            slots: vec![0; slot * batch],
            slot,
            meta: vec![RecvMeta::default(); batch],
            stats: UdpStats::default(),
        })
    }

    /// Queues a datagram for the next `flush`. Returns whether enough is queued that the
    /// caller should flush now.
    pub(super) fn queue(&mut self, destination: SocketAddr, bytes: &[u8]) -> bool {
        self.out.extend_from_slice(bytes);
        self.queued.push((destination, self.out.len()));
        self.out.len() >= FLUSH_BYTES
    }

    /// Sends everything queued: each run of datagrams to one destination whose sizes are equal
    /// (the last may be shorter, as GSO allows) as one send, the rest one by one. A datagram
    /// the kernel refuses is lost, as with UDP; a full socket buffer is waited out.
    pub(super) async fn flush(&mut self) {
        let mut first = 0;
        while first < self.queued.len() {
            let (destination, start) = datagram_start(&self.queued, first);
            let last = run_end(&self.queued, first, self.state.max_gso_segments());
            let end = self.queued.get(last).map_or(start, |(_, end)| *end);
            let segments = last + 1 - first;
            let size = self.queued.get(first).map_or(0, |(_, end)| end - start);
            if segments > 1 {
                if let Err(error) = self.send(destination, start, end, Some(size)).await {
                    // GSO refused (quinn-udp has turned it off for the next runs): this run
                    // goes one datagram at a time instead.
                    debug!(%destination, %error, "GSO send failed; sending one by one");
                    for index in first..=last {
                        let (_, from) = datagram_start(&self.queued, index);
                        let to = self.queued.get(index).map_or(from, |(_, end)| *end);
                        if let Err(error) = self.send(destination, from, to, None).await {
                            debug!(%destination, %error, "media send failed");
                        }
                    }
                }
            } else if let Err(error) = self.send(destination, start, end, None).await {
                // A full buffer or an unreachable peer loses one datagram, as UDP does.
                debug!(%destination, %error, "media send failed");
            }
            first = last + 1;
        }
        self.out.clear();
        self.queued.clear();
    }

    /// Sends `out[start..end]` to `destination`, in `segment_size` segments when given,
    /// waiting while the socket's buffer is full.
    async fn send(
        &mut self,
        destination: SocketAddr,
        start: usize,
        end: usize,
        segment_size: Option<usize>,
    ) -> io::Result<()> {
        let contents = self.out.get(start..end).unwrap_or_default();
        let transmit = Transmit {
            destination,
            ecn: None,
            contents,
            segment_size,
            src_ip: None,
        };
        loop {
            let sent = self.socket.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.socket).into(), &transmit)
            });
            match sent {
                Ok(()) => {
                    self.stats.send_calls += 1;
                    self.stats.datagrams_sent += match segment_size {
                        Some(size) if size > 0 => contents.len().div_ceil(size) as u64,
                        _ => 1,
                    };
                    return Ok(());
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.socket.writable().await?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Waits until a datagram can be read.
    pub(super) async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Reads what waits, up to the receive slots' worth in one call, and hands each datagram
    /// to `each` with its source. Returns how many datagrams were read; `WouldBlock` when
    /// nothing was waiting after all.
    pub(super) fn try_recv(
        &mut self,
        mut each: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let slot = self.slot;
        let UdpIo {
            socket,
            state,
            slots,
            meta,
            ..
        } = &mut *self;
        // The slots' views live on the stack: this runs once per receive call, so a `Vec` here
        // was an allocation for every couple of datagrams.
        let batch = meta.len();
        let mut chunks = slots.chunks_mut(slot);
        let mut bufs: [IoSliceMut<'_>; quinn_udp::BATCH_SIZE] =
            std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()));
        let socket = &*socket;
        let filled = socket.try_io(Interest::READABLE, || {
            state.recv(socket.into(), &mut bufs[..batch], meta)
        })?;
        let mut datagrams = 0;
        for (index, received) in meta.iter().take(filled).enumerate() {
            let offset = index * slot;
            let Some(buffer) = slots.get(offset..offset + received.len.min(slot)) else {
                continue;
            };
            // A GRO buffer holds datagrams of one sender at `stride` bytes each, the last
            // possibly shorter; without GRO, stride is the length and this is one datagram.
            let stride = if received.stride == 0 {
                buffer.len().max(1)
            } else {
                received.stride
            };
            for datagram in buffer.chunks(stride) {
                each(received.addr, datagram);
                datagrams += 1;
            }
        }
        self.stats.recv_calls += 1;
        self.stats.datagrams_received += datagrams as u64;
        Ok(datagrams)
    }
}

/// The destination of queued datagram `index` (each: destination, end in the buffer) and
/// where its bytes start.
fn datagram_start(queued: &[(SocketAddr, usize)], index: usize) -> (SocketAddr, usize) {
    let start = match index.checked_sub(1) {
        Some(previous) => queued.get(previous).map_or(0, |(_, end)| *end),
        None => 0,
    };
    let destination = queued.get(index).map(|(to, _)| *to);
    (
        destination.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
        start,
    )
}

/// The index of the last datagram of the GSO run that starts at `first`: the datagrams after
/// it to the same destination and of its size (the last may be shorter, as GSO allows), at
/// most `max_segments` of them and `MAX_GSO_BYTES` in all.
fn run_end(queued: &[(SocketAddr, usize)], first: usize, max_segments: usize) -> usize {
    let (destination, start) = datagram_start(queued, first);
    let Some(&(_, first_end)) = queued.get(first) else {
        return first;
    };
    let size = first_end - start;
    let mut last = first;
    let mut previous_end = first_end;
    while last + 1 - first < max_segments.max(1) {
        let Some(&(to, end)) = queued.get(last + 1) else {
            break;
        };
        let len = end - previous_end;
        if to != destination || len > size || len == 0 || end - start > MAX_GSO_BYTES {
            break;
        }
        last += 1;
        previous_end = end;
        if len < size {
            // Only the last segment of a GSO send may be shorter.
            break;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// Queue entries (destination, end) for datagrams of these sizes.
    fn queue_of(datagrams: &[(u16, usize)]) -> Vec<(SocketAddr, usize)> {
        let mut end = 0;
        datagrams
            .iter()
            .map(|&(port, len)| {
                end += len;
                (addr(port), end)
            })
            .collect()
    }

    /// The runs `flush` would send: (first, last) index pairs.
    fn runs(queued: &[(SocketAddr, usize)], max_segments: usize) -> Vec<(usize, usize)> {
        let mut runs = Vec::new();
        let mut first = 0;
        while first < queued.len() {
            let last = run_end(queued, first, max_segments);
            runs.push((first, last));
            first = last + 1;
        }
        runs
    }

    #[test]
    fn a_run_is_equal_sizes_to_one_destination_the_last_maybe_shorter() {
        let queued = queue_of(&[
            (1, 1100),
            (1, 1100),
            (1, 900),  // shorter: ends the run
            (1, 1100), // a new run
            (2, 1100), // another destination
            (2, 1200), // longer: may not join
            (2, 1200),
        ]);
        assert_eq!(runs(&queued, 64), vec![(0, 2), (3, 3), (4, 4), (5, 6)]);
    }

    #[test]
    fn runs_keep_to_the_segment_and_byte_limits() {
        let queued = queue_of(&[(1, 1000); 10]);
        assert_eq!(runs(&queued, 4), vec![(0, 3), (4, 7), (8, 9)]);
        // Without GSO every datagram goes alone.
        assert_eq!(runs(&queued, 1).len(), 10);
        let big = queue_of(&[(1, 1400); 50]);
        let sizes: Vec<usize> = runs(&big, 64).iter().map(|(a, b)| b + 1 - a).collect();
        assert_eq!(sizes, vec![MAX_GSO_BYTES / 1400, 50 - MAX_GSO_BYTES / 1400]);
    }

    /// Real sockets on loopback: what `flush` sends as GSO runs arrives as the datagrams
    /// queued, each whole and in order, and `try_recv` reads a batch of them.
    #[tokio::test]
    async fn queued_datagrams_arrive_whole_and_in_order() {
        let bind = || std::net::UdpSocket::bind(addr(0)).expect("bind loopback");
        let sender = bind();
        sender.set_nonblocking(true).expect("nonblocking");
        let mut sender = UdpIo::new(UdpSocket::from_std(sender).expect("tokio"), 8).expect("io");
        let receiver = bind();
        receiver.set_nonblocking(true).expect("nonblocking");
        let target = receiver.local_addr().expect("address");
        let mut receiver =
            UdpIo::new(UdpSocket::from_std(receiver).expect("tokio"), 8).expect("io");

        let sizes = [1200, 1200, 1200, 700, 1200, 300, 1200, 1200];
        let sent: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(index, &len)| vec![index as u8; len])
            .collect();
        for datagram in &sent {
            assert!(!sender.queue(target, datagram));
        }
        sender.flush().await;
        assert_eq!(sender.stats.datagrams_sent, sent.len() as u64);
        if sender.state.max_gso_segments() > 1 {
            // 3 + 700 | 1200 + 300 | 1200 + 1200: three sends for eight datagrams.
            assert_eq!(sender.stats.send_calls, 3);
        }

        let mut received: Vec<Vec<u8>> = Vec::new();
        while received.len() < sent.len() {
            receiver.readable().await.expect("readable");
            match receiver.try_recv(|_, datagram| received.push(datagram.to_vec())) {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("receive failed: {error}"),
            }
        }
        assert_eq!(received, sent);
    }
}
