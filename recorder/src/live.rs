//! Recording while live: one writer per recorded room, on its own thread, subscribed in
//! process to every track of the room.
//!
//! The SFU hands a local subscriber its packets on a bounded queue and drops what does not
//! fit (counted), so a slow disk costs recorded packets, never forwarded ones. Each writer
//! thread drains that queue into the room's folder: one append-only file per track
//! ([`crate::track_file`]) and the events file ([`crate::events`]), flushed at least every
//! second, so a crash loses at most the last second. Every file operation, the folder's
//! creation included, happens on that thread: nothing on the runtime waits for the disk.
//!
//! A task on the runtime watches the SFU's loss counter ([`crate::drops`]): the writer may be
//! blocked inside a write on a stalled disk and could not count anything. Losses reach the
//! metrics within a second, the recording is marked degraded and a warning is logged once per
//! burst, and the events file notes them (when the writer gets to it).
//!
//! Pausing drops the subscription (nothing flows, nothing is written); resuming subscribes
//! again, which also asks every publisher for a keyframe, so the replay resumes cleanly.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use classroom_media::driver::{LocalDrops, LocalSubscription, MediaHandle};
use classroom_media::{LocalEvent, LocalTrackId, TrackKind};
use classroom_protocol::{LessonId, RoomName};
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::drops::{Alarm, DropAlarm};
use crate::events::{self, Event, TimedEvent};
use crate::stats::RecorderStats;
use crate::track_file::{self, TrackCodec, TrackHeader};

/// How often buffered writes reach the file.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often the SFU's loss counter is looked at.
const DROP_CHECK: Duration = Duration::from_secs(1);
pub const EVENTS_FILE: &str = "events.jsonl";
/// Written once the recording's job is in the queue.
pub const QUEUED_MARKER: &str = "queued";

/// A recording that ended and waits for its replay job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRecording {
    pub lesson: LessonId,
    /// The room recorded: the lesson's main room, or one of its breakout rooms (whose replay
    /// is linked to the lesson with its round and room).
    pub room: RoomName,
    /// The recording's folder name under the recordings directory.
    pub name: String,
}

