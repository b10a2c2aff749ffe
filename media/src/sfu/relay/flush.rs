//! Handing batches over: once per burst, with what this side wants of the other's tracks and
//! the rates of its own simulcast layers, when due.

use std::time::Instant;

use classroom_protocol::RoomName;
use rustc_hash::FxHashMap;

use super::super::in_process::LocalRole;
use super::super::{Publication, RtcMid, Sfu};
use super::{Item, LinkId, REPORT_INTERVAL, RelayMessage, WANTS_INTERVAL, Want};
use crate::{PeerId, TrackKind};

impl Sfu {
    /// Hands every link's gathered batch over (once per burst of input: the driver polls the
    /// output until it is idle), with the wants and layer reports that are due.
    pub(in crate::sfu) fn flush_relays(&mut self, now: Instant) {
        if self.relays.is_empty() {
            return;
        }
        let wants_due = self.relays.dirty || self.relays.next_wants.is_none_or(|at| now >= at);
        let reports_due = self.relays.next_report.is_none_or(|at| now >= at);
        if wants_due || reports_due {
            if wants_due {
                self.relays.dirty = false;
                self.relays.next_wants = Some(now + WANTS_INTERVAL);
            }
            if reports_due {
                self.relays.next_report = Some(now + REPORT_INTERVAL);
            }
            let links: Vec<(RoomName, LinkId)> = self
                .relays
                .rooms
                .iter()
                .flat_map(|(room, links)| links.links.iter().map(|l| (room.clone(), l.id)))
                .collect();
            for (room, id) in links {
                if wants_due {
                    self.push_wants(now, &room, id);
                }
                if reports_due {
                    self.push_reports(now, &room, id);
                }
            }
        }
        // Without an allocation: this runs once per burst.
        for links in self.relays.rooms.values_mut() {
            for link in &mut links.links {
                link.asked.clear();
                let before = link.end.stats().items_dropped;
                if !link.end.flush() {
                    link.closed = true;
                }
                self.stats.relay_items_dropped += link.end.stats().items_dropped - before;
            }
        }
    }

    /// Tells the other side what this side's subscribers take of its tracks, where that
    /// changed.
    fn push_wants(&mut self, now: Instant, room: &RoomName, id: LinkId) {
        let home = self.relays.rooms.get(room).is_some_and(|r| r.home);
        let in_process = self.local_rooms.get(room).is_some_and(|members| {
            members.iter().any(|p| {
                self.locals
                    .get(p)
                    .is_some_and(|l| l.role == LocalRole::Subscriber)
            })
        });
        let mut wanted: FxHashMap<(PeerId, RtcMid), Want> = FxHashMap::default();
        for (publisher, owner) in &self.relays.owners {
            if *owner != id {
                continue;
            }
            let Some(local) = self.locals.get(publisher) else {
                continue;
            };
            for (mid, publication) in &local.publications {
                if let Some(want) = self.want_of(now, publication, home, in_process) {
                    wanted.insert((*publisher, *mid), want);
                }
            }
        }
        let Some(link) = self.link_mut(room, id) else {
            return;
        };
        let mut ended: Vec<(PeerId, RtcMid)> = link
            .told
            .keys()
            .filter(|key| !wanted.contains_key(key))
            .copied()
            .collect();
        ended.sort_by_key(|(peer, mid)| (*peer, mid.to_string()));
        for (publisher, mid) in ended {
            link.told.remove(&(publisher, mid));
            link.end.push(RelayMessage(Item::Want {
                publisher,
                mid,
                want: None,
            }));
        }
        for (key, want) in wanted {
            if link.told.get(&key) != Some(&want) {
                link.told.insert(key, want.clone());
                link.end.push(RelayMessage(Item::Want {
                    publisher: key.0,
                    mid: key.1,
                    want: Some(want),
                }));
            }
        }
    }

    /// What this side takes of a relayed publication: everything for the room's in-process
    /// subscribers (they take the best layer) and, at the home, of audio (speakers); else
    /// the layers its slots forward or switch to (every layer while one has none yet).
    fn want_of(
        &self,
        now: Instant,
        publication: &Publication,
        home: bool,
        in_process: bool,
    ) -> Option<Want> {
        if in_process || (home && publication.kind == TrackKind::Audio) {
            return Some(Want::All);
        }
        if publication.subscribers.is_empty() {
            return None;
        }
        if publication.kind == TrackKind::Audio || !publication.layers.is_simulcast() {
            return Some(Want::All);
        }
        let mut rids = Vec::new();
        for (subscriber, subscriber_mid) in &publication.subscribers {
            let layer = self
                .peers
                .get(subscriber)
                .and_then(|p| p.slots.iter().find(|s| s.mid == *subscriber_mid))
                .map(|s| (s.forwarder.layer.current, s.forwarder.layer.target));
            match layer {
                Some((None, None)) => return Some(Want::All),
                Some((current, target)) => {
                    for rid in [current, target].into_iter().flatten() {
                        if !rids.contains(&rid) {
                            rids.push(rid);
                        }
                    }
                }
                None => {}
            }
        }
        if rids.is_empty() && publication.layers.ranked(now).is_empty() {
            return Some(Want::All);
        }
        rids.sort_by_key(|rid| rid.to_string());
        Some(Want::Layers(rids))
    }

    /// Reports the rates of this side's simulcast publications in the room.
    fn push_reports(&mut self, now: Instant, room: &RoomName, id: LinkId) {
        let mut reports = Vec::new();
        let remote = self.rooms.get(room).into_iter().flatten().filter_map(|p| {
            self.peers
                .get(p)
                .filter(|peer| peer.publish_allowed)
                .map(|peer| (*p, &peer.publications))
        });
        for (publisher, publications) in remote {
            for (mid, publication) in publications {
                if !publication.layers.0.is_empty() {
                    reports.push((publisher, *mid, publication.layers.ranked(now)));
                }
            }
        }
        let Some(link) = self.link_mut(room, id) else {
            return;
        };
        for (publisher, mid, rates) in reports {
            link.end.push(RelayMessage(Item::Layers {
                publisher,
                mid,
                rates,
            }));
        }
    }
}
