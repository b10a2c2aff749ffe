//! The whiteboard: strokes drawn on the page shown to the class (a document's page, or a page
//! of the room's blank board), held per page by the room so that late joiners and reconnects
//! get the shown page's board whole in `joined`, and everyone gets the board of each page the
//! class turns to. Strokes reach the class as they are drawn (`draw`, then `draw_more` chunks);
//! the pointer is passed on, thinned, and never kept.
//!
//! Who draws: moderators always, anyone else only while holding the pen (`give_pen`,
//! `take_pen`), checked here on every drawing message. What a client can grow is bounded by
//! [`BoardLimits`]: points per message and per stroke, strokes per page, pages with drawings
//! and points (text counted by its bytes) in the whole room, and a rate per participant. Erased
//! and undone strokes stay (for undo and redo) and count; clearing a page frees it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use classroom_protocol::ErrorCode;
use classroom_protocol::signal::{
    BoardPage, BoardSnapshot, Colour, ParticipantId, Point, ServerMessage, Stroke, StrokeId, Tool,
};

use super::board_persist::BoardSaves;
use super::{Actor, Output, Refusal, Room};
use crate::limits::TokenBucket;

/// What one room's boards may hold and how fast they may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardLimits {
    /// Points in one `draw` or `draw_more`.
    pub points_per_message: usize,
    /// Points in one stroke (a pen line of a minute's writing has a few thousand).
    pub points_per_stroke: usize,
    /// Strokes kept on one page, erased and undone ones included (until it is cleared).
    pub strokes_per_page: usize,
    /// Pages with drawings on them, in the whole room.
    pub pages: usize,
    /// Points on all pages together; a text counts one point per 4 bytes. 1,000,000 points
    /// are about 8 MB as the room keeps them.
    pub room_points: usize,
    /// Characters of one text.
    pub text_chars: usize,
    /// Widest line (and tallest text), in page units.
    pub max_width: u16,
    /// Drawing messages (all but `pointer`) per participant and second, on average...
    pub messages_per_second: u32,
    /// ...and at once.
    pub message_burst: u32,
    /// A participant's pointer positions closer together than this are dropped.
    pub pointer_interval: Duration,
    /// Pages of the blank board.
    pub blank_pages: u32,
}

impl Default for BoardLimits {
    fn default() -> Self {
        BoardLimits {
            points_per_message: 500,
            points_per_stroke: 5_000,
            strokes_per_page: 2_000,
            pages: 200,
            room_points: 1_000_000,
            text_chars: 500,
            max_width: 1_000,
            // Above the connection's own limit (20 a second by default), so that a client
            // streaming a stroke every 50 ms is never refused by both.
            messages_per_second: 30,
            message_burst: 60,
            pointer_interval: Duration::from_millis(40),
            blank_pages: 20,
        }
    }
}

/// A stroke with whether it is on the page now (erased and undone ones are kept for redo).
#[derive(Debug, Clone)]
pub(super) struct Kept {
    pub(super) stroke: Stroke,
    pub(super) visible: bool,
}

/// One drawing or erasing, for undo and redo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Drew(StrokeId),
    Erased(StrokeId),
}

#[derive(Debug, Clone, Copy)]
struct Step {
    by: ParticipantId,
    change: Change,
}

/// The board of one page.
#[derive(Debug, Default)]
pub(super) struct PageBoard {
    pub(super) strokes: BTreeMap<StrokeId, Kept>,
    /// Changes that can be undone, oldest first.
    done: VecDeque<Step>,
    /// Changes undone that can be redone, last undone last.
    undone: Vec<Step>,
}

impl PageBoard {
    fn weight(&self) -> usize {
        self.strokes.values().map(|k| weight(&k.stroke)).sum()
    }

    fn visible(&self) -> Vec<Stroke> {
        self.strokes
            .values()
            .filter(|k| k.visible)
            .map(|k| k.stroke.clone())
            .collect()
    }

