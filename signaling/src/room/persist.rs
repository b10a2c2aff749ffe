//! What of a room outlives the process that held it: whether the lesson is live, the
//! recording's state, chat (history and lock), the stage, raised hands, who was muted and the
//! document shown. The room task writes a [`RoomState`] whenever one of these changes
//! ([`Room::take_state_change`]) and gives it back to a room opened again for the same lesson
//! ([`Room::restore`]), after a restart of this node or on another node that took the lesson
//! over. Participants are not restored as such: their connections are gone. The places they
//! held (on stage, hand raised, muted) wait for them as a dropped connection's place waits,
//! for the reconnect grace counted from the restore, and are theirs again when they join.
//!
//! The latest poll is kept too, with its answers: a poll open when the node died goes on
//! taking answers in the restored room, and is stored once, when it closes (a room that closes
//! in order, on a drain or the lesson's end, closes and stores its poll first).
//!
//! The whiteboard's strokes are kept too, page by page and apart from the rest
//! (`board_persist.rs`). Not kept: the encoder (it reconnects by itself).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use classroom_protocol::signal::{ChatMessage, ParticipantId, RecordingState, Slide};
use classroom_protocol::{ParticipantRole, UserId};
use serde::{Deserialize, Serialize};

use super::board_persist::KeptBoard;
use super::polls::KeptPoll;
use super::{MediaEffect, Output, Room};

/// The part of a room that is stored. Its JSON form is what the database keeps: fields are
/// only ever added, with defaults, so that a newer server reads an older row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    #[serde(default)]
    pub live: bool,
    #[serde(default)]
    pub recording: RecordingState,
    /// A teacher started, paused or stopped the recording by hand: the server does not start
    /// it again on its own (a course that records by default) after a restore.
    #[serde(default)]
    pub recording_by_hand: bool,
    #[serde(default)]
    pub chat_locked: bool,
    #[serde(default)]
    pub chat: Vec<ChatMessage>,
    #[serde(default)]
    pub next_chat_seq: u64,
    /// Participant ids are never reused within a lesson, across restores too: chat messages
    /// and the slide name them.
    #[serde(default)]
    pub next_participant: u64,
    /// How long the room had been open, so that `at_ms` of new chat keeps increasing.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// Students on stage (teachers and assistants are on it by their role).
    #[serde(default)]
    pub stage: Vec<UserId>,
    /// Raised hands, first raised first.
    #[serde(default)]
    pub hands: Vec<UserId>,
    #[serde(default)]
    pub muted: Vec<UserId>,
    #[serde(default)]
    pub slide: Option<Slide>,
    /// Polls asked in the lesson so far (the next one is numbered after them).
    #[serde(default)]
    pub polls_asked: u32,
    /// The latest poll, open or closed, with its answers.
    #[serde(default)]
    pub poll: Option<KeptPoll>,
    /// The page of the blank board shown (when no document is).
    #[serde(default)]
    pub blank_board: Option<u32>,
    /// The highest stroke id given, so that none is given twice.
    #[serde(default)]
    pub last_stroke: u64,
    /// The boards, page by page: stored apart from the rest ([`Room::take_board_changes`],
    /// `board_persist.rs`), never in this JSON; the store puts them here when it loads the
    /// state.
    #[serde(default, skip_serializing)]
    pub boards: Vec<KeptBoard>,
}

/// Places waiting for the users who held them before the restore.
#[derive(Debug, Default)]
pub(super) struct Restored {
    stage: BTreeSet<UserId>,
    /// Raised hands waiting for their users, by their place in the stored queue.
    hands: HashMap<UserId, usize>,
    /// The stored place of each hand given back, so that those keep their order among
    /// themselves and stay ahead of hands raised since.
    given_back: HashMap<ParticipantId, usize>,
    muted: BTreeSet<UserId>,
    /// Joins whose connection opened after this find nothing kept.
    until: Option<Instant>,
}

/// What changes a [`RoomState`], cheap to compare after every step: chat is summed up by its
/// next sequence number (every message takes one), the rest is small.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct StateKey {
    live: bool,
    recording: RecordingState,
    recording_by_hand: bool,
    chat_locked: bool,
    next_chat_seq: u64,
    stage: Vec<UserId>,
    hands: Vec<UserId>,
    muted: Vec<UserId>,
    slide: Option<Slide>,
    blank_board: Option<u32>,
    polls: u64,
}

impl Room {
    /// The room as it would be restored now.
    pub fn state(&self, now: Instant) -> RoomState {
        let key = self.state_key();
        let (polls_asked, poll) = self.kept_polls();
        RoomState {
            live: self.live,
            recording: self.recording,
            recording_by_hand: self.recording_by_hand,
            chat_locked: self.chat_locked,
            chat: self.chat.iter().cloned().collect(),
            next_chat_seq: self.next_chat_seq,
            next_participant: self.next_participant,
            elapsed_ms: millis(now.saturating_duration_since(self.opened_at)),
            stage: key.stage,
            hands: key.hands,
            muted: key.muted,
            slide: self.slide,
            polls_asked,
            poll,
            blank_board: key.blank_board,
            last_stroke: self.last_stroke().0,
            boards: Vec::new(),
        }
    }

