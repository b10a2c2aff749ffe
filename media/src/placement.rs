//! Which media worker each room and peer lives on: a sans-IO table the
//! [`crate::driver::MediaHandle`] consults to route a command, and each worker updates when one
//! of its peers is gone.
//!
//! A room has a *home* worker, chosen when its first peer (a browser, or an in-process
//! publisher or subscriber: the RTMP ingest, the recorder, the restream) arrives: the worker
//! with the fewest peers, then the fewest rooms, then the lowest index. Every later peer of the
//! room goes to its home, so the room's forwarding stays inside one thread. The room is
//! forgotten with its last peer; it may find another home when it starts again.
//!
//! Load is counted in peers for now. Packets per second and the thread's own CPU time are the
//! next measures; a per-worker peer limit that sends further students of a full room to
//! another worker (joined to the home by a relay) fits here: [`Placement::place`] is the one
//! place a peer gets its worker, and a room's peers are counted per room.

use std::fmt;

use classroom_protocol::RoomName;
use rustc_hash::FxHashMap;

use crate::PeerId;

/// The index of a media worker, 0 up to the number of workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkerId(pub usize);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What one worker carries, as placement counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Peers placed on it (browsers and in-process participants).
    pub peers: u64,
    /// Rooms whose home it is.
    pub rooms: u64,
}

#[derive(Debug)]
struct RoomHome {
    worker: WorkerId,
    peers: u64,
}

#[derive(Debug)]
struct PeerHome {
    worker: WorkerId,
    room: RoomName,
}

/// The peer already has a worker: signaling reused an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyPlaced(pub WorkerId);

/// Rooms and peers by worker.
#[derive(Debug)]
pub struct Placement {
    loads: Vec<WorkerLoad>,
    rooms: FxHashMap<RoomName, RoomHome>,
    peers: FxHashMap<PeerId, PeerHome>,
}

impl Placement {
    /// A table for `workers` workers (at least one).
    pub fn new(workers: usize) -> Self {
        Placement {
            loads: vec![WorkerLoad::default(); workers.max(1)],
            rooms: FxHashMap::default(),
            peers: FxHashMap::default(),
        }
    }

    pub fn workers(&self) -> usize {
        self.loads.len()
    }

    /// Gives `peer` of `room` its worker: the room's home, or for a room not yet placed the
    /// least-loaded worker, which becomes its home. Placed before the worker has the peer, so
    /// that peers of one room arriving at once all go to the same worker.
    pub fn place(&mut self, peer: PeerId, room: &RoomName) -> Result<WorkerId, AlreadyPlaced> {
        if let Some(home) = self.peers.get(&peer) {
            return Err(AlreadyPlaced(home.worker));
        }
        let worker = match self.rooms.get_mut(room) {
            Some(home) => {
                home.peers += 1;
                home.worker
            }
            None => {
                let worker = self.least_loaded();
                self.rooms
                    .insert(room.clone(), RoomHome { worker, peers: 1 });
                self.loads[worker.0].rooms += 1;
                worker
            }
        };
        self.loads[worker.0].peers += 1;
        self.peers.insert(
            peer,
            PeerHome {
                worker,
                room: room.clone(),
            },
        );
        Ok(worker)
    }

    /// The worker `peer` lives on, if it was placed and has not left.
    pub fn worker_of(&self, peer: PeerId) -> Option<WorkerId> {
        self.peers.get(&peer).map(|home| home.worker)
    }

    /// The home worker of `room`, while it has peers.
    pub fn home_of(&self, room: &RoomName) -> Option<WorkerId> {
        self.rooms.get(room).map(|home| home.worker)
    }

    /// `peer` is gone (removed, timed out, or never added); its room is forgotten with its
    /// last peer. False if it was not placed (a second report of the same departure).
    pub fn left(&mut self, peer: PeerId) -> bool {
        let Some(home) = self.peers.remove(&peer) else {
            return false;
        };
        let load = &mut self.loads[home.worker.0];
        load.peers = load.peers.saturating_sub(1);
        if let Some(room) = self.rooms.get_mut(&home.room) {
            room.peers = room.peers.saturating_sub(1);
            if room.peers == 0 {
                self.rooms.remove(&home.room);
                load.rooms = load.rooms.saturating_sub(1);
            }
        }
        true
    }