    /// Notes a change by `by`: it can be undone; what they undid before can no longer be
    /// redone. The history holds at most one step per stroke kept and change kind, so
    /// trimming it at twice the strokes bounds it without losing a reachable step in practice.
    fn record(&mut self, by: ParticipantId, change: Change, cap: usize) {
        self.undone.retain(|s| s.by != by);
        self.done.push_back(Step { by, change });
        while self.done.len() > cap {
            self.done.pop_front();
        }
    }

    /// Shows or hides a stroke; the message for the class when that changed anything.
    fn set_visible(&mut self, id: StrokeId, visible: bool) -> Option<ServerMessage> {
        let kept = self.strokes.get_mut(&id)?;
        if kept.visible == visible {
            return None;
        }
        kept.visible = visible;
        Some(if visible {
            ServerMessage::Stroke {
                stroke: kept.stroke.clone(),
            }
        } else {
            ServerMessage::StrokeErased { id }
        })
    }
}

/// The boards of a room and who may draw on them.
#[derive(Debug, Default)]
pub(super) struct Boards {
    pub(super) limits: BoardLimits,
    pub(super) pages: BTreeMap<BoardPage, PageBoard>,
    /// The blank board's page, while the blank board is shown.
    pub(super) blank: Option<u32>,
    /// Participants given the pen (moderators draw without it).
    pens: BTreeSet<ParticipantId>,
    /// Each drawer's pen or highlighter stroke being drawn, and its page.
    drawing: HashMap<ParticipantId, (BoardPage, StrokeId)>,
    rates: HashMap<ParticipantId, TokenBucket>,
    last_pointer: HashMap<ParticipantId, Instant>,
    pub(super) next_stroke: u64,
    /// Points (and text) kept on all pages.
    pub(super) points: usize,
    /// Pages changed since they were last stored (`board_persist.rs`).
    pub(super) saves: BoardSaves,
}

/// A stroke's share of [`BoardLimits::room_points`].
pub(super) fn weight(stroke: &Stroke) -> usize {
    stroke.points.len() + stroke.text.as_ref().map_or(0, |t| t.len().div_ceil(4))
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::InvalidMessage, message)
}

fn full(message: impl Into<String>) -> Refusal {
    Refusal::new(ErrorCode::BoardFull, message)
}

fn nothing_shown() -> Refusal {
    invalid("nothing is shown to draw on: show a document or the blank board first")
}

impl Room {
    /// The page whose board the class sees now.
    pub fn board_page(&self) -> Option<BoardPage> {
        match (self.slide, self.board.blank) {
            (Some(slide), _) => Some(BoardPage {
                document: Some(slide.document),
                page: slide.page,
            }),
            (None, Some(page)) => Some(BoardPage {
                document: None,
                page,
            }),
            (None, None) => None,
        }
    }

    /// The board of the page shown now and who holds the pen, as `joined` and `board` carry
    /// them.
    pub fn board(&self) -> BoardSnapshot {
        let page = self.board_page();
        BoardSnapshot {
            page,
            blank_pages: page
                .filter(|p| p.document.is_none())
                .map(|_| self.board.limits.blank_pages),
            strokes: page
                .and_then(|p| self.board.pages.get(&p))
                .map(PageBoard::visible)
                .unwrap_or_default(),
            pens: self.pens(),
        }
    }

    /// Points (and text, by [`BoardLimits::room_points`]'s measure) kept on all boards.
    pub fn board_points(&self) -> usize {
        self.board.points
    }

    /// Who holds the pen, among those present.
    pub fn pens(&self) -> Vec<ParticipantId> {
        self.board
            .pens
            .iter()
            .copied()
            .filter(|p| self.participants.contains_key(p))
            .collect()
    }

    /// The room with other board limits than the defaults.
    pub fn with_board_limits(mut self, limits: BoardLimits) -> Self {
        self.board.limits = limits;
        self
    }

    /// The page shown changed (a document opened, turned or closed, the blank board shown
    /// or closed): strokes being drawn end, and everyone gets the new page's board.
    pub(super) fn board_page_changed(&mut self, out: &mut Vec<Output>) {
        if self.slide.is_some() {
            self.board.blank = None; // a document takes the blank board's place
        }
        self.board.drawing.clear();
        self.forget_those_gone();
        out.push(Output::Broadcast {
            except: None,
            message: ServerMessage::Board {
                board: self.board(),
            },
        });
    }

