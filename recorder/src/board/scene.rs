//! What the class saw of the board, replayed from the room's broadcasts in the events file:
//! the page shown (a document's, the blank board's, or none), its strokes as drawn so far,
//! and the pointers. Messages in, "did the picture change" out; time is an argument (replay
//! milliseconds), used only for the pointers, which fade as they do in the live room.
//!
//! The events file is our own server's output, but it is read from disk, so nothing in it is
//! trusted: points off the page are dropped, widths are clamped, and [`SceneLimits`] bounds
//! what a page can hold (the room's own limits, so a real lesson never reaches them).

use std::collections::BTreeMap;

use classroom_protocol::signal::{
    BoardPage, BoardSnapshot, ParticipantId, Point, ServerMessage, Slide, Stroke, StrokeId,
};

/// A pointer shows this long after its last position (as in the live room's canvas).
pub const POINTER_FADE_MS: f64 = 4000.0;

/// What one page may hold while it is replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SceneLimits {
    pub strokes: usize,
    pub points_per_stroke: usize,
    /// Points of all the page's strokes together.
    pub points: usize,
    pub max_width: u16,
    /// Characters of one text.
    pub text_chars: usize,
}

impl Default for SceneLimits {
    /// The room's defaults (`BoardLimits` in signaling).
    fn default() -> Self {
        SceneLimits {
            strokes: 2_000,
            points_per_stroke: 5_000,
            points: 1_000_000,
            max_width: 1_000,
            text_chars: 500,
        }
    }
}

/// The board as the class saw it at one moment.
#[derive(Debug, Default)]
pub struct Scene {
    limits: SceneLimits,
    page: Option<BoardPage>,
    strokes: BTreeMap<StrokeId, Stroke>,
    points: usize,
    /// Each pointer's position and when it was put there.
    pointers: BTreeMap<ParticipantId, (Point, f64)>,
}

impl Scene {
    pub fn new(limits: SceneLimits) -> Scene {
        Scene {
            limits,
            ..Scene::default()
        }
    }

    /// The page shown, if any.
    pub fn page(&self) -> Option<BoardPage> {
        self.page
    }

    /// The strokes on the page, oldest first (later ones lie on top).
    pub fn strokes(&self) -> impl Iterator<Item = &Stroke> + Clone {
        self.strokes.values()
    }

