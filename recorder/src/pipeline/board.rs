//! The board's video track of a replay: the slides and the drawing on them, drawn again from
//! the events file with tiny-skia ([`crate::board`]), no browser.
//!
//! Only changes make frames: the board is replayed message by message and a frame is drawn
//! when what the class saw changed, at most one per [`FRAME_MS`] (a pen stroke arrives in
//! chunks every 50 ms or so: ten frames a second draw it as it grew). Each frame is a PNG in
//! the work folder, and an ffconcat list gives each its duration; ffmpeg reads that list as
//! one more input of the run that composes the main view, so the board costs no encoding of
//! its own and nothing at all while it is not shown or does not change (most of a lesson).
//! The alternative, raw frames piped at a fixed rate, would push 3.7 MB per frame through a
//! pipe and ffmpeg's scaler for every frame of the lesson, changed or not.
//!
//! Limits: the frame is the replay's picture; a page image is read only if its file and its
//! declared pixel count are within bounds, at most [`CACHED_PAGES`] are kept (fitted to the
//! frame); a missing or broken page image shows as a blank page (counted, logged); the
//! strokes are bounded by [`SceneLimits`]; drawing stops with an error at the job's deadline.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use classroom_protocol::DocumentId;
use classroom_protocol::signal::BoardPage;
use thiserror::Error;
use tiny_skia::Pixmap;
use tracing::warn;

use super::timeline::Cuts;
use crate::board::layers::Painter;
use crate::board::raster::{self, Backdrop, Lettering, RenderError};
use crate::board::scene::{Scene, SceneLimits};
use crate::events::{Event, TimedEvent};

/// The board's id among the replay's video tracks (recorded tracks count up from 1).
pub const BOARD_TRACK: u64 = u64::MAX;
/// At most one frame per this many milliseconds.
pub const FRAME_MS: f64 = 100.0;
/// Page images kept decoded (fitted to the frame, 3.7 MB each at 720p).
const CACHED_PAGES: usize = 4;
/// A page image file larger than this is not read (poppler's pages are far smaller).
const MAX_PAGE_BYTES: u64 = 32 << 20;
/// Nor one declaring more pixels than this (a 1600-pixel-wide A4 page has 3.6 million).
const MAX_PAGE_PIXELS: u64 = 16 << 20;
/// A document's text is read up to this size for its pages' titles.
const MAX_TEXT_BYTES: u64 = 16 << 20;
/// A chapter title's length, in characters.
const TITLE_CHARS: usize = 80;

/// Why the board could not be drawn.
#[derive(Debug, Error)]
pub enum BoardError {
    #[error("drawing the board's {frames} frames took longer than {secs} seconds and was stopped")]
    TimedOut { frames: usize, secs: u64 },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("cannot encode a frame of the board: {0}")]
    Encode(String),
    #[error("cannot write the board's frames: {0}")]
    Io(#[from] std::io::Error),
}

/// How to draw one replay's board.
#[derive(Debug, Clone)]
pub struct BoardJob<'a> {
    /// Where course documents are (`documents/<id>/pages/page-<n>.png`).
    pub documents: &'a Path,
    /// Where the frames and their list go.
    pub work: &'a Path,
    pub width: u32,
    pub height: u32,
    pub deadline: Instant,
    /// For the error: the time limit the deadline came from.
    pub limit_secs: u64,
    pub limits: SceneLimits,
}

/// The board's track, ready for ffmpeg.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardTrack {
    /// The ffconcat list of its frames.
    pub list: PathBuf,
    /// Where the board was shown, in replay milliseconds, in order.
    pub shown: Vec<(f64, f64)>,
    /// Frames drawn.
    pub frames: usize,
    /// Pages shown blank because their image could not be had.
    pub blank_pages: usize,
}

/// One stretch of the board's track, from `at_ms` to the next.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// Nothing shown (the overlay is off): the gap frame.
    Gap {
        at_ms: f64,
    },
    Frame {
        at_ms: f64,
        file: String,
    },
}

impl Entry {
    fn at_ms(&self) -> f64 {
        match self {
            Entry::Gap { at_ms } | Entry::Frame { at_ms, .. } => *at_ms,
        }
    }
}

const GAP_FILE: &str = "gap.png";
const LIST_FILE: &str = "board.ffconcat";

/// Draws the board of a recording: `None` when no board or slide was shown.
pub fn render_board(
    job: &BoardJob,
    events: &[TimedEvent],
    cuts: &Cuts,
    duration_ms: f64,
) -> Result<Option<BoardTrack>, BoardError> {
    if !events.iter().any(|e| shows_a_page(&e.event)) {
        return Ok(None);
    }
    fs::create_dir_all(job.work)?;
    let mut film = Film {
        job,
        pages: Pages::new(job.documents),
        painter: Painter::new(job.width, job.height, system_lettering()),
        entries: Vec::new(),
        frames: 0,
        dirty: None,
    };
    let mut scene = Scene::new(job.limits);
    for e in events {
        let Event::Room { message } = &e.event else {
            continue;
        };
        let now = cuts.replay_ms_clamped(e.t_ms as f64);
        film.fade_until(&mut scene, now)?;
        film.before_change(&scene, now)?;
        if scene.apply(now, message) {
            film.dirty.get_or_insert(now);
        }
    }
    film.fade_until(&mut scene, duration_ms)?;
    if let Some(since) = film.dirty.take() {
        film.emit(&scene, since)?;
    }
    film.finish(duration_ms)
}

