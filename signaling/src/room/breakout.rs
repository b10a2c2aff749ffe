//! The plan of a lesson's breakout rooms, with no I/O: how many rooms, who goes where (dealt
//! at random, a moderator's assignment, or the students' own choice), who is visiting, and the
//! timer with its warning. The lesson's main room keeps it (`breakouts.rs` holds the rules
//! that act on it: checking the actor, moving sessions, telling everyone); each breakout room
//! is a room of its own in the registry, named by [`RoomName::for_breakout`].
//!
//! Invariants:
//! - A participant is in at most one breakout room; everyone else is in the main room.
//! - Only students are placed (by any mode); moderators only visit.
//! - Time is an argument: the plan reads no clock, and its timer is [`BreakoutPlan::deadline`].
//! - Which rooms are recorded is the plan's word (the main room tells each breakout room).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use classroom_protocol::breakout::{MAX_BREAKOUT_ROOMS, MAX_BREAKOUT_SECONDS};
use classroom_protocol::signal::{
    BreakoutMode, BreakoutPlace, BreakoutRequest, BreakoutRoomInfo, BreakoutStatus, ParticipantId,
};
use classroom_protocol::{LessonId, RoomName};

/// The shortest timer a round of rooms may have.
const MIN_BREAKOUT_SECONDS: u32 = 60;
/// The warning before the end when the request names none.
const DEFAULT_WARNING_SECONDS: u32 = 60;

/// Why a plan cannot be made or changed as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("open between 1 and {MAX_BREAKOUT_ROOMS} breakout rooms")]
    RoomCount,
    #[error(
        "a breakout timer runs between {MIN_BREAKOUT_SECONDS} and {MAX_BREAKOUT_SECONDS} seconds, its warning less than that"
    )]
    Timer,
    #[error("an assignment is given only by hand, with one list per room")]
    Assignment,
    #[error("participant {0} is not a student of the main room")]
    NotAStudent(ParticipantId),
    #[error("participant {0} is named twice in the assignment")]
    Twice(ParticipantId),
    #[error("there is no breakout room {0}")]
    NoSuchRoom(u32),
}

/// One round of breakout rooms.
#[derive(Debug, Clone)]
pub(super) struct BreakoutPlan {
    round: u32,
    mode: BreakoutMode,
    rooms: Vec<RoomName>,
    /// Students and their room.
    placed: BTreeMap<ParticipantId, u32>,
    /// Moderators seeing a room.
    visiting: BTreeMap<ParticipantId, u32>,
    /// Who speaks in each room now, as the room last said (main-room ids, loudest first).
    speakers: BTreeMap<u32, Vec<ParticipantId>>,
    /// The rooms recorded, by index.
    recorded: BTreeSet<u32>,
    timer: Option<Timer>,
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    ends_at: Instant,
    /// When to warn, until the warning is given.
    warn_at: Option<Instant>,
}

/// What the timer says at [`BreakoutPlan::handle_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TimerNews {
    /// The rooms close in this many seconds.
    Warning(u32),
    /// The time is up: close the rooms.
    Ended,
}

impl BreakoutPlan {
    /// Round `round` of `lesson`'s rooms as `request` asks, with `students` the students of
    /// the main room (in the order they joined); `seed` shuffles the random mode.
    pub(super) fn open(
        now: Instant,
        lesson: LessonId,
        round: u32,
        request: &BreakoutRequest,
        students: &[ParticipantId],
        seed: u64,
    ) -> Result<Self, PlanError> {
        if request.rooms == 0 || request.rooms > MAX_BREAKOUT_ROOMS {
            return Err(PlanError::RoomCount);
        }
        let timer = Self::timer(now, request)?;
        let placed = match request.mode {
            BreakoutMode::Random if request.assignment.is_empty() => {
                deal(students, request.rooms, seed)
            }
            BreakoutMode::Choose if request.assignment.is_empty() => BTreeMap::new(),
            BreakoutMode::ByHand => assign(&request.assignment, request.rooms, students)?,
            BreakoutMode::Random | BreakoutMode::Choose => return Err(PlanError::Assignment),
        };
        Ok(BreakoutPlan {
            round,
            mode: request.mode,
            rooms: (0..request.rooms)
                .map(|index| RoomName::for_breakout(lesson, round, index))
                .collect(),
            placed,
            visiting: BTreeMap::new(),
            speakers: BTreeMap::new(),
            recorded: if request.record {
                (0..request.rooms).collect()
            } else {
                BTreeSet::new()
            },
            timer,
        })
    }

