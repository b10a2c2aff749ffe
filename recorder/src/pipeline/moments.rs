//! What the replay's side panel shows at its time besides the chat: the polls as they were
//! asked and closed, their results as they were shown to the class, and the slides turned
//! (`moments.json`). Only what the room broadcast to everyone is in the events file, so the
//! results are the class's view: never who answered what.

use classroom_protocol::DocumentId;
use classroom_protocol::poll::{PollInfo, PollResults};
use classroom_protocol::signal::ServerMessage;
use serde::{Deserialize, Serialize};

use super::timeline::Cuts;
use crate::events::{Event, TimedEvent};

/// One moment on the replay's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moment {
    /// Milliseconds from the replay's start.
    pub at_ms: u64,
    #[serde(flatten)]
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum What {
    /// A poll was asked, or closed (`poll.closed`).
    Poll { poll: Box<PollInfo> },
    /// A poll's results were shown to the class.
    PollResults { results: Box<PollResults> },
    /// The class saw this page of a document.
    Slide {
        document: DocumentId,
        page: u32,
        pages: u32,
    },
    /// No document was shown any more.
    SlideClosed,
}

/// The moments of a recording, in order; a slide turned to the page already shown (a
/// repeated broadcast) is not a new moment.
pub fn moments(events: &[TimedEvent], cuts: &Cuts) -> Vec<Moment> {
    let mut out = Vec::new();
    let mut slide_shown: Option<(DocumentId, u32)> = None;
    for e in events {
        let Event::Room { message } = &e.event else {
            continue;
        };
        let what = match message {
            ServerMessage::Poll { poll } => What::Poll { poll: poll.clone() },
            ServerMessage::PollResults { results } => {
                let mut results = results.clone();
                // The class never sees who answered what; keep it that way in the replay.
                results.answers = None;
                What::PollResults { results }
            }
            ServerMessage::Slide { slide } => {
                let now = slide.map(|s| (s.document, s.page));
                if now == slide_shown {
                    continue;
                }
                slide_shown = now;
                match slide {
                    Some(s) => What::Slide {
                        document: s.document,
                        page: s.page,
                        pages: s.pages,
                    },
                    None => What::SlideClosed,
                }
            }
            _ => continue,
        };
        out.push(Moment {
            at_ms: cuts.replay_ms_clamped(e.t_ms as f64) as u64,
            what,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use classroom_protocol::UserId;
    use classroom_protocol::poll::{NamedAnswer, PollAnswer, PollId, PollKind};
    use classroom_protocol::signal::{ParticipantId, Slide};

    use super::*;

    fn at(t_ms: u64, message: ServerMessage) -> TimedEvent {
        TimedEvent {
            t_ms,
            event: Event::Room { message },
        }
    }

    fn poll(closed: bool) -> PollInfo {
        PollInfo {
            id: PollId(1),
            kind: PollKind::SingleChoice,
            question: "Which organelle?".into(),
            options: vec!["Nucleus".into(), "Ribosome".into()],
            anonymous: false,
            changeable: false,
            quiz: false,
            asked_at_ms: 0,
            closes_at_ms: None,
            closes_in_ms: None,
            closed,
        }
    }

    fn slide(page: u32) -> ServerMessage {
        ServerMessage::Slide {
            slide: Some(Slide {
                document: DocumentId(4),
                page,
                pages: 9,
                by: ParticipantId(1),
                browse: false,
            }),
        }
    }

    #[test]
    fn polls_results_and_slides_keep_their_replay_time_without_names() {
        let results = PollResults {
            poll: poll(true),
            correct: None,
            answered: 1,
            correct_count: None,
            tallies: vec![1, 0],
            values: vec![],
            answers: Some(vec![NamedAnswer {
                user_id: UserId(7),
                name: "Sam".into(),
                answer: PollAnswer::Choices(vec![0]),
            }]),
        };
        let events = [
            at(500, slide(1)),
            TimedEvent {
                t_ms: 1000,
                event: Event::Paused,
            },
            TimedEvent {
                t_ms: 3000,
                event: Event::Resumed,
            },
            at(3500, slide(3)),
            at(3600, slide(3)),
            at(
                4000,
                ServerMessage::Poll {
                    poll: Box::new(poll(false)),
                },
            ),
            at(
                6000,
                ServerMessage::Poll {
                    poll: Box::new(poll(true)),
                },
            ),
            at(
                6500,
                ServerMessage::PollResults {
                    results: Box::new(results),
                },
            ),
            at(7000, ServerMessage::Slide { slide: None }),
            at(7100, ServerMessage::Hands { hands: vec![] }),
        ];
        let cuts = Cuts::from_events(&events);
        let found = moments(&events, &cuts);
        let summary: Vec<(u64, &str)> = found
            .iter()
            .map(|m| {
                let kind = match &m.what {
                    What::Poll { poll } if poll.closed => "closed",
                    What::Poll { .. } => "asked",
                    What::PollResults { .. } => "results",
                    What::Slide { .. } => "slide",
                    What::SlideClosed => "no slide",
                };
                (m.at_ms, kind)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (500, "slide"),
                (1500, "slide"),
                (2000, "asked"),
                (4000, "closed"),
                (4500, "results"),
                (5000, "no slide"),
            ]
        );
        let What::PollResults { results } = &found[4].what else {
            panic!("{found:?}")
        };
        assert_eq!(
            (results.tallies.clone(), results.answers.clone()),
            (vec![1, 0], None)
        );
        let json = serde_json::to_value(&found[1]).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({"at_ms": 1500, "type": "slide", "document": 4, "page": 3, "pages": 9})
        );
    }
}
