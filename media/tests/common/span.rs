//! Several workers' cores joined by relay links, with their clients, on one virtual network
//! and clock (sans-IO, as `World` for one core): the harness of the relay tests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use classroom_media::relay::{self, SfuRelayEnd};
use classroom_media::{LocalEvent, MediaEvent, Output, PeerId, Sfu, SfuConfig};
use classroom_protocol::RoomName;
use str0m::Input;
use str0m::media::{Direction, MediaKind, Mid};
use str0m::net::{Protocol, Receive};

use super::{Client, Network, opus_frame, room, vp8_frame};

/// One worker's core, at its own address.
pub struct Worker {
    pub addr: SocketAddr,
    pub sfu: Sfu,
    pub timeout: Instant,
}

/// Several workers' cores and their clients; datagrams are delivered instantly, relay
/// batches whenever a core's output has been polled (as a worker's loop would).
pub struct Span {
    pub start: Instant,
    pub now: Instant,
    pub workers: Vec<Worker>,
    /// Each client with the index of its worker.
    pub clients: Vec<(Client, usize)>,
    /// Each worker's events, with its index.
    pub events: Vec<(usize, MediaEvent)>,
    pub offers: VecDeque<(usize, PeerId, String)>,
    pub locals: Vec<(PeerId, LocalEvent)>,
}

impl Span {
    pub fn new(workers: usize) -> Self {
        let now = Instant::now();
        let workers = (0..workers)
            .map(|index| {
                let addr = SocketAddr::from(([192, 0, 2, index as u8 + 1], 3478));
                Worker {
                    addr,
                    sfu: Sfu::new(now, SfuConfig::new(addr)).unwrap(),
                    timeout: now,
                }
            })
            .collect();
        Span {
            start: now,
            now,
            workers,
            clients: Vec::new(),
            events: Vec::new(),
            offers: VecDeque::new(),
            locals: Vec::new(),
        }
    }

    /// Joins workers `a` and `b` for the room (`home` is the room's home); returns nothing to
    /// keep: each core holds its end.
    pub fn link(&mut self, a: usize, b: usize, home: usize) {
        self.link_room(a, b, home, room());
    }

    /// [`Span::link`] for another room than the lesson's main room.
    pub fn link_room(&mut self, a: usize, b: usize, home: usize, room: RoomName) {
        let (end_a, end_b): (SfuRelayEnd, SfuRelayEnd) = relay::link(64);
        let now = self.now;
        self.workers[a]
            .sfu
            .add_relay(now, room.clone(), end_a, a == home);
        self.workers[b].sfu.add_relay(now, room, end_b, b == home);
        self.settle();
    }

    pub fn join(
        &mut self,
        worker: usize,
        peer: PeerId,
        lines: &[(MediaKind, Direction)],
        publish_allowed: bool,
    ) -> (usize, Vec<Mid>) {
        self.join_in(worker, peer, room(), lines, publish_allowed)
    }

    /// [`Span::join`] in another room than the lesson's main room.
    pub fn join_in(
        &mut self,
        worker: usize,
        peer: PeerId,
        room: RoomName,
        lines: &[(MediaKind, Direction)],
        publish_allowed: bool,
    ) -> (usize, Vec<Mid>) {
        let addr = SocketAddr::from(([10, 0, 0, self.clients.len() as u8 + 1], 5000));
        let (mut client, mids, offer, pending) = Client::new(self.now, peer, addr, lines);
        let answer = self.workers[worker]
            .sfu
            .add_peer_with(self.now, peer, room, &offer, publish_allowed)
            .unwrap();
        client.accept_answer(pending, &answer);
        self.clients.push((client, worker));
        let index = self.clients.len() - 1;
        for _ in 0..200 {
            self.advance(Duration::from_millis(10));
            if self.clients[index].0.is_connected() {
                return (index, mids);
            }
        }
        panic!("peer {peer} did not connect");
    }

    pub fn client(&mut self, index: usize) -> &mut Client {
        &mut self.clients[index].0
    }

    pub fn sfu(&mut self, worker: usize) -> &mut Sfu {
        &mut self.workers[worker].sfu
    }

    /// Relay items handed over and not yet taken in, over all workers.
    pub fn relay_in_flight(&self) -> bool {
        let (mut sent, mut received) = (0, 0);
        for worker in &self.workers {
            let stats = worker.sfu.relay_stats();
            sent += stats.items_sent;
            received += stats.items_received;
        }
        sent != received
    }