/// The system's fonts for text strokes (Debian's fonts-dejavu-core has DejaVu Sans); without
/// any, text strokes are left out of the replay.
fn system_lettering() -> Option<Lettering> {
    let mut fonts = resvg::usvg::fontdb::Database::new();
    fonts.load_system_fonts();
    let lettering = Lettering::new(fonts);
    if lettering.is_none() {
        warn!(
            "no fonts are installed: text written on the board is left out of replays (apt-get install fonts-dejavu-core)"
        );
    }
    lettering
}

fn shows_a_page(event: &Event) -> bool {
    use classroom_protocol::signal::ServerMessage;
    matches!(
        event,
        Event::Room {
            message: ServerMessage::Board { board }
        } if board.page.is_some()
    ) || matches!(
        event,
        Event::Room {
            message: ServerMessage::Slide { slide: Some(_) }
        }
    )
}

/// The frames being made.
struct Film<'a> {
    job: &'a BoardJob<'a>,
    pages: Pages,
    painter: Painter,
    entries: Vec<Entry>,
    frames: usize,
    /// When the first change not yet in a frame happened.
    dirty: Option<f64>,
}

impl Film<'_> {
    /// A change comes at `now`: the changes before it make a frame if they are a frame's
    /// time old (else they join this one's frame).
    fn before_change(&mut self, scene: &Scene, now: f64) -> Result<(), BoardError> {
        if let Some(since) = self.dirty
            && now - since >= FRAME_MS
        {
            self.dirty = None;
            self.emit(scene, since)?;
        }
        Ok(())
    }

    /// Pointers fade at their time, as changes of their own.
    fn fade_until(&mut self, scene: &mut Scene, now: f64) -> Result<(), BoardError> {
        while let Some(fade) = scene.next_fade().filter(|f| *f <= now) {
            self.before_change(scene, fade)?;
            if scene.fade(fade) {
                self.dirty.get_or_insert(fade);
            }
        }
        Ok(())
    }

    fn emit(&mut self, scene: &Scene, at_ms: f64) -> Result<(), BoardError> {
        if Instant::now() >= self.job.deadline {
            return Err(BoardError::TimedOut {
                frames: self.frames,
                secs: self.job.limit_secs,
            });
        }
        let entry = match scene.page() {
            None => Entry::Gap { at_ms },
            Some(page) => {
                let image = self.pages.fitted(page, self.job.width, self.job.height);
                let backdrop = image.map_or(Backdrop::Blank, Backdrop::Page);
                let strokes: Vec<_> = scene.strokes().collect();
                let frame = self
                    .painter
                    .paint(page, backdrop, &strokes, scene.pointers())?;
                self.frames += 1;
                let file = format!("f{:06}.png", self.frames);
                write_png(&frame, &self.job.work.join(&file))?;
                Entry::Frame { at_ms, file }
            }
        };
        match self.entries.last_mut() {
            Some(last) if last.at_ms() >= at_ms => *last = entry,
            Some(Entry::Gap { .. }) if matches!(entry, Entry::Gap { .. }) => {}
            _ => self.entries.push(entry),
        }
        Ok(())
    }

    /// Writes the gap frame and the list; `None` when no frame shows a page.
    fn finish(self, duration_ms: f64) -> Result<Option<BoardTrack>, BoardError> {
        if self.frames == 0 {
            return Ok(None);
        }
        let mut entries = self.entries;
        if entries.first().is_none_or(|e| e.at_ms() > 0.0) {
            entries.insert(0, Entry::Gap { at_ms: 0.0 });
        }
        let mut gap =
            Pixmap::new(self.job.width, self.job.height).ok_or(RenderError::FrameSize {
                width: self.job.width,
                height: self.job.height,
            })?;
        gap.fill(tiny_skia::Color::BLACK);
        write_png(&gap, &self.job.work.join(GAP_FILE))?;
        let mut list = String::from("ffconcat version 1.0\n");
        let mut shown = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let from = entry.at_ms().min(duration_ms);
            let to = entries
                .get(i + 1)
                .map_or(duration_ms, |next| next.at_ms().min(duration_ms));
            let file = match entry {
                Entry::Gap { .. } => GAP_FILE,
                Entry::Frame { file, .. } => {
                    if to > from {
                        match shown.last_mut() {
                            Some((_, end)) if *end == from => *end = to,
                            _ => shown.push((from, to)),
                        }
                    }
                    file.as_str()
                }
            };
            list.push_str(&format!(
                "file '{file}'\nduration {:.3}\n",
                ((to - from) / 1000.0).max(0.001)
            ));
            if i + 1 == entries.len() {
                // The concat demuxer honours the last file's duration only if it is listed
                // once more.
                list.push_str(&format!("file '{file}'\n"));
            }
        }
        let path = self.job.work.join(LIST_FILE);
        fs::write(&path, list)?;
        Ok(Some(BoardTrack {
            list: path,
            shown,
            frames: self.frames,
            blank_pages: self.pages.broken,
        }))
    }
}