    /// The room's state when it changed since the last call (the first call always has it
    /// unless nothing happened yet); the room task stores it.
    pub fn take_state_change(&mut self, now: Instant) -> Option<RoomState> {
        let key = self.state_key();
        if self.stored_key.as_ref() == Some(&key) {
            return None;
        }
        self.stored_key = Some(key);
        Some(self.state(now))
    }

    /// Takes back a stored state into a room just opened, before anyone joins. A live lesson
    /// is live again at once (the recorder and restreams follow), and a recording in progress
    /// starts again as a new part.
    pub fn restore(&mut self, now: Instant, state: RoomState) {
        let mut out = Vec::new();
        self.chat_locked = state.chat_locked;
        self.chat = state.chat.into_iter().collect();
        while self.chat.len() > self.config.chat_history {
            self.chat.pop_front();
        }
        self.next_chat_seq = self.next_chat_seq.max(state.next_chat_seq);
        self.next_participant = self.next_participant.max(state.next_participant);
        self.opened_at = now
            .checked_sub(Duration::from_millis(state.elapsed_ms))
            .unwrap_or(self.opened_at);
        self.slide = state.slide;
        self.restore_boards(state.boards, state.blank_board, state.last_stroke);
        self.restore_polls(now, state.polls_asked, state.poll);
        self.recording_by_hand = state.recording_by_hand;
        self.restored = Restored {
            stage: state.stage.into_iter().collect(),
            hands: state
                .hands
                .iter()
                .enumerate()
                .map(|(i, u)| (*u, i))
                .collect(),
            given_back: HashMap::new(),
            muted: state.muted.into_iter().collect(),
            until: Some(now + self.config.reconnect_grace),
        };
        if state.live {
            self.go_live(&mut out);
        }
        use super::RecordingEffect::Started;
        match state.recording {
            RecordingState::Off => {}
            RecordingState::Recording => {
                self.set_recording(RecordingState::Recording, Started, &mut out);
            }
            RecordingState::Paused => {
                self.set_recording(RecordingState::Recording, Started, &mut out);
                self.set_recording(
                    RecordingState::Paused,
                    super::RecordingEffect::Paused,
                    &mut out,
                );
            }
        }
        self.stored_key = Some(self.state_key());
        self.follow(out, true);
    }

    /// Gives a user who just joined as `participant` the places they held before the restore,
    /// when they come back within the grace.
    pub(super) fn restore_place(
        &mut self,
        participant: ParticipantId,
        user: UserId,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        self.lapse_restored(now);
        if self.restored.stage.remove(&user) {
            self.put_on_stage(participant, out);
        }
        if let Some(rank) = self.restored.hands.remove(&user) {
            let given_back = &self.restored.given_back;
            let before = self
                .hands
                .iter()
                .position(|p| given_back.get(p).is_none_or(|r| *r > rank))
                .unwrap_or(self.hands.len());
            self.restored.given_back.insert(participant, rank);
            self.hands.insert(before, participant);
            self.set_hand(participant, true, out);
        }
        if self.restored.muted.remove(&user)
            && let Some(p) = self.participants.get_mut(&participant)
        {
            p.info.muted = true;
            out.push(Output::Media(MediaEffect::AudioMuted { participant }));
        }
    }

    /// Places nobody came back for within the grace are given up.
    pub(super) fn lapse_restored(&mut self, now: Instant) {
        if self.restored.until.is_some_and(|until| now > until) {
            self.restored = Restored::default();
        }
    }

    fn state_key(&self) -> StateKey {
        let mut stage = Vec::new();
        let mut muted = Vec::new();
        for p in self.participants.values() {
            let by_role = matches!(
                p.info.role,
                ParticipantRole::Teacher | ParticipantRole::Assistant
            );
            if p.info.on_stage && !by_role && !p.base_grants.moderate {
                stage.push(p.info.user_id);
            }
            if p.info.muted {
                muted.push(p.info.user_id);
            }
        }
        // Places still waiting for their users are part of the state until taken or lapsed.
        stage.extend(self.restored.stage.iter().copied());
        muted.extend(self.restored.muted.iter().copied());
        stage.sort_unstable();
        stage.dedup();
        muted.sort_unstable();
        muted.dedup();
        let mut hands: Vec<UserId> = self
            .hands
            .iter()
            .filter_map(|p| self.participants.get(p).map(|p| p.info.user_id))
            .collect();
        let mut waiting: Vec<(usize, UserId)> =
            self.restored.hands.iter().map(|(u, r)| (*r, *u)).collect();
        waiting.sort_unstable();
        hands.extend(waiting.into_iter().map(|(_, u)| u));
        StateKey {
            live: self.live,
            recording: self.recording,
            recording_by_hand: self.recording_by_hand,
            chat_locked: self.chat_locked,
            next_chat_seq: self.next_chat_seq,
            stage,
            hands,
            muted,
            slide: self.slide,
            blank_board: self.blank_board_shown(),
            polls: self.polls.version,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