    /// Moves datagrams and relay batches until everything is quiet, without moving time.
    pub fn settle(&mut self) {
        loop {
            let mut in_flight: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
            for (client, _) in &mut self.clients {
                loop {
                    match client.rtc.poll_output().unwrap() {
                        str0m::Output::Transmit(t) => {
                            in_flight.push((t.source, t.destination, t.contents.into()))
                        }
                        str0m::Output::Event(e) => client.events.push(e),
                        str0m::Output::Timeout(t) => {
                            client.timeout = t;
                            break;
                        }
                    }
                }
            }
            for (index, worker) in self.workers.iter_mut().enumerate() {
                worker.sfu.handle_relays(self.now);
                loop {
                    match worker.sfu.poll_output() {
                        Output::Transmit {
                            destination, bytes, ..
                        } => in_flight.push((worker.addr, destination, bytes)),
                        Output::Event(event) => {
                            if let MediaEvent::OfferCreated { peer, offer } = &event {
                                self.offers.push_back((index, *peer, offer.clone()));
                            }
                            self.events.push((index, event));
                        }
                        Output::Local { subscriber, event } => {
                            self.locals.push((subscriber, event))
                        }
                        Output::Timeout(t) => {
                            worker.timeout = t;
                            break;
                        }
                    }
                }
            }
            if in_flight.is_empty() && !self.relay_in_flight() {
                return;
            }
            for (source, destination, bytes) in in_flight {
                if let Some(worker) = self.workers.iter_mut().find(|w| w.addr == destination) {
                    worker
                        .sfu
                        .handle_datagram(self.now, source, destination, &bytes);
                } else if let Some((client, _)) =
                    self.clients.iter_mut().find(|(c, _)| c.addr == destination)
                {
                    let input = Input::Receive(
                        self.now,
                        Receive {
                            proto: Protocol::Udp,
                            source,
                            destination,
                            contents: bytes.as_slice().try_into().unwrap(),
                        },
                    );
                    client.rtc.handle_input(input).unwrap();
                }
            }
        }
    }

    pub fn advance(&mut self, duration: Duration) {
        let target = self.now + duration;
        self.settle();
        while self.now < target {
            let next = self
                .clients
                .iter()
                .map(|(c, _)| c.timeout)
                .chain(self.workers.iter().map(|w| w.timeout))
                .chain([self.now + Duration::from_millis(5), target])
                .min()
                .unwrap_or(target)
                .max(self.now + Duration::from_millis(1));
            self.now = next.min(target);
            for (client, _) in &mut self.clients {
                if client.timeout <= self.now {
                    client.rtc.handle_input(Input::Timeout(self.now)).unwrap();
                }
            }
            for worker in &mut self.workers {
                if worker.timeout <= self.now {
                    worker.sfu.handle_timeout(self.now);
                }
            }
            self.settle();
        }
    }

    /// Answers every offer the cores made (new slots for a new publisher).
    pub fn answer_offers(&mut self) {
        while let Some((worker, peer, offer)) = self.offers.pop_front() {
            let now = self.now;
            let (client, _) = self
                .clients
                .iter_mut()
                .find(|(c, _)| c.peer == peer)
                .unwrap();
            let answer = client.accept_offer(&offer);
            self.workers[worker]
                .sfu
                .accept_answer(now, peer, &answer)
                .unwrap();
            self.settle();
        }
    }

    /// `index` sends `frames` audio frames 20 ms apart, numbered from `first`, and a video
    /// frame with every second one (a keyframe first, and whenever it was asked for one).
    pub fn publish(&mut self, index: usize, mids: &[Mid], first: u32, frames: u32) {
        for n in first..first + frames {
            let (now, start) = (self.now, self.start);
            let client = self.client(index);
            client.write(now, start, mids[0], MediaKind::Audio, &opus_frame(n));
            self.settle();
            if n % 2 == 0 {
                let frame = vp8_frame(n / 2, n == first);
                self.client(index)
                    .write(now, start, mids[1], MediaKind::Video, &frame);
            }
            self.advance(Duration::from_millis(20));
        }
        self.advance(Duration::from_millis(100));
    }
}

impl Network for Span {
    fn clock(&self) -> (Instant, Instant) {
        (self.now, self.start)
    }

    fn client(&mut self, index: usize) -> &mut Client {
        Span::client(self, index)
    }

    fn settle(&mut self) {
        Span::settle(self);
    }

    fn advance(&mut self, duration: Duration) {
        Span::advance(self, duration);
    }
}