fn write_png(frame: &Pixmap, path: &Path) -> Result<(), BoardError> {
    // tiny-skia's encoder (png's default compression): 13 ms for a 720p frame of a page with
    // a few strokes, 36 ms with 200. png's fastest mode was no quicker here, for files five
    // times larger.
    let png = frame
        .encode_png()
        .map_err(|e| BoardError::Encode(e.to_string()))?;
    fs::write(path, png)?;
    Ok(())
}

/// Reads at most `max` bytes of a file; `None` if it is missing, unreadable or larger.
fn read_bounded(path: &Path, max: u64) -> Option<Vec<u8>> {
    let file = fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= max).then_some(bytes)
}

/// The page images of course documents, fitted to the frame, the last few kept.
struct Pages {
    documents: PathBuf,
    cache: Vec<(BoardPage, Option<Pixmap>)>,
    /// Pages whose image could not be had.
    broken: usize,
}

impl Pages {
    fn new(documents: &Path) -> Pages {
        Pages {
            documents: documents.to_path_buf(),
            cache: Vec::new(),
            broken: 0,
        }
    }

    /// The page's image fitted to the frame; `None` for the blank board, or a page whose
    /// image is missing or broken (it shows blank).
    fn fitted(&mut self, page: BoardPage, width: u32, height: u32) -> Option<&Pixmap> {
        let document = page.document?;
        if let Some(at) = self.cache.iter().position(|(p, _)| *p == page) {
            // Most recently used last.
            let hit = self.cache.remove(at);
            self.cache.push(hit);
        } else {
            let path = self
                .documents
                .join(document.to_string())
                .join("pages")
                .join(format!("page-{}.png", page.page));
            let image = read_bounded(&path, MAX_PAGE_BYTES)
                .ok_or_else(|| "missing, unreadable or too large".to_string())
                .and_then(|png| {
                    raster::decode_page(&png, MAX_PAGE_PIXELS).map_err(|e| e.to_string())
                })
                .and_then(|image| {
                    raster::fit_page(&image, width, height)
                        .ok_or_else(|| "cannot be fitted to the frame".to_string())
                });
            let image = match image {
                Ok(image) => Some(image),
                Err(reason) => {
                    self.broken += 1;
                    warn!(%document, page = page.page, %reason, "a slide's image cannot be used; the replay shows a blank page");
                    None
                }
            };
            if self.cache.len() >= CACHED_PAGES {
                self.cache.remove(0);
            }
            self.cache.push((page, image));
        }
        self.cache.last().and_then(|(_, image)| image.as_ref())
    }
}

/// The titles of documents' pages (the first line of each page's text), read once per
/// document from `documents/<id>/pages/text.json`.
pub struct PageTitles {
    documents: PathBuf,
    texts: HashMap<DocumentId, Vec<String>>,
}

impl PageTitles {
    pub fn new(documents: &Path) -> PageTitles {
        PageTitles {
            documents: documents.to_path_buf(),
            texts: HashMap::new(),
        }
    }

    /// The page's title, if its document's text is there and the page has any.
    pub fn title(&mut self, document: DocumentId, page: u32) -> Option<String> {
        let documents = &self.documents;
        let texts = self.texts.entry(document).or_insert_with(|| {
            let path = documents
                .join(document.to_string())
                .join("pages")
                .join("text.json");
            read_bounded(&path, MAX_TEXT_BYTES)
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default()
        });
        let text = texts.get(usize::try_from(page).ok()?.checked_sub(1)?)?;
        first_line(text)
    }
}

/// The first line with words, its spaces collapsed, cut to [`TITLE_CHARS`].
fn first_line(text: &str) -> Option<String> {
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut title: String = words.join(" ").chars().take(TITLE_CHARS).collect();
    if words.join(" ").chars().count() > TITLE_CHARS {
        title.push('…');
    }
    Some(title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_title_is_the_first_line_with_words() {
        assert_eq!(
            first_line("\n   \n  Linear    equations \n x + y = 2"),
            Some("Linear equations".into())
        );
        assert_eq!(first_line(" \n\t"), None);
        let long = "word ".repeat(40);
        let title = first_line(&long).expect("a title");
        assert_eq!(title.chars().count(), TITLE_CHARS + 1);
        assert!(title.ends_with('…'));
    }
}