    fn timer(now: Instant, request: &BreakoutRequest) -> Result<Option<Timer>, PlanError> {
        let Some(seconds) = request.duration_seconds else {
            return Ok(None);
        };
        if !(MIN_BREAKOUT_SECONDS..=MAX_BREAKOUT_SECONDS).contains(&seconds) {
            return Err(PlanError::Timer);
        }
        let warning = request.warning_seconds.unwrap_or(DEFAULT_WARNING_SECONDS);
        if warning >= seconds {
            return Err(PlanError::Timer);
        }
        let ends_at = now + Duration::from_secs(u64::from(seconds));
        let warn_at = (warning > 0).then(|| ends_at - Duration::from_secs(u64::from(warning)));
        Ok(Some(Timer { ends_at, warn_at }))
    }

    pub(super) fn mode(&self) -> BreakoutMode {
        self.mode
    }

    /// The rooms' names, by index.
    pub(super) fn rooms(&self) -> &[RoomName] {
        &self.rooms
    }

    /// The index of the room named `room`, if it is one of this round's.
    pub(super) fn index_of(&self, room: &RoomName) -> Option<u32> {
        let index = self.rooms.iter().position(|r| r == room)?;
        u32::try_from(index).ok()
    }

    /// Room `index`'s speakers now; whether that changed what the moderators saw.
    pub(super) fn set_speakers(&mut self, index: u32, speakers: Vec<ParticipantId>) -> bool {
        let before = self.speakers.get(&index).map_or(&[][..], Vec::as_slice);
        if before == speakers.as_slice() {
            return false;
        }
        self.speakers.insert(index, speakers);
        true
    }

    /// Records room `index` (`on`) or no more; whether that changed anything.
    pub(super) fn set_recorded(&mut self, index: u32, on: bool) -> Result<bool, PlanError> {
        self.check_room(Some(index))?;
        Ok(if on {
            self.recorded.insert(index)
        } else {
            self.recorded.remove(&index)
        })
    }

