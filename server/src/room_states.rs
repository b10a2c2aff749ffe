//! Rooms keep their state (signaling's `RoomState`: chat, stage, hands, mute, recording, the
//! document shown) in the database, so that a restart of this node, or another node taking a
//! lesson over, opens the room as it was. Saves are queued to one writer task that writes the
//! latest state of each room (a burst of chat is one write, not one per message) and never
//! holds a room up.

use std::collections::HashMap;
use std::sync::Arc;

use classroom_courses::store::Store;
use classroom_protocol::{LessonId, RoomName};
use classroom_signaling::media::MediaFuture;
use classroom_signaling::{RoomState, RoomStates};
use tokio::sync::mpsc;

/// A change for the writer: a state to keep, or `None` to forget the room.
type Change = (RoomName, Option<(LessonId, RoomState)>);

/// [`RoomStates`] in the course store.
pub struct StoredRoomStates {
    store: Store,
    writes: mpsc::UnboundedSender<Change>,
}

impl StoredRoomStates {
    /// Starts the writer task (it ends when this is dropped).
    pub fn start(store: Store) -> Arc<Self> {
        let (writes, queue) = mpsc::unbounded_channel();
        tokio::spawn(write_changes(store.clone(), queue));
        Arc::new(StoredRoomStates { store, writes })
    }
}

impl RoomStates for StoredRoomStates {
    fn load<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> MediaFuture<'a, Result<Option<RoomState>, String>> {
        Box::pin(async move {
            let Some(json) = self
                .store
                .room_state(room.as_str())
                .await
                .map_err(|e| e.to_string())?
            else {
                return Ok(None);
            };
            // A row this server cannot read (written by hand, or damaged) is not worth more
            // than an empty room: it says so and the room opens empty.
            serde_json::from_str(&json)
                .map(Some)
                .map_err(|e| format!("the stored state is not readable: {e}"))
        })
    }

    fn save(&self, room: &RoomName, lesson: LessonId, state: RoomState) {
        let _ = self.writes.send((room.clone(), Some((lesson, state))));
    }

    fn forget(&self, room: &RoomName) {
        let _ = self.writes.send((room.clone(), None));
    }
}

async fn write_changes(store: Store, mut queue: mpsc::UnboundedReceiver<Change>) {
    let mut pending: HashMap<RoomName, Option<(LessonId, RoomState)>> = HashMap::new();
    let mut order: Vec<RoomName> = Vec::new();
    while let Some((room, change)) = queue.recv().await {
        note(&mut pending, &mut order, room, change);
        // What arrived while the last writes ran: only each room's latest counts.
        while let Ok((room, change)) = queue.try_recv() {
            note(&mut pending, &mut order, room, change);
        }
        for room in order.drain(..) {
            let Some(change) = pending.remove(&room) else {
                continue;
            };
            let result = match change {
                Some((lesson, state)) => match serde_json::to_string(&state) {
                    Ok(json) => {
                        store
                            .save_room_state(
                                room.as_str(),
                                lesson,
                                &json,
                                time::OffsetDateTime::now_utc(),
                            )
                            .await
                    }
                    Err(e) => {
                        tracing::error!(%room, error = %e, "cannot encode the room's state");
                        continue;
                    }
                },
                None => store.forget_room_state(room.as_str()).await,
            };
            if let Err(e) = result {
                tracing::warn!(%room, error = %e, "cannot store the room's state; the next change tries again");
            }
        }
    }
}

fn note(
    pending: &mut HashMap<RoomName, Option<(LessonId, RoomState)>>,
    order: &mut Vec<RoomName>,
    room: RoomName,
    change: Option<(LessonId, RoomState)>,
) {
    if pending.insert(room.clone(), change).is_none() {
        order.push(room);
    }
}