    pub(super) fn show_blank_board(
        &mut self,
        actor: &Actor,
        page: u32,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("show the blank board")?;
        let pages = self.board.limits.blank_pages;
        if !(1..=pages).contains(&page) {
            return Err(invalid(format!(
                "page {page} is not a page of the blank board (1 to {pages})"
            )));
        }
        let document_was_shown = self.slide.take().is_some();
        if document_was_shown {
            out.push(Output::Broadcast {
                except: None,
                message: ServerMessage::Slide { slide: None },
            });
        }
        if document_was_shown || self.board.blank != Some(page) {
            self.board.blank = Some(page);
            self.board_page_changed(out);
        }
        Ok(())
    }

    pub(super) fn close_blank_board(
        &mut self,
        actor: &Actor,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("close the blank board")?;
        if self.board.blank.take().is_some() && self.slide.is_none() {
            self.board_page_changed(out);
        }
        Ok(())
    }

    pub(super) fn give_pen(
        &mut self,
        actor: &Actor,
        participant: ParticipantId,
        give: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator(if give { "give the pen" } else { "take the pen" })?;
        let target = self.target_mut(participant)?;
        if give && target.moderates() {
            return Err(invalid("moderators may always draw; they need no pen"));
        }
        self.forget_those_gone();
        let board = &mut self.board;
        let changed = if give {
            board.pens.insert(participant)
        } else {
            board.drawing.remove(&participant);
            board.pens.remove(&participant)
        };
        if changed {
            out.push(Output::Broadcast {
                except: None,
                message: ServerMessage::Pens {
                    holders: self.pens(),
                },
            });
        }
        Ok(())
    }

    /// Those who left lose the pen and their counters, so that none of it outgrows the room
    /// (done when the pen changes hands and when the page changes).
    fn forget_those_gone(&mut self) {
        let participants = &self.participants;
        let board = &mut self.board;
        board.pens.retain(|p| participants.contains_key(p));
        board.rates.retain(|p, _| participants.contains_key(p));
        board.drawing.retain(|p, _| participants.contains_key(p));
        board
            .last_pointer
            .retain(|p, _| participants.contains_key(p));
    }

