//! Which media worker each room and peer lives on: a sans-IO table the
//! [`crate::driver::MediaHandle`] consults to route a command, and each worker updates when one
//! of its peers is gone.
//!
//! A room has a *home* worker, chosen when its first peer (a browser, or an in-process
//! publisher or subscriber: the RTMP ingest, the recorder, the restream) arrives: the worker
//! with the fewest peers, then the fewest rooms, then the lowest index. Later peers of the
//! room go to its home, so the room's forwarding stays inside one thread, until the home
//! carries the per-worker peer limit: then a peer goes to another worker that already carries
//! the room and has room, else to the least-loaded other worker. A room on several workers is
//! joined by relay links ([`crate::relay`]), one between each two of its workers:
//! [`Placed::link_to`] names the workers a peer's worker must be linked to when the peer is the
//! room's first there. The room is forgotten with its last peer; it may find another home when
//! it starts again. Without a limit (the default) a room never leaves its home.
//!
//! Load is counted in peers for now. Packets per second and the thread's own CPU time are the
//! next measures: [`Placement::place`] is the one place a peer gets its worker.

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
    /// The room's peers on each worker, by index.
    on: Vec<u64>,
}

/// Where a new peer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub worker: WorkerId,
    /// The room's home worker.
    pub home: WorkerId,
    /// The peer is the room's first on `worker` and the room is on these other workers too:
    /// `worker` needs a relay link to each of them for this room.
    pub link_to: Vec<WorkerId>,
}

/// A peer is gone from its worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    pub worker: WorkerId,
    pub room: RoomName,
    /// It was the room's last peer on its worker: the worker's relay links of the room end.
    pub room_left_worker: bool,
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
    /// Peers a worker takes before a room's further peers go elsewhere; `None`: no limit.
    peer_limit: Option<u64>,
    rooms: FxHashMap<RoomName, RoomHome>,
    peers: FxHashMap<PeerId, PeerHome>,
}

impl Placement {
    /// A table for `workers` workers (at least one).
    pub fn new(workers: usize) -> Self {
        Self::with_limit(workers, None)
    }

    /// A table for `workers` workers where a room's home takes at most `peer_limit` peers
    /// (of all rooms) before the room's further peers go to other workers. Soft: when every
    /// worker is full, a peer still goes to the least loaded one.
    pub fn with_limit(workers: usize, peer_limit: Option<u64>) -> Self {
        Placement {
            peer_limit: peer_limit.map(|limit| limit.max(1)),
            loads: vec![WorkerLoad::default(); workers.max(1)],
            rooms: FxHashMap::default(),
            peers: FxHashMap::default(),
        }
    }

    pub fn workers(&self) -> usize {
        self.loads.len()
    }

