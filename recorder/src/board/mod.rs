//! The board in the replay, with no I/O: what the class saw of the slides and the drawing at
//! each moment ([`scene`], replayed from the room's broadcasts in the events file), one frame
//! of it drawn with tiny-skia ([`raster`]: page image and strokes in, RGBA out; [`layers`]
//! draws a frame on the last one's settled strokes), and a chapter per slide shown. The replay job's driver that reads page images and writes frames for
//! ffmpeg is [`crate::pipeline::board`].

pub mod layers;
pub mod raster;
pub mod scene;

use classroom_protocol::DocumentId;
use classroom_protocol::signal::{BoardPage, ServerMessage};

use crate::events::{Event, TimedEvent};
use crate::pipeline::timeline::{Chapter, Cuts};

/// A chapter each time the class was shown another page: a slide, titled by `title` (the
/// page's first line of text) or "Slide <n>", or a page of the blank board.
pub fn page_chapters(
    events: &[TimedEvent],
    cuts: &Cuts,
    mut title: impl FnMut(DocumentId, u32) -> Option<String>,
) -> Vec<Chapter> {
    let mut out = Vec::new();
    let mut shown: Option<BoardPage> = None;
    for e in events {
        let Event::Room { message } = &e.event else {
            continue;
        };
        let page = match message {
            ServerMessage::Slide { slide } => slide.map(|s| BoardPage {
                document: Some(s.document),
                page: s.page,
            }),
            // The blank board is told by `board` only; a document's page by `slide` first.
            ServerMessage::Board { board } => match board.page {
                Some(page) if page.document.is_none() => Some(page),
                Some(_) => continue,
                None => None,
            },
            _ => continue,
        };
        if page == shown {
            continue;
        }
        shown = page;
        let Some(page) = page else { continue };
        let title = match page.document {
            Some(document) => {
                title(document, page.page).unwrap_or_else(|| format!("Slide {}", page.page))
            }
            None if page.page == 1 => "Whiteboard".to_string(),
            None => format!("Whiteboard, page {}", page.page),
        };
        out.push(Chapter {
            at_ms: cuts.replay_ms_clamped(e.t_ms as f64) as u64,
            title,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use classroom_protocol::signal::{BoardSnapshot, ParticipantId, Slide};

    use super::*;

    fn at(t_ms: u64, message: ServerMessage) -> TimedEvent {
        TimedEvent {
            t_ms,
            event: Event::Room { message },
        }
    }

    fn slide(page: u32) -> ServerMessage {
        ServerMessage::Slide {
            slide: Some(Slide {
                document: DocumentId(4),
                page,
                pages: 3,
                by: ParticipantId(1),
                browse: false,
            }),
        }
    }

    fn board(page: Option<BoardPage>) -> ServerMessage {
        ServerMessage::Board {
            board: BoardSnapshot {
                page,
                ..BoardSnapshot::default()
            },
        }
    }

    #[test]
    fn each_page_shown_is_a_chapter_titled_by_its_first_line() {
        let doc = |page| {
            Some(BoardPage {
                document: Some(DocumentId(4)),
                page,
            })
        };
        let blank = |page| {
            Some(BoardPage {
                document: None,
                page,
            })
        };
        let events = [
            at(1000, slide(1)),
            at(1000, board(doc(1))),
            at(2000, slide(2)),
            at(2000, board(doc(2))),
            at(2500, slide(2)),
            at(3000, slide(3)),
            at(4000, ServerMessage::Slide { slide: None }),
            at(4000, board(blank(1))),
            at(5000, board(blank(2))),
            at(6000, board(None)),
            at(7000, slide(1)),
            TimedEvent {
                t_ms: 8000,
                event: Event::Stopped { recovered: false },
            },
        ];
        let cuts = Cuts::from_events(&events);
        let titles = |document: DocumentId, page| {
            assert_eq!(document, DocumentId(4));
            match page {
                1 => Some("Leaves".to_string()),
                2 => Some("Roots".to_string()),
                _ => None,
            }
        };
        let chapters: Vec<(u64, String)> = page_chapters(&events, &cuts, titles)
            .into_iter()
            .map(|c| (c.at_ms, c.title))
            .collect();
        assert_eq!(
            chapters,
            [
                (1000, "Leaves"),
                (2000, "Roots"),
                (3000, "Slide 3"),
                (4000, "Whiteboard"),
                (5000, "Whiteboard, page 2"),
                (7000, "Leaves"),
            ]
            .map(|(at, t)| (at, t.to_string()))
        );
    }
}