#[derive(Debug, Error)]
pub enum RecordError {
    #[error("cannot write the recording: {0}")]
    Io(#[from] std::io::Error),
    #[error("the media plane refused the recorder's subscription")]
    Subscribe,
}

enum Control {
    Event(Instant, Event),
    Pause(Instant),
    Resume(Instant, LocalSubscription),
    Stop(Instant),
}

/// A recording under way, as the rest of the server reaches it.
struct Active {
    /// To its writer thread.
    control: mpsc::UnboundedSender<Control>,
    /// To its loss watch: the current subscription's counter (`None` while paused).
    drops: watch::Sender<Option<LocalDrops>>,
}

/// The recordings of this node's rooms.
pub struct LiveRecorder {
    dir: PathBuf,
    media: MediaHandle,
    stats: Arc<RecorderStats>,
    active: Mutex<HashMap<RoomName, Active>>,
    finished: mpsc::UnboundedSender<FinishedRecording>,
    /// Packets the SFU keeps for a recording that falls behind.
    queue_packets: usize,
}

impl LiveRecorder {
    /// Recordings go under `dir` (one folder each); ended ones are announced on `finished`.
    /// The SFU keeps up to `queue_packets` packets for a recording that falls behind.
    pub fn new(
        dir: PathBuf,
        media: MediaHandle,
        stats: Arc<RecorderStats>,
        finished: mpsc::UnboundedSender<FinishedRecording>,
        queue_packets: usize,
    ) -> Self {
        LiveRecorder {
            dir,
            media,
            stats,
            active: Mutex::new(HashMap::new()),
            finished,
            queue_packets,
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, HashMap<RoomName, Active>> {
        self.active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn is_recording(&self, room: &RoomName) -> bool {
        self.active().contains_key(room)
    }

    /// Starts recording `room` into a new folder; returns its name, or `None` when the room is
    /// already recorded (it keeps its recording). Touches no file: the folder is made by the recording's thread
    /// (a stalled disk must not hold up the caller).
    pub async fn start(
        &self,
        room: &RoomName,
        lesson: LessonId,
    ) -> Result<Option<String>, RecordError> {
        if self.is_recording(room) {
            return Ok(None);
        }
        let now = Instant::now();
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // The room's name (`lesson-<lesson>`, or a breakout room's): rooms of one lesson
        // started in the same millisecond ("record every room") get folders of their own.
        let name = format!("{room}-{wall}");
        let folder = self.dir.join(&name);
        let subscription = self.subscribe(room).await?;
        let (drops, drops_rx) = watch::channel(Some(subscription.drop_counter()));
        let (control, controls) = mpsc::unbounded_channel();
        let started = Event::Started {
            lesson,
            room: room.clone(),
            started_at_ms: wall,
        };
        let finished = self.finished.clone();
        let stats = self.stats.clone();
        let runtime = tokio::runtime::Handle::current();
        let done = FinishedRecording {
            lesson,
            room: room.clone(),
            name: name.clone(),
        };
        let thread_room = room.clone();
        self.stats.recording_started();
        let spawned = std::thread::Builder::new()
            .name(format!("record-{lesson}"))
            .spawn(move || {
                let writer = match Writer::create(&folder, now, stats.clone()) {
                    Ok(mut writer) => match writer.event(now, started) {
                        Ok(()) => writer,
                        Err(e) => {
                            error!(room = %thread_room, error = %e, "cannot start the recording's events file; the lesson is not recorded");
                            stats.recording_ended();
                            return;
                        }
                    },
                    Err(e) => {
                        error!(room = %thread_room, folder = %folder.display(), error = %e, "cannot create the recording's folder; the lesson is not recorded");
                        stats.recording_ended();
                        return;
                    }
                };
                let result = runtime.block_on(run(writer, subscription, controls));
                stats.recording_ended();
                if let Err(e) = result {
                    warn!(room = %thread_room, error = %e, "the recording stopped on an error; what was written is kept");
                }
                let _ = finished.send(done);
            });
        if let Err(e) = spawned {
            self.stats.recording_ended();
            return Err(e.into());
        }
        tokio::spawn(watch_drops(
            name.clone(),
            drops_rx,
            control.clone(),
            self.stats.clone(),
        ));
        self.active()
            .insert(room.clone(), Active { control, drops });
        info!(%room, recording = %name, "recording started");
        Ok(Some(name))
    }

    pub fn pause(&self, room: &RoomName) {
        if let Some(active) = self.active().get(room) {
            let _ = active.drops.send(None);
            let _ = active.control.send(Control::Pause(Instant::now()));
        }
    }

    pub async fn resume(&self, room: &RoomName) -> Result<(), RecordError> {
        if !self.is_recording(room) {
            return Ok(());
        }
        let subscription = self.subscribe(room).await?;
        if let Some(active) = self.active().get(room) {
            let _ = active.drops.send(Some(subscription.drop_counter()));
            let _ = active
                .control
                .send(Control::Resume(Instant::now(), subscription));
        }
        Ok(())
    }

    /// Stops the room's recording; its job is queued once the files are complete.
    pub fn stop(&self, room: &RoomName) {
        let active = self.active().remove(room);
        if let Some(active) = active {
            let _ = active.control.send(Control::Stop(Instant::now()));
        }
    }

    /// Something that happened in a recorded room (ignored when it is not recorded).
    pub fn note(&self, room: &RoomName, at: Instant, event: Event) {
        self.send(room, Control::Event(at, event));
    }

    fn send(&self, room: &RoomName, control: Control) {
        if let Some(active) = self.active().get(room) {
            let _ = active.control.send(control);
        }
    }

    async fn subscribe(&self, room: &RoomName) -> Result<LocalSubscription, RecordError> {
        let peer = classroom_media::local::next_local_peer();
        self.media
            .add_local_subscriber_with_queue(peer, room.clone(), self.queue_packets)
            .await
            .map_err(|_| RecordError::Subscribe)
    }
}

/// The writer loop of one recording: packets and controls in, files out, flushed each second.
async fn run(
    mut writer: Writer,
    subscription: LocalSubscription,
    mut controls: mpsc::UnboundedReceiver<Control>,
) -> Result<(), RecordError> {
    let mut subscription = Some(subscription);
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        let packet = async {
            match subscription.as_mut() {
                Some(s) => s.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            control = controls.recv() => match control {
                Some(Control::Event(at, event)) => writer.event(at, event)?,
                Some(Control::Pause(at)) => {
                    subscription = None;
                    writer.event(at, Event::Paused)?;
                    writer.flush()?;
                }
                Some(Control::Resume(at, resumed)) => {
                    subscription = Some(resumed);
                    writer.event(at, Event::Resumed)?;
                }
                Some(Control::Stop(at)) => {
                    writer.event(at, Event::Stopped { recovered: false })?;
                    writer.flush()?;
                    return Ok(());
                }
                // The server is going down: what was written is recovered on the next start.
                None => {
                    writer.flush()?;
                    return Ok(());
                }
            },
            event = packet => match event {
                Some(event) => writer.local(Instant::now(), event)?,
                // The SFU stopped: keep what we have, the server is going down.
                None => subscription = None,
            },
            _ = tick.tick() => writer.flush()?,
        }
    }
}

/// Watches a recording's losses from the runtime (never from its writer, which may be blocked
/// on the disk): counts them, marks the recording degraded and logs once per burst, and has
/// the writer note them in the events file. Ends with the recording.
async fn watch_drops(
    name: String,
    mut counter: watch::Receiver<Option<LocalDrops>>,
    control: mpsc::UnboundedSender<Control>,
    stats: Arc<RecorderStats>,
) {
    let mut alarm = DropAlarm::default();
    let mut tick = tokio::time::interval(DROP_CHECK);
    let alarmed = |alarm: Alarm| match alarm {
        Alarm::Began => {
            stats.degraded(true);
            warn!(recording = %name, "the recording is degraded: the disk does not keep up and packets are dropped from it (live forwarding is not affected)");
        }
        Alarm::Ended { packets, lasted } => {
            stats.degraded(false);
            warn!(recording = %name, packets, lasted_ms = lasted.as_millis() as u64, "the recording keeps up again; packets were lost from it");
        }
    };
    loop {
        tokio::select! {
            changed = counter.changed() => {
                if changed.is_err() || control.is_closed() {
                    break;
                }
                alarm.restart();
            }
            _ = tick.tick() => {
                if control.is_closed() {
                    break;
                }
            }
        }
        let now = Instant::now();
        let total = counter.borrow().as_ref().map(LocalDrops::get);
        let seen = alarm.observe(now, total);
        if seen.new > 0 {
            stats.dropped(seen.new);
            let _ = control.send(Control::Event(now, Event::Dropped { packets: seen.new }));
        }
        if let Some(a) = seen.alarm {
            alarmed(a);
        }
    }
    if let Some(a) = alarm.finish() {
        alarmed(a);
    }
}

/// The files of one recording.
struct Writer {
    folder: PathBuf,
    started: Instant,
    events: BufWriter<File>,
    tracks: HashMap<LocalTrackId, Option<BufWriter<File>>>,
    stats: Arc<RecorderStats>,
}

impl Writer {
    fn create(folder: &Path, started: Instant, stats: Arc<RecorderStats>) -> std::io::Result<Self> {
        fs::create_dir_all(folder)?;
        let events = File::options()
            .create(true)
            .append(true)
            .open(folder.join(EVENTS_FILE))?;
        Ok(Writer {
            folder: folder.to_path_buf(),
            started,
            events: BufWriter::new(events),
            tracks: HashMap::new(),
            stats,
        })
    }

    fn since_start(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    fn event(&mut self, at: Instant, event: Event) -> std::io::Result<()> {
        let t_ms = self.since_start(at).as_millis() as u64;
        let line = events::line(&TimedEvent { t_ms, event });
        self.events.write_all(line.as_bytes())?;
        self.stats.wrote(line.len());
        Ok(())
    }

    fn local(&mut self, now: Instant, event: LocalEvent) -> std::io::Result<()> {
        match event {
            LocalEvent::TrackStarted {
                track,
                publisher,
                mid,
                kind,
            } => {
                // A track seen again after a resume keeps its file.
                if self.tracks.contains_key(&track) {
                    return Ok(());
                }
                self.tracks.insert(track, None);
                self.stats.track_recorded();
                self.event(
                    now,
                    Event::TrackStarted {
                        track: track.0,
                        peer: publisher.0,
                        mid: mid.to_string(),
                        video: kind == TrackKind::Video,
                    },
                )
            }
            LocalEvent::TrackEnded { track } => {
                self.event(now, Event::TrackEnded { track: track.0 })
            }
            LocalEvent::Packet {
                track,
                codec,
                arrival,
                packet,
            } => {
                let arrival_us = self.since_start(arrival).as_micros() as u64;
                let file = match self.tracks.entry(track).or_insert(None) {
                    Some(file) => file,
                    slot @ None => {
                        // Opened at the first packet: only packets name the codec.
                        let path = self.folder.join(format!("track-{}.rtp", track.0));
                        let mut file =
                            BufWriter::new(File::options().create(true).append(true).open(path)?);
                        let header = TrackHeader {
                            track: track.0,
                            codec: TrackCodec::from(codec),
                        };
                        track_file::write_header(&mut file, &header)?;
                        slot.insert(file)
                    }
                };
                let written = track_file::write_record(
                    file,
                    packet.seq_no,
                    packet.timestamp,
                    arrival_us,
                    packet.marker,
                    packet.keyframe,
                    &packet.payload,
                )?;
                self.stats.wrote(written);
                Ok(())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.events.flush()?;
        for file in self.tracks.values_mut().flatten() {
            file.flush()?;
        }
        Ok(())
    }
}

/// Recordings under `dir` whose job was never queued (the server stopped or crashed while
/// they ran, or before queueing them). Each gets a `stopped` line (marked recovered) at the
/// time of its last written packet or event, and is returned for queueing.
pub fn unfinished(dir: &Path) -> std::io::Result<Vec<FinishedRecording>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let folder = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !folder.is_dir() || folder.join(QUEUED_MARKER).exists() {
            continue;
        }
        let text = fs::read_to_string(folder.join(EVENTS_FILE)).unwrap_or_default();
        let parsed = events::parse(&text);
        let Some((lesson, room)) = parsed.iter().find_map(|e| match &e.event {
            Event::Started { lesson, room, .. } => Some((*lesson, room.clone())),
            _ => None,
        }) else {
            warn!(folder = %folder.display(), "a recording without a start event is left alone");
            continue;
        };
        if !parsed
            .iter()
            .any(|e| matches!(e.event, Event::Stopped { .. }))
        {
            let last_ms = last_written_ms(&folder, &parsed);
            let mut file = File::options()
                .append(true)
                .open(folder.join(EVENTS_FILE))?;
            // A cut-off last line must not swallow ours.
            if !text.is_empty() && !text.ends_with('\n') {
                file.write_all(b"\n")?;
            }
            let stopped = TimedEvent {
                t_ms: last_ms,
                event: Event::Stopped { recovered: true },
            };
            file.write_all(events::line(&stopped).as_bytes())?;
            file.sync_all()?;
            info!(recording = %name, "an unfinished recording was found; its replay is queued");
        }
        found.push(FinishedRecording { lesson, room, name });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

/// The time of the last packet or event written to a recording, in ms since its start.
fn last_written_ms(folder: &Path, parsed: &[TimedEvent]) -> u64 {
    let mut last = parsed.iter().map(|e| e.t_ms).max().unwrap_or(0);
    if let Ok(entries) = fs::read_dir(folder) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rtp")
                && let Ok(file) = File::open(&path)
                && let Ok(mut reader) = track_file::Reader::new(file)
            {
                // Record by record: a long lesson's track does not fit in memory.
                while let Ok(Some(record)) = reader.next_record() {
                    last = last.max(record.arrival_us / 1000);
                }
            }
        }
    }
    last
}