    /// Gives `peer` of `room` its worker: the room's home, or for a room not yet placed the
    /// least-loaded worker, which becomes its home; when the home is full, another worker of
    /// the room with room, else the least-loaded other worker. Placed before the worker has the
    /// peer, so that peers of one room arriving at once are counted at once.
    pub fn place(&mut self, peer: PeerId, room: &RoomName) -> Result<Placed, AlreadyPlaced> {
        if let Some(home) = self.peers.get(&peer) {
            return Err(AlreadyPlaced(home.worker));
        }
        let workers = self.loads.len();
        let least_loaded = self.least_loaded();
        let placed = match self.rooms.get_mut(room) {
            Some(home) => {
                let full = |load: &WorkerLoad| self.peer_limit.is_some_and(|l| load.peers >= l);
                let worker = if !full(&self.loads[home.worker.0]) {
                    home.worker
                } else {
                    // A worker that carries the room already (no new link), else the least
                    // loaded (which may be the home again when all are full).
                    let joined = (0..workers)
                        .filter(|&w| home.on[w] > 0 && !full(&self.loads[w]))
                        .min_by_key(|&w| (self.loads[w].peers, w));
                    match joined {
                        Some(worker) => WorkerId(worker),
                        None => {
                            let others = self
                                .loads
                                .iter()
                                .enumerate()
                                .filter(|(w, _)| *w != home.worker.0)
                                .min_by_key(|(w, load)| (load.peers, load.rooms, *w))
                                .map(|(w, _)| WorkerId(w));
                            match others {
                                Some(other) if !full(&self.loads[other.0]) => other,
                                _ => least_loaded,
                            }
                        }
                    }
                };
                let link_to = if home.on[worker.0] == 0 {
                    (0..workers)
                        .filter(|&w| w != worker.0 && home.on[w] > 0)
                        .map(WorkerId)
                        .collect()
                } else {
                    Vec::new()
                };
                home.peers += 1;
                home.on[worker.0] += 1;
                Placed {
                    worker,
                    home: home.worker,
                    link_to,
                }
            }
            None => {
                let full =
                    |w: &WorkerId| self.peer_limit.is_some_and(|l| self.loads[w.0].peers >= l);
                let worker = self
                    .lesson_home(room)
                    .filter(|w| !full(w))
                    .unwrap_or(least_loaded);
                let mut on = vec![0; workers];
                on[worker.0] = 1;
                self.rooms.insert(
                    room.clone(),
                    RoomHome {
                        worker,
                        peers: 1,
                        on,
                    },
                );
                self.loads[worker.0].rooms += 1;
                Placed {
                    worker,
                    home: worker,
                    link_to: Vec::new(),
                }
            }
        };
        self.loads[placed.worker.0].peers += 1;
        self.peers.insert(
            peer,
            PeerHome {
                worker: placed.worker,
                room: room.clone(),
            },
        );
        Ok(placed)
    }

    /// Where another room of `room`'s lesson lives (its main room first, else the lowest
    /// worker of its breakout rooms): a lesson's rooms share a home, so that the teacher's
    /// voice reaches every breakout room on one worker (`sfu/voice.rs`) and a student's move
    /// between them stays in one thread.
    fn lesson_home(&self, room: &RoomName) -> Option<WorkerId> {
        let lesson = room
            .breakout()
            .map(|(l, _, _)| l)
            .or_else(|| room.lesson())?;
        let main = RoomName::for_lesson(lesson);
        if let Some(home) = self.rooms.get(&main) {
            return Some(home.worker);
        }
        self.rooms
            .iter()
            .filter(|(name, _)| name.breakout().is_some_and(|(l, _, _)| l == lesson))
            .map(|(_, home)| home.worker)
            .min()
    }

    /// The workers that carry peers of `room`, by index.
    pub fn workers_of(&self, room: &RoomName) -> Vec<WorkerId> {
        self.rooms.get(room).map_or_else(Vec::new, |home| {
            (0..home.on.len())
                .filter(|&w| home.on[w] > 0)
                .map(WorkerId)
                .collect()
        })
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
        self.leave(peer).is_some()
    }