    /// Where the pointers are.
    pub fn pointers(&self) -> impl Iterator<Item = Point> + '_ {
        self.pointers.values().map(|(at, _)| *at)
    }

    /// When the next pointer fades, if one is shown.
    pub fn next_fade(&self) -> Option<f64> {
        self.pointers
            .values()
            .map(|(_, since)| since + POINTER_FADE_MS)
            .min_by(f64::total_cmp)
    }

    /// Takes away the pointers faded by `now_ms`; whether any was.
    pub fn fade(&mut self, now_ms: f64) -> bool {
        let before = self.pointers.len();
        self.pointers
            .retain(|_, (_, since)| *since + POINTER_FADE_MS > now_ms);
        self.pointers.len() != before
    }

    /// One message the room sent to everyone, at `now_ms`; whether what is shown changed.
    /// Messages that are not about the board change nothing.
    pub fn apply(&mut self, now_ms: f64, message: &ServerMessage) -> bool {
        match message {
            ServerMessage::Board { board } => self.show(board),
            ServerMessage::Slide { slide } => self.slide(slide.as_ref()),
            ServerMessage::Stroke { stroke } => self.add(stroke),
            ServerMessage::StrokePoints { id, points } => self.extend(*id, points),
            ServerMessage::StrokeErased { id } => self.erase(*id),
            ServerMessage::Pointer { by, at } => self.point(now_ms, *by, *at),
            _ => false,
        }
    }

    /// A page's whole board: a page turned to, a page cleared, the board opened or closed.
    fn show(&mut self, board: &BoardSnapshot) -> bool {
        let had_something = self.page.is_some() || !self.strokes.is_empty();
        self.page = board.page;
        self.strokes.clear();
        self.points = 0;
        self.pointers.clear();
        if self.page.is_some() {
            for stroke in &board.strokes {
                self.add(stroke);
            }
        }
        had_something || self.page.is_some()
    }

    /// A slide turn is followed by the new page's `board`; the page changes here already, so
    /// that a lost `board` leaves no stale drawing on another page.
    fn slide(&mut self, slide: Option<&Slide>) -> bool {
        let page = slide.map(|s| BoardPage {
            document: Some(s.document),
            page: s.page,
        });
        let shown_document = self.page.is_some_and(|p| p.document.is_some());
        if page == self.page || (page.is_none() && !shown_document) {
            return false;
        }
        self.page = page;
        self.strokes.clear();
        self.points = 0;
        self.pointers.clear();
        true
    }

    /// A stroke drawn, or shown again (undo of an erase, redo of a drawing): it replaces any
    /// stroke of its id.
    fn add(&mut self, stroke: &Stroke) -> bool {
        if self.page.is_none() {
            return false;
        }
        let mut stroke = stroke.clone();
        stroke.points.retain(|p| p.on_page());
        stroke.points.truncate(self.limits.points_per_stroke);
        stroke.width = stroke.width.clamp(1, self.limits.max_width);
        if let Some(text) = &mut stroke.text
            && let Some((cut, _)) = text.char_indices().nth(self.limits.text_chars)
        {
            text.truncate(cut);
        }
        if stroke.points.is_empty() {
            return false;
        }
        let replaced = self.strokes.get(&stroke.id).map_or(0, |s| s.points.len());
        let points = self.points - replaced + stroke.points.len();
        if points > self.limits.points
            || (replaced == 0 && self.strokes.len() >= self.limits.strokes)
        {
            return false;
        }
        self.points = points;
        self.strokes.insert(stroke.id, stroke);
        true
    }

    fn extend(&mut self, id: StrokeId, points: &[Point]) -> bool {
        let Some(stroke) = self.strokes.get_mut(&id) else {
            return false;
        };
        let room = (self.limits.points_per_stroke
            - stroke.points.len().min(self.limits.points_per_stroke))
        .min(self.limits.points - self.points.min(self.limits.points));
        let before = stroke.points.len();
        stroke
            .points
            .extend(points.iter().copied().filter(|p| p.on_page()).take(room));
        self.points += stroke.points.len() - before;
        stroke.points.len() != before
    }

    fn erase(&mut self, id: StrokeId) -> bool {
        match self.strokes.remove(&id) {
            Some(stroke) => {
                self.points -= stroke.points.len();
                true
            }
            None => false,
        }
    }

    fn point(&mut self, now_ms: f64, by: ParticipantId, at: Option<Point>) -> bool {
        match at.filter(|p| p.on_page()) {
            Some(at) if self.page.is_some() => {
                self.pointers.insert(by, (at, now_ms));
                true
            }
            _ => self.pointers.remove(&by).is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use classroom_protocol::DocumentId;
    use classroom_protocol::signal::{Colour, Tool};

    use super::*;

    fn pen(id: u64, points: &[(u16, u16)]) -> ServerMessage {
        ServerMessage::Stroke {
            stroke: Stroke {
                id: StrokeId(id),
                by: ParticipantId(1),
                tool: Tool::Pen,
                colour: Colour([0, 0, 0]),
                width: 30,
                points: points.iter().map(|&(x, y)| Point(x, y)).collect(),
                text: None,
            },
        }
    }

    fn board(page: u32, strokes: Vec<Stroke>) -> ServerMessage {
        ServerMessage::Board {
            board: BoardSnapshot {
                page: Some(BoardPage {
                    document: Some(DocumentId(3)),
                    page,
                }),
                blank_pages: None,
                strokes,
                pens: vec![],
            },
        }
    }

    fn ids(scene: &Scene) -> Vec<u64> {
        scene.strokes().map(|s| s.id.0).collect()
    }

    #[test]
    fn strokes_grow_vanish_on_undo_come_back_on_redo_and_go_on_clear() {
        let mut scene = Scene::default();
        assert!(!scene.apply(0.0, &pen(1, &[(10, 10)])), "nothing shown yet");
        assert!(scene.apply(0.0, &board(1, vec![])));
        assert!(scene.apply(10.0, &pen(1, &[(10, 10)])));
        assert!(scene.apply(
            20.0,
            &ServerMessage::StrokePoints {
                id: StrokeId(1),
                points: vec![Point(20, 20), Point(30, 30)],
            }
        ));
        assert!(scene.apply(30.0, &pen(2, &[(50, 50), (60, 60)])));
        assert_eq!(ids(&scene), [1, 2]);
        assert_eq!(scene.strokes().next().map(|s| s.points.len()), Some(3));
        // Undo: the room erases stroke 2; redo: it sends it whole again.
        assert!(scene.apply(40.0, &ServerMessage::StrokeErased { id: StrokeId(2) }));
        assert_eq!(ids(&scene), [1]);
        assert!(!scene.apply(41.0, &ServerMessage::StrokeErased { id: StrokeId(2) }));
        assert!(scene.apply(50.0, &pen(2, &[(50, 50), (60, 60)])));
        assert_eq!(ids(&scene), [1, 2]);
        // Clear: the same page's board with no strokes.
        assert!(scene.apply(60.0, &board(1, vec![])));
        assert_eq!(ids(&scene), Vec::<u64>::new());
        // Chat and the like change nothing.
        assert!(!scene.apply(70.0, &ServerMessage::Hands { hands: vec![] }));
    }

    #[test]
    fn a_turn_shows_the_new_page_even_if_its_board_is_lost() {
        let mut scene = Scene::default();
        scene.apply(0.0, &board(1, vec![]));
        scene.apply(1.0, &pen(1, &[(10, 10)]));
        let turn = |page| ServerMessage::Slide {
            slide: Some(Slide {
                document: DocumentId(3),
                page,
                pages: 4,
                by: ParticipantId(1),
                browse: false,
            }),
        };
        assert!(!scene.apply(2.0, &turn(1)), "the page shown already");
        assert!(scene.apply(3.0, &turn(2)));
        assert_eq!(scene.page().map(|p| p.page), Some(2));
        assert_eq!(ids(&scene), Vec::<u64>::new());
        assert!(scene.apply(4.0, &ServerMessage::Slide { slide: None }));
        assert_eq!(scene.page(), None);
    }

    #[test]
    fn hostile_strokes_are_bounded_and_points_off_the_page_dropped() {
        let limits = SceneLimits {
            strokes: 2,
            points_per_stroke: 3,
            points: 5,
            max_width: 100,
            text_chars: 3,
        };
        let mut scene = Scene::new(limits);
        scene.apply(0.0, &board(1, vec![]));
        assert!(
            !scene.apply(0.0, &pen(1, &[(10_001, 0), (u16::MAX, 5)])),
            "no point on the page"
        );
        scene.apply(0.0, &pen(2, &[(1, 1), (2, 2), (3, 3), (4, 4)]));
        scene.apply(
            0.0,
            &ServerMessage::StrokePoints {
                id: StrokeId(2),
                points: vec![Point(5, 5); 100],
            },
        );
        assert_eq!(scene.strokes().next().map(|s| s.points.len()), Some(3));
        scene.apply(0.0, &pen(3, &[(1, 1), (2, 2)]));
        assert!(!scene.apply(0.0, &pen(4, &[(1, 1)])), "two strokes at most");
        assert_eq!(ids(&scene), [2, 3]);
        scene.apply(
            0.0,
            &ServerMessage::StrokePoints {
                id: StrokeId(3),
                points: vec![Point(5, 5); 100],
            },
        );
        assert_eq!(scene.strokes().map(|s| s.points.len()).sum::<usize>(), 5);
        let mut long = pen(6, &[(1, 1)]);
        if let ServerMessage::Stroke { stroke } = &mut long {
            stroke.tool = Tool::Text;
            stroke.text = Some("ééé long".into());
        }
        scene.apply(0.0, &ServerMessage::StrokeErased { id: StrokeId(2) });
        scene.apply(0.0, &long);
        assert_eq!(
            scene.strokes().last().and_then(|s| s.text.clone()),
            Some("ééé".to_string()),
            "texts are cut to their limit"
        );
        let mut wide = pen(5, &[(1, 1)]);
        if let ServerMessage::Stroke { stroke } = &mut wide {
            stroke.width = u16::MAX;
        }
        scene.apply(0.0, &ServerMessage::StrokeErased { id: StrokeId(3) });
        scene.apply(0.0, &wide);
        assert_eq!(
            scene
                .strokes()
                .find(|s| s.id == StrokeId(5))
                .map(|s| s.width),
            Some(100)
        );
    }

    #[test]
    fn pointers_fade_and_stop() {
        let mut scene = Scene::default();
        let at = |x| ServerMessage::Pointer {
            by: ParticipantId(1),
            at: Some(Point(x, x)),
        };
        assert!(!scene.apply(0.0, &at(5)), "nothing shown to point at");
        scene.apply(0.0, &board(1, vec![]));
        assert!(scene.apply(100.0, &at(5)));
        assert_eq!(scene.next_fade(), Some(4100.0));
        assert!(!scene.fade(4000.0));
        assert!(scene.fade(4100.0));
        scene.apply(5000.0, &at(6));
        assert!(scene.apply(
            5100.0,
            &ServerMessage::Pointer {
                by: ParticipantId(1),
                at: None,
            }
        ));
        assert_eq!(scene.pointers().count(), 0);
    }
}
