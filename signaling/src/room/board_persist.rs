//! The whiteboard outlives the process that held it, as the rest of a room does
//! (`persist.rs`): each page's strokes (erased and undone ones too, so that redo works on
//! what was there) are stored page by page, apart from the room's small state, because a
//! board can hold a million points and the state is written after every chat message.
//!
//! Only pages that changed are written, and at most once per [`BOARD_SAVE_INTERVAL`]: a pen
//! streams its points every 50 ms, and rewriting a page for each would write the page again
//! and again for one stroke. A crash loses at most the last second of drawing; a room that
//! closes or drains writes what is pending first. The undo history is not kept: after a
//! restore the strokes are there, visible or not, and undo starts afresh.
//!
//! Only a room whose task stores its state tracks this ([`Room::keep_boards`]): a room that
//! nobody asks for its changes would otherwise wake up for them.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use classroom_protocol::signal::{BoardPage, Stroke, StrokeId};
use serde::{Deserialize, Serialize};

use super::Room;
use super::board::{Kept, weight};

/// How long the changes of a board wait before they are written.
pub const BOARD_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// A stroke as stored: visible, or erased or undone (kept for redo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptStroke {
    pub stroke: Stroke,
    pub visible: bool,
}

/// One page's board as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptBoard {
    pub page: BoardPage,
    pub strokes: Vec<KeptStroke>,
}

/// What to write of one page: its board now, or (`None`) that it has none any more (cleared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardChange {
    pub page: BoardPage,
    pub board: Option<KeptBoard>,
}

/// Pages changed since they were last taken for writing.
#[derive(Debug, Default)]
pub(super) struct BoardSaves {
    /// Off unless the room's state is stored.
    enabled: bool,
    changed: BTreeSet<BoardPage>,
    /// When the changed pages are to be written.
    due: Option<Instant>,
}

impl BoardSaves {
    /// Notes a change of `page`.
    pub(super) fn changed(&mut self, page: BoardPage, now: Instant) {
        if !self.enabled {
            return;
        }
        self.changed.insert(page);
        self.due.get_or_insert(now + BOARD_SAVE_INTERVAL);
    }

    /// When the room must wake up to hand its board changes over.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.due
    }
}

impl Room {
    /// Tracks the boards' changes for storing ([`Room::take_board_changes`]); the room task
    /// turns this on when the room's state is stored.
    pub fn keep_boards(&mut self) {
        self.board.saves.enabled = true;
    }

    /// The pages whose boards changed, once their interval is over (nothing before).
    pub fn take_board_changes(&mut self, now: Instant) -> Vec<BoardChange> {
        match self.board.saves.due {
            Some(due) if now >= due => self.flush_board_changes(),
            _ => Vec::new(),
        }
    }

    /// The pages whose boards changed, at once (the room closes or drains).
    pub fn flush_board_changes(&mut self) -> Vec<BoardChange> {
        self.board.saves.due = None;
        let pages = std::mem::take(&mut self.board.saves.changed);
        pages
            .into_iter()
            .map(|page| BoardChange {
                page,
                board: self.board.pages.get(&page).map(|board| KeptBoard {
                    page,
                    strokes: board
                        .strokes
                        .values()
                        .map(|kept| KeptStroke {
                            stroke: kept.stroke.clone(),
                            visible: kept.visible,
                        })
                        .collect(),
                }),
            })
            .collect()
    }

    /// Takes back stored boards into a room just opened. Boards are given back as they were
    /// stored, even past limits lowered since (they were within the limits of their time);
    /// stroke ids go on after the highest kept, so that none is given twice.
    pub(super) fn restore_boards(
        &mut self,
        boards: Vec<KeptBoard>,
        blank: Option<u32>,
        next_stroke: u64,
    ) {
        let board = &mut self.board;
        let mut highest = next_stroke;
        for kept in boards {
            let page = board.pages.entry(kept.page).or_default();
            for KeptStroke { stroke, visible } in kept.strokes {
                highest = highest.max(stroke.id.0);
                board.points += weight(&stroke);
                if let Some(old) = page.strokes.insert(stroke.id, Kept { stroke, visible }) {
                    board.points -= weight(&old.stroke);
                }
            }
        }
        board.next_stroke = board.next_stroke.max(highest);
        if self.slide.is_none() {
            board.blank = blank.filter(|page| (1..=board.limits.blank_pages).contains(page));
        }
    }

    /// The page of the blank board shown, as the room's state keeps it.
    pub(super) fn blank_board_shown(&self) -> Option<u32> {
        self.board.blank
    }

    /// The highest stroke id given so far.
    pub(super) fn last_stroke(&self) -> StrokeId {
        StrokeId(self.board.next_stroke)
    }
}
