//! Rooms keep their state (signaling's `RoomState`: chat, stage, hands, mute, recording, the
//! document shown) and their boards (page by page) in the database, so that a restart of this
//! node, or another node taking a lesson over, opens the room as it was. Saves are queued to
//! one writer task that writes the latest state of each room and the latest board of each
//! page (a burst of chat is one write, not one per message) and never holds a room up.

use std::collections::HashMap;
use std::sync::Arc;

use classroom_courses::store::Store;
use classroom_protocol::{LessonId, RoomName};
use classroom_signaling::media::MediaFuture;
use classroom_signaling::{BoardChange, KeptBoard, RoomState, RoomStates};
use tokio::sync::mpsc;

/// What the writer keeps of a room: its state, or one page's board (by its key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    State,
    Board(String),
    /// Apart from the state, so that a state saved after a forget is written after it.
    Forget,
}

/// A change for the writer.
enum Change {
    State(LessonId, Box<RoomState>),
    Board(LessonId, BoardChange),
    /// The lesson ended: forget the room, boards and all.
    Forget,
}

/// [`RoomStates`] in the course store.
pub struct StoredRoomStates {
    store: Store,
    writes: mpsc::UnboundedSender<(RoomName, Change)>,
}

impl StoredRoomStates {
    /// Starts the writer task (it ends when this is dropped).
    pub fn start(store: Store) -> Arc<Self> {
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_changes(store.clone(), queue));
        Arc::new(StoredRoomStates { store, writes })
    }
}

/// The key of a board's page in the store: `document-4-page-2`, or `blank-page-3`.
fn page_key(change: &BoardChange) -> String {
    let page = change.page.page;
    match change.page.document {
        Some(document) => format!("document-{document}-page-{page}"),
        None => format!("blank-page-{page}"),
    }
}

impl RoomStates for StoredRoomStates {
    fn load<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> MediaFuture<'a, Result<Option<RoomState>, String>> {
        Box::pin(async move {
            let stored = self
                .store
                .room_state(room.as_str())
                .await
                .map_err(|e| e.to_string())?;
            let boards = self
                .store
                .room_boards(room.as_str())
                .await
                .map_err(|e| e.to_string())?;
            // A row this server cannot read (written by hand, or damaged) is not worth more
            // than an empty room (or page): it says so and the room opens without it.
            let mut state = match stored {
                Some(json) => serde_json::from_str(&json)
                    .map_err(|e| format!("the stored state is not readable: {e}"))?,
                None if boards.is_empty() => return Ok(None),
                None => RoomState::default(),
            };
            for (page, json) in boards {
                match serde_json::from_str::<KeptBoard>(&json) {
                    Ok(board) => state.boards.push(board),
                    Err(error) => {
                        tracing::warn!(%room, page, %error, "a stored board is not readable; the page opens blank");
                    }
                }
            }
            Ok(Some(state))
        })
    }

    fn save(&self, room: &RoomName, lesson: LessonId, state: RoomState) {
        let _ = self
            .writes
            .send((room.clone(), Change::State(lesson, Box::new(state))));
    }

    fn save_board(&self, room: &RoomName, lesson: LessonId, change: BoardChange) {
        let _ = self
            .writes
            .send((room.clone(), Change::Board(lesson, change)));
    }

    fn forget(&self, room: &RoomName) {
        let _ = self.writes.send((room.clone(), Change::Forget));
    }
}

/// Changes waiting for the writer: the latest of each room's part, in the order they came.
#[derive(Default)]
struct Pending {
    changes: HashMap<(RoomName, Part), Change>,
    order: Vec<(RoomName, Part)>,
}

impl Pending {
    fn note(&mut self, room: RoomName, change: Change) {
        let part = match &change {
            Change::Board(_, board) => Part::Board(page_key(board)),
            Change::State(..) => Part::State,
            Change::Forget => {
                // Nothing of the room noted before is worth writing any more.
                self.changes.retain(|(r, _), _| *r != room);
                self.order.retain(|(r, _)| *r != room);
                Part::Forget
            }
        };
        let key = (room, part);
        if self.changes.insert(key.clone(), change).is_none() {
            self.order.push(key);
        }
    }
}

async fn write_changes(store: Store, mut queue: mpsc::UnboundedReceiver<(RoomName, Change)>) {
    let mut pending = Pending::default();
    while let Some((room, change)) = queue.recv().await {
        pending.note(room, change);
        // What arrived while the last writes ran: only each part's latest counts.
        while let Ok((room, change)) = queue.try_recv() {
            pending.note(room, change);
        }
        for key in std::mem::take(&mut pending.order) {
            let Some(change) = pending.changes.remove(&key) else {
                continue;
            };
            let (room, _) = key;
            if let Err(error) = write(&store, &room, change).await {
                tracing::warn!(%room, %error, "cannot store what the room keeps; the next change tries again");
            }
        }
    }
}

async fn write(store: &Store, room: &RoomName, change: Change) -> Result<(), String> {
    let now = time::OffsetDateTime::now_utc();
    let encoded = |value: Result<String, serde_json::Error>| {
        value.map_err(|e| format!("cannot encode what the room keeps: {e}"))
    };
    let result = match change {
        Change::State(lesson, state) => {
            let json = encoded(serde_json::to_string(&state))?;
            store
                .save_room_state(room.as_str(), lesson, &json, now)
                .await
        }
        Change::Board(lesson, change) => match &change.board {
            Some(board) => {
                let page = page_key(&change);
                let json = encoded(serde_json::to_string(board))?;
                store
                    .save_room_board(room.as_str(), lesson, &page, &json, now)
                    .await
            }
            None => {
                store
                    .forget_room_board(room.as_str(), &page_key(&change))
                    .await
            }
        },
        Change::Forget => store.forget_room_state(room.as_str()).await,
    };
    result.map_err(|e| e.to_string())
}