    /// The names of the rooms recorded.
    pub(super) fn recorded(&self) -> impl Iterator<Item = &RoomName> + '_ {
        self.recorded
            .iter()
            .filter_map(|index| self.rooms.get(usize::try_from(*index).ok()?))
    }

    /// Where `participant` is: a breakout room (placed or visiting), or `None` for the main
    /// room.
    pub(super) fn room_of(&self, participant: ParticipantId) -> Option<u32> {
        self.placed
            .get(&participant)
            .or_else(|| self.visiting.get(&participant))
            .copied()
    }

    /// Everyone in a breakout room now, with their room.
    pub(super) fn away(&self) -> impl Iterator<Item = (ParticipantId, u32)> + '_ {
        self.placed
            .iter()
            .chain(self.visiting.iter())
            .map(|(p, r)| (*p, *r))
    }

    /// `wire` form of room `index`, for `moved`.
    pub(super) fn place(&self, index: u32) -> Option<BreakoutPlace> {
        let room = self.rooms.get(usize::try_from(index).ok()?)?;
        Some(BreakoutPlace {
            index,
            room: room.to_string(),
        })
    }

    fn check_room(&self, room: Option<u32>) -> Result<(), PlanError> {
        match room {
            Some(index) if self.place(index).is_none() => Err(PlanError::NoSuchRoom(index)),
            _ => Ok(()),
        }
    }

    /// Places student `participant` in `room` (`None`: the main room). Returns where they
    /// were; the caller moves their session when it differs.
    pub(super) fn place_student(
        &mut self,
        participant: ParticipantId,
        room: Option<u32>,
    ) -> Result<Option<u32>, PlanError> {
        self.check_room(room)?;
        let was = self.placed.remove(&participant);
        if let Some(room) = room {
            self.placed.insert(participant, room);
        }
        Ok(was)
    }

    /// A moderator goes to see `room` (`None`: back to the main room). Returns where they were.
    pub(super) fn visit(
        &mut self,
        participant: ParticipantId,
        room: Option<u32>,
    ) -> Result<Option<u32>, PlanError> {
        self.check_room(room)?;
        let was = self.visiting.remove(&participant);
        if let Some(room) = room {
            self.visiting.insert(participant, room);
        }
        Ok(was)
    }

    /// The participant left the lesson: they are nowhere.
    pub(super) fn forget(&mut self, participant: ParticipantId) -> bool {
        let placed = self.placed.remove(&participant).is_some();
        self.visiting.remove(&participant).is_some() || placed
    }

    /// When the timer next has news.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let timer = self.timer?;
        Some(timer.warn_at.unwrap_or(timer.ends_at))
    }

    /// The timer's news at `now`, if any is due.
    pub(super) fn handle_timeout(&mut self, now: Instant) -> Option<TimerNews> {
        let timer = self.timer.as_mut()?;
        if now >= timer.ends_at {
            self.timer = None;
            return Some(TimerNews::Ended);
        }
        match timer.warn_at {
            Some(at) if now >= at => {
                timer.warn_at = None;
                Some(TimerNews::Warning(seconds_until(now, timer.ends_at)))
            }
            _ => None,
        }
    }

    /// What everyone of the lesson sees.
    pub(super) fn status(&self, now: Instant) -> BreakoutStatus {
        let rooms = self
            .rooms
            .iter()
            .zip(0u32..)
            .map(|(room, index)| {
                let mut members: Vec<ParticipantId> = self
                    .away()
                    .filter(|(_, r)| *r == index)
                    .map(|(p, _)| p)
                    .collect();
                members.sort_unstable();
                BreakoutRoomInfo {
                    index,
                    room: room.to_string(),
                    members,
                    recording: self.recorded.contains(&index),
                }
            })
            .collect();
        BreakoutStatus {
            round: self.round,
            mode: self.mode,
            rooms,
            seconds_left: self.timer.map(|t| seconds_until(now, t.ends_at)),
            voice: Vec::new(),
        }
    }
}

/// Whole seconds from `now` to `at`, rounded up (a warning at 59.5 s says 60).
fn seconds_until(now: Instant, at: Instant) -> u32 {
    let left = at.saturating_duration_since(now);
    let whole = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    u32::try_from(whole).unwrap_or(u32::MAX)
}

/// Deals `students` at random into `rooms` rooms, sizes differing by at most one.
fn deal(students: &[ParticipantId], rooms: u32, seed: u64) -> BTreeMap<ParticipantId, u32> {
    let mut order = students.to_vec();
    let mut state = seed;
    // Fisher-Yates with splitmix64: a fair shuffle without a dependency; nobody attacks it.
    for i in (1..order.len()).rev() {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let j = usize::try_from(z % (i as u64 + 1)).unwrap_or(0);
        order.swap(i, j);
    }
    order.into_iter().zip((0..rooms).cycle()).collect()
}