    /// [`Placement::left`], saying where the peer was and whether its room left that worker
    /// with it; `None` if it was not placed.
    pub fn leave(&mut self, peer: PeerId) -> Option<Left> {
        let home = self.peers.remove(&peer)?;
        let load = &mut self.loads[home.worker.0];
        load.peers = load.peers.saturating_sub(1);
        let mut room_left_worker = true;
        if let Some(room) = self.rooms.get_mut(&home.room) {
            room.peers = room.peers.saturating_sub(1);
            let on = &mut room.on[home.worker.0];
            *on = on.saturating_sub(1);
            room_left_worker = *on == 0;
            if room.peers == 0 {
                let owner = room.worker;
                self.rooms.remove(&home.room);
                let load = &mut self.loads[owner.0];
                load.rooms = load.rooms.saturating_sub(1);
            }
        }
        Some(Left {
            worker: home.worker,
            room: home.room,
            room_left_worker,
        })
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

    fn place(
        placement: &mut Placement,
        peer: PeerId,
        room: &RoomName,
    ) -> Result<WorkerId, AlreadyPlaced> {
        placement.place(peer, room).map(|placed| placed.worker)
    }

    #[test]
    fn a_full_home_sends_further_peers_to_other_workers_linked_once() {
        let mut placement = Placement::with_limit(3, Some(2));
        let first = placement.place(PeerId(1), &room(1)).expect("placed");
        assert_eq!((first.worker, first.home), (WorkerId(0), WorkerId(0)));
        assert!(first.link_to.is_empty());
        assert_eq!(place(&mut placement, PeerId(2), &room(1)), Ok(WorkerId(0)));
        // The home is full: the least-loaded other worker, linked to the home.
        let third = placement.place(PeerId(3), &room(1)).expect("placed");
        assert_eq!(
            third,
            Placed {
                worker: WorkerId(1),
                home: WorkerId(0),
                link_to: vec![WorkerId(0)],
            }
        );
        // Worker 1 carries the room and has room: no new link.
        let fourth = placement.place(PeerId(4), &room(1)).expect("placed");
        assert_eq!((fourth.worker, fourth.link_to.len()), (WorkerId(1), 0));
        // Both full: worker 2, linked to both.
        let fifth = placement.place(PeerId(5), &room(1)).expect("placed");
        assert_eq!(fifth.worker, WorkerId(2));
        assert_eq!(fifth.link_to, [WorkerId(0), WorkerId(1)]);
        assert_eq!(
            placement.workers_of(&room(1)),
            [WorkerId(0), WorkerId(1), WorkerId(2)]
        );
        // All full: still placed, on the least loaded (soft limit).
        assert_eq!(place(&mut placement, PeerId(6), &room(1)), Ok(WorkerId(2)));
        assert_eq!(place(&mut placement, PeerId(7), &room(1)), Ok(WorkerId(1)));

        // Worker 2's peers leave: the last one says the room left that worker.
        let left = placement.leave(PeerId(5)).expect("placed");
        assert_eq!((left.worker, left.room_left_worker), (WorkerId(2), false));
        let left = placement.leave(PeerId(6)).expect("placed");
        assert_eq!((left.worker, left.room_left_worker), (WorkerId(2), true));
        assert_eq!(placement.workers_of(&room(1)), [WorkerId(0), WorkerId(1)]);
        // A peer that finds the room gone from a worker links it again.
        placement.left(PeerId(7));
        placement.left(PeerId(1));
        placement.left(PeerId(2));
        assert_eq!(
            placement.home_of(&room(1)),
            Some(WorkerId(0)),
            "the home stays"
        );
        let back = placement.place(PeerId(8), &room(1)).expect("placed");
        assert_eq!(
            (back.worker, back.link_to),
            (WorkerId(0), vec![WorkerId(1)])
        );
        for peer in [3, 4, 8] {
            placement.left(PeerId(peer));
        }
        assert_eq!(placement.home_of(&room(1)), None);
        assert!(
            placement
                .loads()
                .iter()
                .all(|l| *l == WorkerLoad::default())
        );
    }

    #[test]
    fn a_room_stays_on_its_home_and_new_rooms_go_to_the_least_loaded_worker() {
        let mut placement = Placement::new(3);
        assert_eq!(place(&mut placement, PeerId(1), &room(1)), Ok(WorkerId(0)));
        assert_eq!(place(&mut placement, PeerId(2), &room(1)), Ok(WorkerId(0)));
        assert_eq!(place(&mut placement, PeerId(3), &room(2)), Ok(WorkerId(1)));
        assert_eq!(place(&mut placement, PeerId(4), &room(3)), Ok(WorkerId(2)));
        // Worker 1 and 2 carry one peer each, worker 0 two: the lowest of the least loaded.
        assert_eq!(place(&mut placement, PeerId(5), &room(4)), Ok(WorkerId(1)));
        // However full its home, a room's peers join it there.
        for peer in 6..20 {
            assert_eq!(
                place(&mut placement, PeerId(peer), &room(1)),
                Ok(WorkerId(0))
            );
        }
        assert_eq!(place(&mut placement, PeerId(20), &room(5)), Ok(WorkerId(2)));
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
    fn a_lessons_breakout_rooms_are_homed_with_its_main_room_or_each_other() {
        let mut placement = Placement::new(2);
        let breakout = |round, index| RoomName::for_breakout(LessonId(1), round, index);
        assert_eq!(place(&mut placement, PeerId(1), &room(1)), Ok(WorkerId(0)));
        // The least loaded worker is 1, but the lesson lives on 0.
        assert_eq!(
            place(&mut placement, PeerId(2), &breakout(1, 0)),
            Ok(WorkerId(0))
        );
        assert_eq!(
            place(&mut placement, PeerId(3), &breakout(1, 1)),
            Ok(WorkerId(0))
        );
        assert_eq!(place(&mut placement, PeerId(4), &room(2)), Ok(WorkerId(1)));
        // The main room empties (everyone is away): the next room joins the breakout rooms.
        assert!(placement.left(PeerId(1)));
        assert_eq!(
            place(&mut placement, PeerId(5), &breakout(1, 2)),
            Ok(WorkerId(0))
        );
        // Another lesson's breakout rooms go to that lesson's home, where load alone would
        // pick worker 0 now (as loaded, lower index).
        assert!(placement.left(PeerId(5)) && placement.left(PeerId(3)));
        let other = RoomName::for_breakout(LessonId(2), 1, 0);
        assert_eq!(place(&mut placement, PeerId(6), &other), Ok(WorkerId(1)));
    }

    #[test]
    fn a_room_is_forgotten_with_its_last_peer_and_may_move_when_it_starts_again() {
        let mut placement = Placement::new(2);
        place(&mut placement, PeerId(1), &room(1)).expect("placed");
        place(&mut placement, PeerId(2), &room(1)).expect("placed");
        place(&mut placement, PeerId(3), &room(2)).expect("placed");
        assert!(placement.left(PeerId(1)));
        assert!(!placement.left(PeerId(1)), "a departure counts once");
        assert_eq!(placement.home_of(&room(1)), Some(WorkerId(0)));
        assert!(placement.left(PeerId(2)));
        assert_eq!(placement.home_of(&room(1)), None);
        assert_eq!(placement.worker_of(PeerId(2)), None);
        assert_eq!(placement.loads()[0], WorkerLoad::default());
        // Room 2 keeps worker 1 busy: room 1 starts again on the idle worker 0; then both
        // carry one peer and one room, and room 3 goes to the lower index.
        place(&mut placement, PeerId(4), &room(1)).expect("placed");
        assert_eq!(placement.worker_of(PeerId(4)), Some(WorkerId(0)));
        assert_eq!(place(&mut placement, PeerId(5), &room(3)), Ok(WorkerId(0)));
    }

    #[test]
    fn a_peer_is_placed_once() {
        let mut placement = Placement::new(2);
        place(&mut placement, PeerId(1), &room(1)).expect("placed");
        assert_eq!(
            place(&mut placement, PeerId(1), &room(2)),
            Err(AlreadyPlaced(WorkerId(0)))
        );
        assert_eq!(placement.home_of(&room(2)), None, "nothing placed for it");
        assert_eq!(placement.loads()[0].peers, 1);
    }

    #[test]
    fn one_worker_takes_everything() {
        let mut placement = Placement::new(1);
        for n in 0..10 {
            assert_eq!(
                place(&mut placement, PeerId(n as u64), &room(n)),
                Ok(WorkerId(0))
            );
        }
        // Zero workers asked for is one.
        assert_eq!(Placement::new(0).workers(), 1);
    }
}