    /// What each worker carries, by index.
    pub fn loads(&self) -> &[WorkerLoad] {
        &self.loads
    }

    /// Fewest peers, then fewest rooms, then the lowest index (so one worker's server, and
    /// the first room of any server, behave exactly as before there were workers).
    fn least_loaded(&self) -> WorkerId {
        let index = self
            .loads
            .iter()
            .enumerate()
            .min_by_key(|(index, load)| (load.peers, load.rooms, *index))
            .map_or(0, |(index, _)| index);
        WorkerId(index)
    }
}

#[cfg(test)]
mod tests {
    use classroom_protocol::LessonId;

    use super::*;

    fn room(n: i64) -> RoomName {
        RoomName::for_lesson(LessonId(n))
    }

    #[test]
    fn a_room_stays_on_its_home_and_new_rooms_go_to_the_least_loaded_worker() {
        let mut placement = Placement::new(3);
        assert_eq!(placement.place(PeerId(1), &room(1)), Ok(WorkerId(0)));
        assert_eq!(placement.place(PeerId(2), &room(1)), Ok(WorkerId(0)));
        assert_eq!(placement.place(PeerId(3), &room(2)), Ok(WorkerId(1)));
        assert_eq!(placement.place(PeerId(4), &room(3)), Ok(WorkerId(2)));
        // Worker 1 and 2 carry one peer each, worker 0 two: the lowest of the least loaded.
        assert_eq!(placement.place(PeerId(5), &room(4)), Ok(WorkerId(1)));
        // However full its home, a room's peers join it there.
        for peer in 6..20 {
            assert_eq!(placement.place(PeerId(peer), &room(1)), Ok(WorkerId(0)));
        }
        assert_eq!(placement.place(PeerId(20), &room(5)), Ok(WorkerId(2)));
        assert_eq!(placement.home_of(&room(5)), Some(WorkerId(2)));
        assert_eq!(
            placement.loads(),
            &[
                WorkerLoad {
                    peers: 16,
                    rooms: 1
                },
                WorkerLoad { peers: 2, rooms: 2 },
                WorkerLoad { peers: 2, rooms: 2 },
            ]
        );
    }

    #[test]
    fn a_room_is_forgotten_with_its_last_peer_and_may_move_when_it_starts_again() {
        let mut placement = Placement::new(2);
        placement.place(PeerId(1), &room(1)).expect("placed");
        placement.place(PeerId(2), &room(1)).expect("placed");
        placement.place(PeerId(3), &room(2)).expect("placed");
        assert!(placement.left(PeerId(1)));
        assert!(!placement.left(PeerId(1)), "a departure counts once");
        assert_eq!(placement.home_of(&room(1)), Some(WorkerId(0)));
        assert!(placement.left(PeerId(2)));
        assert_eq!(placement.home_of(&room(1)), None);
        assert_eq!(placement.worker_of(PeerId(2)), None);
        assert_eq!(placement.loads()[0], WorkerLoad::default());
        // Room 2 keeps worker 1 busy: room 1 starts again on the idle worker 0; then both
        // carry one peer and one room, and room 3 goes to the lower index.
        placement.place(PeerId(4), &room(1)).expect("placed");
        assert_eq!(placement.worker_of(PeerId(4)), Some(WorkerId(0)));
        assert_eq!(placement.place(PeerId(5), &room(3)), Ok(WorkerId(0)));
    }

    #[test]
    fn a_peer_is_placed_once() {
        let mut placement = Placement::new(2);
        placement.place(PeerId(1), &room(1)).expect("placed");
        assert_eq!(
            placement.place(PeerId(1), &room(2)),
            Err(AlreadyPlaced(WorkerId(0)))
        );
        assert_eq!(placement.home_of(&room(2)), None, "nothing placed for it");
        assert_eq!(placement.loads()[0].peers, 1);
    }

    #[test]
    fn one_worker_takes_everything() {
        let mut placement = Placement::new(1);
        for n in 0..10 {
            assert_eq!(placement.place(PeerId(n as u64), &room(n)), Ok(WorkerId(0)));
        }
        // Zero workers asked for is one.
        assert_eq!(Placement::new(0).workers(), 1);
    }
}