/// A moderator's assignment, checked: each listed participant a student, named once.
fn assign(
    assignment: &[Vec<ParticipantId>],
    rooms: u32,
    students: &[ParticipantId],
) -> Result<BTreeMap<ParticipantId, u32>, PlanError> {
    if assignment.len() > usize::try_from(rooms).unwrap_or(usize::MAX) {
        return Err(PlanError::Assignment);
    }
    let mut placed = BTreeMap::new();
    for (members, room) in assignment.iter().zip(0u32..) {
        for participant in members {
            if !students.contains(participant) {
                return Err(PlanError::NotAStudent(*participant));
            }
            if placed.insert(*participant, room).is_some() {
                return Err(PlanError::Twice(*participant));
            }
        }
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LESSON: LessonId = LessonId(3);

    fn request(rooms: u32, mode: BreakoutMode) -> BreakoutRequest {
        BreakoutRequest {
            rooms,
            mode,
            assignment: Vec::new(),
            duration_seconds: None,
            warning_seconds: None,
            record: false,
        }
    }

    fn students(n: u64) -> Vec<ParticipantId> {
        (1..=n).map(ParticipantId).collect()
    }

    #[test]
    fn random_rooms_differ_by_at_most_one_student_and_place_everyone() {
        let now = Instant::now();
        for seed in 0..20 {
            let plan = BreakoutPlan::open(
                now,
                LESSON,
                1,
                &request(6, BreakoutMode::Random),
                &students(32),
                seed,
            )
            .expect("six rooms");
            let status = plan.status(now);
            let sizes: Vec<usize> = status.rooms.iter().map(|r| r.members.len()).collect();
            assert_eq!(sizes.iter().sum::<usize>(), 32);
            assert!(sizes.iter().all(|s| *s == 5 || *s == 6), "{sizes:?}");
        }
    }

    #[test]
    fn the_random_mode_shuffles_by_its_seed() {
        let now = Instant::now();
        let open = |seed| {
            BreakoutPlan::open(
                now,
                LESSON,
                1,
                &request(2, BreakoutMode::Random),
                &students(10),
                seed,
            )
            .expect("two rooms")
            .placed
        };
        assert_eq!(open(7), open(7), "the same seed deals the same");
        assert!((1..10).any(|seed| open(seed) != open(0)), "seeds differ");
    }

    #[test]
    fn an_assignment_by_hand_names_only_students_once_and_rooms_that_exist() {
        let now = Instant::now();
        let mut by_hand = request(2, BreakoutMode::ByHand);
        by_hand.assignment = vec![vec![ParticipantId(1)], vec![ParticipantId(2)]];
        let plan = BreakoutPlan::open(now, LESSON, 1, &by_hand, &students(3), 0).expect("valid");
        assert_eq!(plan.room_of(ParticipantId(1)), Some(0));
        assert_eq!(plan.room_of(ParticipantId(2)), Some(1));
        assert_eq!(plan.room_of(ParticipantId(3)), None, "not named: main room");

        by_hand.assignment = vec![vec![ParticipantId(1)], vec![ParticipantId(1)]];
        let twice = BreakoutPlan::open(now, LESSON, 1, &by_hand, &students(3), 0);
        assert_eq!(twice.err(), Some(PlanError::Twice(ParticipantId(1))));

        by_hand.assignment = vec![vec![ParticipantId(9)]];
        let stranger = BreakoutPlan::open(now, LESSON, 1, &by_hand, &students(3), 0);
        assert_eq!(
            stranger.err(),
            Some(PlanError::NotAStudent(ParticipantId(9)))
        );

        by_hand.assignment = vec![Vec::new(), Vec::new(), vec![ParticipantId(1)]];
        let third_of_two = BreakoutPlan::open(now, LESSON, 1, &by_hand, &students(3), 0);
        assert_eq!(third_of_two.err(), Some(PlanError::Assignment));
    }

    #[test]
    fn a_round_opened_to_record_records_every_room_until_one_is_turned_off() {
        let now = Instant::now();
        let mut recorded = request(3, BreakoutMode::Choose);
        recorded.record = true;
        let mut plan = BreakoutPlan::open(now, LESSON, 2, &recorded, &[], 0).expect("three rooms");
        let all: Vec<String> = plan.recorded().map(ToString::to_string).collect();
        assert_eq!(
            all,
            [
                "lesson-3-breakout-2-0",
                "lesson-3-breakout-2-1",
                "lesson-3-breakout-2-2"
            ]
        );
        assert_eq!(plan.set_recorded(1, false), Ok(true));
        assert_eq!(plan.set_recorded(1, false), Ok(false), "once");
        assert_eq!(plan.set_recorded(3, true), Err(PlanError::NoSuchRoom(3)));
        let flags: Vec<bool> = plan.status(now).rooms.iter().map(|r| r.recording).collect();
        assert_eq!(flags, [true, false, true]);
    }

    #[test]
    fn room_counts_and_timers_out_of_bounds_are_refused() {
        let now = Instant::now();
        let open = |r: &BreakoutRequest| BreakoutPlan::open(now, LESSON, 1, r, &[], 0).err();
        assert_eq!(
            open(&request(0, BreakoutMode::Choose)),
            Some(PlanError::RoomCount)
        );
        assert_eq!(
            open(&request(51, BreakoutMode::Choose)),
            Some(PlanError::RoomCount)
        );
        let mut timed = request(2, BreakoutMode::Choose);
        timed.duration_seconds = Some(30);
        assert_eq!(open(&timed), Some(PlanError::Timer));
        timed.duration_seconds = Some(120);
        timed.warning_seconds = Some(120);
        assert_eq!(open(&timed), Some(PlanError::Timer));
        timed.warning_seconds = Some(0);
        assert_eq!(open(&timed), None);
    }

    #[test]
    fn the_timer_warns_once_then_ends_on_the_virtual_clock() {
        let start = Instant::now();
        let mut timed = request(2, BreakoutMode::Choose);
        timed.duration_seconds = Some(600);
        timed.warning_seconds = Some(60);
        let mut plan = BreakoutPlan::open(start, LESSON, 1, &timed, &[], 0).expect("timed");
        let at = |s| start + Duration::from_secs(s);
        assert_eq!(plan.deadline(), Some(at(540)));
        assert_eq!(plan.status(at(100)).seconds_left, Some(500));
        assert_eq!(plan.handle_timeout(at(539)), None, "not yet");
        assert_eq!(plan.handle_timeout(at(540)), Some(TimerNews::Warning(60)));
        assert_eq!(plan.deadline(), Some(at(600)), "the end next");
        assert_eq!(plan.handle_timeout(at(541)), None, "warned once");
        assert_eq!(plan.handle_timeout(at(600)), Some(TimerNews::Ended));
        assert_eq!(plan.deadline(), None);
    }

    #[test]
    fn students_move_between_rooms_and_moderators_visit_without_being_placed() {
        let now = Instant::now();
        let mut plan = BreakoutPlan::open(
            now,
            LESSON,
            4,
            &request(3, BreakoutMode::Choose),
            &students(2),
            0,
        )
        .expect("three rooms");
        assert_eq!(plan.place_student(ParticipantId(1), Some(2)), Ok(None));
        assert_eq!(plan.place_student(ParticipantId(1), Some(0)), Ok(Some(2)));
        assert_eq!(
            plan.place_student(ParticipantId(1), Some(3)),
            Err(PlanError::NoSuchRoom(3))
        );
        assert_eq!(
            plan.room_of(ParticipantId(1)),
            Some(0),
            "a refused move changes nothing"
        );
        assert_eq!(plan.visit(ParticipantId(9), Some(0)), Ok(None));
        let status = plan.status(now);
        assert_eq!(status.round, 4);
        assert_eq!(
            status.rooms[0].members,
            vec![ParticipantId(1), ParticipantId(9)]
        );
        assert_eq!(status.rooms[0].room, "lesson-3-breakout-4-0");
        assert!(plan.forget(ParticipantId(9)));
        assert_eq!(plan.room_of(ParticipantId(9)), None);
        assert!(!plan.forget(ParticipantId(9)), "once");
    }
}