    /// Checks that `actor` may draw now, and takes one of their drawing messages' tokens.
    fn may_draw(&mut self, now: Instant, actor: &Actor) -> Result<BoardPage, Refusal> {
        if !actor.moderator && !self.board.pens.contains(&actor.id) {
            return Err(Refusal {
                code: ErrorCode::MissingGrant,
                message: "you need the pen to draw on the board; the teacher can give it to you"
                    .into(),
                grant: Some("draw"),
            });
        }
        let limits = &self.board.limits;
        let (rate, burst) = (limits.messages_per_second, limits.message_burst);
        let bucket = self
            .board
            .rates
            .entry(actor.id)
            .or_insert_with(|| TokenBucket::new(rate, burst, now));
        if !bucket.try_take(now) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many drawing messages; send points in chunks",
            ));
        }
        self.board_page().ok_or_else(nothing_shown)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn draw(
        &mut self,
        now: Instant,
        actor: &Actor,
        tool: Tool,
        colour: Colour,
        width: u16,
        points: Vec<Point>,
        text: Option<String>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let page = self.may_draw(now, actor)?;
        let limits = &self.board.limits;
        if !(1..=limits.max_width).contains(&width) {
            return Err(invalid(format!(
                "a width is 1 to {} page units",
                limits.max_width
            )));
        }
        let wanted = match tool {
            Tool::Pen | Tool::Highlighter => {
                1..=limits.points_per_message.min(limits.points_per_stroke)
            }
            Tool::Line | Tool::Rectangle | Tool::Ellipse => 2..=2,
            Tool::Text => 1..=1,
        };
        if !wanted.contains(&points.len()) {
            return Err(invalid(format!(
                "a {tool:?} stroke begins with {} to {} points",
                wanted.start(),
                wanted.end()
            )));
        }
        valid_points(&points)?;
        let text = match (tool, text) {
            (Tool::Text, Some(text)) => {
                let chars = text.chars().count();
                if text.trim().is_empty() || chars > limits.text_chars {
                    return Err(invalid(format!(
                        "a text has 1 to {} characters",
                        limits.text_chars
                    )));
                }
                Some(text)
            }
            (Tool::Text, None) => return Err(invalid("a text stroke needs its `text`")),
            (_, Some(_)) => return Err(invalid("only a text stroke has `text`")),
            (_, None) => None,
        };
        let stroke = Stroke {
            id: StrokeId(self.board.next_stroke + 1),
            by: actor.id,
            tool,
            colour,
            width,
            points,
            text,
        };
        let board = &mut self.board;
        let added = weight(&stroke);
        if board.points + added > board.limits.room_points {
            return Err(full(
                "the boards of this room hold all the drawing they may",
            ));
        }
        if !board.pages.contains_key(&page) && board.pages.len() >= board.limits.pages {
            return Err(full(format!(
                "{} pages have drawings already; clear one to draw on another",
                board.limits.pages
            )));
        }
        let cap = 2 * board.limits.strokes_per_page;
        let page_board = board.pages.entry(page).or_default();
        if page_board.strokes.len() >= board.limits.strokes_per_page {
            return Err(full(format!(
                "this page holds {} strokes (erased ones included); clear it to draw more",
                board.limits.strokes_per_page
            )));
        }
        board.next_stroke += 1;
        board.points += added;
        let id = stroke.id;
        page_board.strokes.insert(
            id,
            Kept {
                stroke: stroke.clone(),
                visible: true,
            },
        );
        page_board.record(actor.id, Change::Drew(id), cap);
        board.saves.changed(page, now);
        if tool.is_freehand() {
            board.drawing.insert(actor.id, (page, id));
        } else {
            board.drawing.remove(&actor.id);
        }
        out.push(Output::Broadcast {
            except: None,
            message: ServerMessage::Stroke { stroke },
        });
        Ok(())
    }

    pub(super) fn draw_more(
        &mut self,
        now: Instant,
        actor: &Actor,
        points: Vec<Point>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let page = self.may_draw(now, actor)?;
        let board = &mut self.board;
        let limits = &board.limits;
        if !(1..=limits.points_per_message).contains(&points.len()) {
            return Err(invalid(format!(
                "`draw_more` carries 1 to {} points",
                limits.points_per_message
            )));
        }
        valid_points(&points)?;
        let no_stroke = || invalid("no stroke of yours is being drawn: begin one with `draw`");
        let &(drawn_on, id) = board.drawing.get(&actor.id).ok_or_else(no_stroke)?;
        if drawn_on != page {
            return Err(no_stroke());
        }
        let kept = board
            .pages
            .get_mut(&page)
            .and_then(|p| p.strokes.get_mut(&id))
            .ok_or_else(no_stroke)?;
        if kept.stroke.points.len() + points.len() > limits.points_per_stroke {
            board.drawing.remove(&actor.id);
            return Err(full(format!(
                "a stroke has at most {} points; begin another",
                limits.points_per_stroke
            )));
        }
        if board.points + points.len() > limits.room_points {
            board.drawing.remove(&actor.id);
            return Err(full(
                "the boards of this room hold all the drawing they may",
            ));
        }
        board.points += points.len();
        kept.stroke.points.extend_from_slice(&points);
        board.saves.changed(page, now);
        if kept.visible {
            out.push(Output::Broadcast {
                except: Some(actor.id),
                message: ServerMessage::StrokePoints { id, points },
            });
        }
        Ok(())
    }

    pub(super) fn draw_end(&mut self, actor: &Actor) {
        self.board.drawing.remove(&actor.id);
    }

    pub(super) fn erase(
        &mut self,
        now: Instant,
        actor: &Actor,
        id: StrokeId,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let page = self.may_draw(now, actor)?;
        let board = &mut self.board;
        let cap = 2 * board.limits.strokes_per_page;
        let page_board = board
            .pages
            .get_mut(&page)
            .filter(|p| p.strokes.get(&id).is_some_and(|k| k.visible))
            .ok_or_else(|| invalid(format!("there is no stroke {id} on the page shown")))?;
        let by = page_board.strokes.get(&id).map(|k| k.stroke.by);
        if !actor.moderator && by != Some(actor.id) {
            return Err(Refusal::grant("moderate", "erase what others drew"));
        }
        out.extend(
            page_board
                .set_visible(id, false)
                .map(|message| Output::Broadcast {
                    except: None,
                    message,
                }),
        );
        page_board.record(actor.id, Change::Erased(id), cap);
        board.drawing.retain(|_, (_, drawn)| *drawn != id);
        board.saves.changed(page, now);
        Ok(())
    }

    /// Undoes (or with `redo`, redoes) the actor's own last change on the shown page; with
    /// nothing to undo it does nothing.
    pub(super) fn undo(
        &mut self,
        now: Instant,
        actor: &Actor,
        redo: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        let page = self.may_draw(now, actor)?;
        let board = &mut self.board;
        let Some(page_board) = board.pages.get_mut(&page) else {
            return Ok(());
        };
        let step = if redo {
            let at = page_board.undone.iter().rposition(|s| s.by == actor.id);
            at.map(|at| page_board.undone.remove(at))
        } else {
            let at = page_board.done.iter().rposition(|s| s.by == actor.id);
            at.and_then(|at| page_board.done.remove(at))
        };
        let Some(step) = step else {
            return Ok(());
        };
        let (id, visible) = match step.change {
            Change::Drew(id) => (id, redo),
            Change::Erased(id) => (id, !redo),
        };
        if redo {
            page_board.done.push_back(step);
        } else {
            page_board.undone.push(step);
        }
        if !visible {
            board.drawing.retain(|_, (_, drawn)| *drawn != id);
        }
        board.saves.changed(page, now);
        out.extend(
            page_board
                .set_visible(id, visible)
                .map(|message| Output::Broadcast {
                    except: None,
                    message,
                }),
        );
        Ok(())
    }

    pub(super) fn clear_board(
        &mut self,
        now: Instant,
        actor: &Actor,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("clear the board")?;
        let page = self.may_draw(now, actor)?;
        if let Some(cleared) = self.board.pages.remove(&page) {
            self.board.points -= cleared.weight();
            self.board.drawing.retain(|_, (on, _)| *on != page);
            self.board.saves.changed(page, now);
        }
        out.push(Output::Broadcast {
            except: None,
            message: ServerMessage::Board {
                board: self.board(),
            },
        });
        Ok(())
    }

    pub(super) fn point(
        &mut self,
        now: Instant,
        actor: &Actor,
        at: Option<Point>,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        if !actor.moderator && !self.board.pens.contains(&actor.id) {
            return Err(Refusal {
                code: ErrorCode::MissingGrant,
                message: "you need the pen to point on the board".into(),
                grant: Some("draw"),
            });
        }
        if self.board_page().is_none() {
            return Err(nothing_shown());
        }
        if let Some(at) = at {
            valid_points(&[at])?;
            // Thinned, not refused: a fast pointer loses positions, never its last `null`.
            let interval = self.board.limits.pointer_interval;
            let last = self.board.last_pointer.get(&actor.id);
            if last.is_some_and(|&last| now.saturating_duration_since(last) < interval) {
                return Ok(());
            }
            self.board.last_pointer.insert(actor.id, now);
        }
        out.push(Output::Broadcast {
            except: Some(actor.id),
            message: ServerMessage::Pointer { by: actor.id, at },
        });
        Ok(())
    }
}

fn valid_points(points: &[Point]) -> Result<(), Refusal> {
    if points.iter().all(|p| p.on_page()) {
        Ok(())
    } else {
        Err(invalid(format!(
            "a point lies on the page: 0 to {} in each coordinate",
            classroom_protocol::signal::PAGE_UNITS
        )))
    }
}
