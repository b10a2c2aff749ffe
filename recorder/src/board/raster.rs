//! Draws one frame of the board with tiny-skia: a page (a slide's image, or the blank board's
//! white page) contained in the replay's picture on black, the strokes over it as the live
//! room's canvas draws them (`web-client/js/board.js`: round caps and joins, highlighters
//! see-through and under the ink, widths in thousandths of the page's width), and the
//! pointers. Pixels in, pixels out; no file is read or written here.
//!
//! Text strokes are drawn by resvg as an SVG `<text>` with the fonts a [`Lettering`] holds
//! (the system's, loaded once per job by the driver); without it they are not drawn.

use std::sync::Arc;

use classroom_protocol::signal::{PAGE_UNITS, Point, Stroke, Tool};
use resvg::usvg;
use tiny_skia::{
    Color, FillRule, FilterQuality, LineCap, LineJoin, Paint, PathBuilder, Pixmap, PixmapPaint,
    Rect, Transform,
};

/// The live canvas draws highlighters at this opacity.
const HIGHLIGHTER_ALPHA: f32 = 0.35;
/// The pointer: a red dot, 85% opaque, of 6 pixels' radius on a 720-pixel-high picture.
const POINTER_RGBA: [u8; 4] = [255, 0, 0, 217];
const POINTER_RADIUS_PER_HEIGHT: f32 = 6.0 / 720.0;
/// The blank board's page is 16:9 (as the live room lays it out).
const BLANK_ASPECT: f32 = 16.0 / 9.0;

/// Why a page image cannot be used (the frame then shows a blank page).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("not a PNG image")]
    NotPng,
    #[error("the image is {width}x{height} pixels; at most {max} pixels are drawn")]
    TooLarge { width: u32, height: u32, max: u64 },
    #[error("the image cannot be decoded: {0}")]
    Undecodable(String),
}

/// Why a frame cannot be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("a frame of {width}x{height} pixels cannot be drawn")]
    FrameSize { width: u32, height: u32 },
}

/// Families tried first for text, in order (Debian's, then others' common ones); else the
/// first family the fonts have.
const TEXT_FAMILIES: [&str; 4] = ["DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial"];
/// The live canvas writes text from the top of its letters; an SVG from their baseline,
/// about this much of the size lower.
const ASCENT: f32 = 0.8;

/// The fonts text strokes are written with.
#[derive(Clone)]
pub struct Lettering {
    options: Arc<usvg::Options<'static>>,
    family: String,
}

impl std::fmt::Debug for Lettering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lettering")
            .field("family", &self.family)
            .finish()
    }
}

impl Lettering {
    /// Writes with `fonts` (a sans-serif family of theirs); `None` when they have none.
    pub fn new(mut fonts: usvg::fontdb::Database) -> Option<Lettering> {
        let has = |family: &str| {
            fonts
                .faces()
                .any(|face| face.families.iter().any(|(name, _)| name == family))
        };
        let family = TEXT_FAMILIES
            .iter()
            .find(|family| has(family))
            .map(|family| family.to_string())
            .or_else(|| {
                fonts
                    .faces()
                    .find_map(|face| face.families.first().map(|(name, _)| name.clone()))
            })?;
        fonts.set_sans_serif_family(family.clone());
        let options = usvg::Options {
            fontdb: Arc::new(fonts),
            font_family: family.clone(),
            ..usvg::Options::default()
        };
        Some(Lettering {
            options: Arc::new(options),
            family,
        })
    }

    /// The family text is written in.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// Writes `text` with the top left of its letters at `at`, `size` pixels high.
    fn write(&self, frame: &mut Pixmap, text: &str, at: (f32, f32), size: f32, [r, g, b]: [u8; 3]) {
        // What XML cannot carry is left out; the rest is escaped.
        let escaped: String = text
            .chars()
            .filter(|c| !c.is_control())
            .map(|c| match c {
                '&' => "&amp;".to_string(),
                '<' => "&lt;".to_string(),
                '>' => "&gt;".to_string(),
                '"' => "&quot;".to_string(),
                c => c.to_string(),
            })
            .collect();
        let svg = format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}"><text x="{}" y="{}" font-family="sans-serif" font-size="{size}" fill="#{r:02x}{g:02x}{b:02x}">{escaped}</text></svg>"##,
            frame.width(),
            frame.height(),
            at.0,
            at.1 + size * ASCENT,
        );
        if let Ok(tree) = usvg::Tree::from_str(&svg, &self.options) {
            resvg::render(&tree, Transform::identity(), &mut frame.as_mut());
        }
    }
}

/// What lies under the strokes.
#[derive(Debug, Clone, Copy)]
pub enum Backdrop<'a> {
    /// A slide, already fitted to the frame by [`fit_page`].
    Page(&'a Pixmap),
    /// The blank board, or a slide whose image could not be had.
    Blank,
}

/// Decodes a page image (PNG) of at most `max_pixels`, reading its declared size before any
/// pixel, so that a hostile file costs no more memory than a legitimate one.
pub fn decode_page(png: &[u8], max_pixels: u64) -> Result<Pixmap, PageError> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    // The signature, then the IHDR chunk: length, "IHDR", width, height (big-endian).
    if png.len() < 24 || !png.starts_with(SIGNATURE) || &png[12..16] != b"IHDR" {
        return Err(PageError::NotPng);
    }
    let be = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    let (width, height) = (be(16), be(20));
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(PageError::TooLarge {
            width,
            height,
            max: max_pixels,
        });
    }
    Pixmap::decode_png(png).map_err(|e| PageError::Undecodable(e.to_string()))
}

/// Where a page of `page` proportions lies in the frame: as large as fits, centred.
fn page_rect(frame: (u32, u32), page: (f32, f32)) -> (f32, f32, f32, f32) {
    let (fw, fh) = (frame.0 as f32, frame.1 as f32);
    let scale = (fw / page.0.max(1.0)).min(fh / page.1.max(1.0));
    let (w, h) = (page.0 * scale, page.1 * scale);
    ((fw - w) / 2.0, (fh - h) / 2.0, w, h)
}

/// The page image scaled to where it lies in a frame of `width` x `height` (done once per
/// page, not per frame).
pub fn fit_page(image: &Pixmap, width: u32, height: u32) -> Option<Pixmap> {
    let (_, _, w, h) = page_rect(
        (width, height),
        (image.width() as f32, image.height() as f32),
    );
    let mut fitted = Pixmap::new(w.round().max(1.0) as u32, h.round().max(1.0) as u32)?;
    let paint = PixmapPaint {
        quality: FilterQuality::Bilinear,
        ..PixmapPaint::default()
    };
    let transform = Transform::from_scale(
        fitted.width() as f32 / image.width() as f32,
        fitted.height() as f32 / image.height() as f32,
    );
    fitted.fill(Color::WHITE);
    fitted.draw_pixmap(0, 0, image.as_ref(), &paint, transform, None);
    Some(fitted)
}

/// One frame: the backdrop, the strokes (oldest first) and the pointers.
pub fn render<'s>(
    width: u32,
    height: u32,
    backdrop: Backdrop<'_>,
    strokes: impl Iterator<Item = &'s Stroke> + Clone,
    pointers: impl Iterator<Item = Point>,
) -> Result<Pixmap, RenderError> {
    let mut canvas = Canvas::new(width, height, backdrop)?;
    canvas.strokes(strokes);
    canvas.pointers(pointers);
    Ok(canvas.into_pixmap())
}

/// A frame being drawn: the backdrop first, then strokes and pointers over it. A canvas can
/// be cloned to draw more on a copy (see [`super::layers`]).
#[derive(Debug, Clone)]
pub struct Canvas {
    frame: Pixmap,
    place: Place,
    lettering: Option<Lettering>,
}

impl Canvas {
    /// Black, with the backdrop's page contained in it.
    pub fn new(width: u32, height: u32, backdrop: Backdrop<'_>) -> Result<Canvas, RenderError> {
        let mut frame =
            Pixmap::new(width, height).ok_or(RenderError::FrameSize { width, height })?;
        frame.fill(Color::BLACK);
        let page = match backdrop {
            Backdrop::Page(image) => {
                let (x, y, _, _) = page_rect(
                    (width, height),
                    (image.width() as f32, image.height() as f32),
                );
                let (x, y) = (x.round(), y.round());
                frame.draw_pixmap(
                    x as i32,
                    y as i32,
                    image.as_ref(),
                    &PixmapPaint::default(),
                    Transform::identity(),
                    None,
                );
                (x, y, image.width() as f32, image.height() as f32)
            }
            Backdrop::Blank => {
                let rect = page_rect((width, height), (BLANK_ASPECT, 1.0));
                if let Some(r) = Rect::from_xywh(rect.0, rect.1, rect.2, rect.3) {
                    frame.fill_rect(r, &solid([255, 255, 255, 255]), Transform::identity(), None);
                }
                rect
            }
        };
        Ok(Canvas {
            frame,
            place: Place { page },
            lettering: None,
        })
    }

    /// Text strokes are written with `lettering` (else left out).
    pub fn with_lettering(mut self, lettering: Option<Lettering>) -> Canvas {
        self.lettering = lettering;
        self
    }

    /// Draws strokes (oldest first) over what is drawn: highlighters under the ink.
    pub fn strokes<'s>(&mut self, strokes: impl Iterator<Item = &'s Stroke> + Clone) {
        let lettering = self.lettering.as_ref();
        for stroke in strokes.clone().filter(|s| s.tool == Tool::Highlighter) {
            self.place.stroke(&mut self.frame, stroke, lettering);
        }
        for stroke in strokes.filter(|s| s.tool != Tool::Highlighter) {
            self.place.stroke(&mut self.frame, stroke, lettering);
        }
    }

    pub fn pointers(&mut self, pointers: impl Iterator<Item = Point>) {
        let radius = (self.frame.height() as f32 * POINTER_RADIUS_PER_HEIGHT).max(2.0);
        for at in pointers {
            let (x, y) = self.place.px(at);
            if let Some(dot) = PathBuilder::from_circle(x, y, radius) {
                self.frame.fill_path(
                    &dot,
                    &solid(POINTER_RGBA),
                    FillRule::Winding,
                    Transform::identity(),
                    None,
                );
            }
        }
    }

    pub fn into_pixmap(self) -> Pixmap {
        self.frame
    }
}

fn solid([r, g, b, a]: [u8; 4]) -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color_rgba8(r, g, b, a);
    paint.anti_alias = true;
    paint
}

/// The page's place in the frame: page units to pixels.
#[derive(Debug, Clone, Copy)]
struct Place {
    page: (f32, f32, f32, f32),
}

impl Place {
    fn px(&self, Point(x, y): Point) -> (f32, f32) {
        let (left, top, w, h) = self.page;
        let units = f32::from(PAGE_UNITS);
        (
            left + f32::from(x) * w / units,
            top + f32::from(y) * h / units,
        )
    }

    fn stroke(&self, frame: &mut Pixmap, stroke: &Stroke, lettering: Option<&Lettering>) {
        let [r, g, b] = stroke.colour.0;
        let alpha = if stroke.tool == Tool::Highlighter {
            (255.0 * HIGHLIGHTER_ALPHA).round() as u8
        } else {
            255
        };
        let paint = solid([r, g, b, alpha]);
        let width = (f32::from(stroke.width) * self.page.2 / f32::from(PAGE_UNITS)).max(1.0);
        let line = tiny_skia::Stroke {
            width,
            line_cap: LineCap::Round,
            line_join: LineJoin::Round,
            ..tiny_skia::Stroke::default()
        };
        let points: Vec<(f32, f32)> = stroke.points.iter().map(|&p| self.px(p)).collect();
        let Some(&(x0, y0)) = points.first() else {
            return;
        };
        let (x1, y1) = points.get(1).copied().unwrap_or((x0, y0));
        let path = match stroke.tool {
            Tool::Pen | Tool::Highlighter => {
                let mut path = PathBuilder::new();
                path.move_to(x0, y0);
                if points.len() == 1 {
                    // A dot: a round cap on a line of (almost) no length, as the canvas does.
                    path.line_to(x0 + 0.01, y0);
                }
                for &(x, y) in &points[1..] {
                    path.line_to(x, y);
                }
                path.finish()
            }
            Tool::Line => {
                let mut path = PathBuilder::new();
                path.move_to(x0, y0);
                path.line_to(x1, y1);
                path.finish()
            }
            Tool::Rectangle => Rect::from_ltrb(x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1))
                .map(PathBuilder::from_rect),
            Tool::Ellipse => Rect::from_ltrb(x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1))
                .and_then(PathBuilder::from_oval),
            Tool::Text => {
                if let (Some(lettering), Some(text)) = (lettering, &stroke.text) {
                    // The canvas's font size is the width, in pixels.
                    lettering.write(frame, text, (x0, y0), width, [r, g, b]);
                }
                None
            }
        };
        if let Some(path) = path {
            frame.stroke_path(&path, &paint, &line, Transform::identity(), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use classroom_protocol::signal::{Colour, ParticipantId, StrokeId};

    use super::*;

    const RED: [u8; 3] = [0xe0, 0x31, 0x31];

    fn stroke(id: u64, tool: Tool, colour: [u8; 3], width: u16, points: &[(u16, u16)]) -> Stroke {
        Stroke {
            id: StrokeId(id),
            by: ParticipantId(1),
            tool,
            colour: Colour(colour),
            width,
            points: points.iter().map(|&(x, y)| Point(x, y)).collect(),
            text: None,
        }
    }

    fn pixel(frame: &Pixmap, x: u32, y: u32) -> [u8; 3] {
        let p = frame.pixel(x, y).expect("inside the frame").demultiply();
        [p.red(), p.green(), p.blue()]
    }

    fn near(a: [u8; 3], b: [u8; 3]) -> bool {
        a.iter().zip(b).all(|(a, b)| a.abs_diff(b) <= 12)
    }

    /// A 4:3 page, light grey, with a dark blue square in its top-left quarter.
    fn page() -> Pixmap {
        let mut page = Pixmap::new(400, 300).expect("a page");
        page.fill(Color::from_rgba8(220, 220, 220, 255));
        let square = Rect::from_xywh(0.0, 0.0, 200.0, 150.0).expect("a square");
        page.fill_rect(
            square,
            &solid([0, 0, 128, 255]),
            Transform::identity(),
            None,
        );
        page
    }

    #[test]
    fn a_stroke_lands_over_the_page_where_it_was_drawn() {
        // 320x180: the 4:3 page is fitted to 240x180, 40 pixels in from each side.
        let fitted = fit_page(&page(), 320, 180).expect("fitted");
        assert_eq!((fitted.width(), fitted.height()), (240, 180));
        // A red line across the page's middle, from a quarter to three quarters of its width.
        let line = stroke(1, Tool::Pen, RED, 100, &[(2500, 5000), (7500, 5000)]);
        let frame = render(
            320,
            180,
            Backdrop::Page(&fitted),
            [&line].into_iter(),
            std::iter::empty(),
        )
        .expect("a frame");
        assert_eq!(pixel(&frame, 10, 90), [0, 0, 0], "black beside the page");
        assert!(
            near(pixel(&frame, 60, 30), [0, 0, 128]),
            "the page's square"
        );
        assert!(near(pixel(&frame, 250, 150), [220, 220, 220]), "the page");
        // The line: x from 40 + 60 to 40 + 180, y at 90, 2.4 pixels wide.
        for x in [105, 160, 215] {
            assert!(
                near(pixel(&frame, x, 90), RED),
                "red at {x}: {:?}",
                pixel(&frame, x, 90)
            );
        }
        assert!(
            near(pixel(&frame, 160, 95), [220, 220, 220]),
            "thin: page below it"
        );
        assert!(
            !near(pixel(&frame, 230, 90), RED),
            "it ends where it was drawn"
        );
    }

    #[test]
    fn highlighters_lie_see_through_under_the_ink_and_shapes_are_outlines() {
        let ink = stroke(2, Tool::Line, [0, 0, 0], 200, &[(0, 5000), (10_000, 5000)]);
        let marker = stroke(
            1,
            Tool::Highlighter,
            [255, 255, 0],
            2000,
            &[(5000, 0), (5000, 10_000)],
        );
        let frame_of = |strokes: &[&Stroke]| {
            render(
                160,
                90,
                Backdrop::Blank,
                strokes.iter().copied(),
                std::iter::empty(),
            )
            .expect("a frame")
        };
        // Drawn after the ink, the highlighter still lies under it.
        let frame = frame_of(&[&ink, &marker]);
        assert_eq!(pixel(&frame, 80, 45), [0, 0, 0], "the ink on top");
        let yellowish = pixel(&frame, 80, 20);
        assert!(
            yellowish[0] > 240 && yellowish[1] > 240 && (150..200).contains(&yellowish[2]),
            "white through yellow at 35%: {yellowish:?}"
        );
        let rectangle = stroke(3, Tool::Rectangle, RED, 300, &[(2000, 2000), (8000, 8000)]);
        let ellipse = stroke(4, Tool::Ellipse, RED, 300, &[(2000, 2000), (8000, 8000)]);
        let frame = frame_of(&[&rectangle]);
        assert!(
            near(pixel(&frame, 32, 45), RED),
            "the rectangle's left side"
        );
        assert_eq!(pixel(&frame, 80, 45), [255, 255, 255], "hollow");
        let frame = frame_of(&[&ellipse]);
        assert!(near(pixel(&frame, 32, 45), RED), "the ellipse's left end");
        assert_eq!(pixel(&frame, 33, 19), [255, 255, 255], "no corner");
    }

    #[test]
    fn text_is_written_from_its_point_right_and_down_in_its_colour() {
        let mut fonts = usvg::fontdb::Database::new();
        fonts.load_system_fonts();
        let lettering = Lettering::new(fonts).expect("a font (apt-get install fonts-dejavu-core)");
        // 1,500 units of a 320-pixel-wide page: letters 48 pixels high, from (64, 54).
        let mut text = stroke(1, Tool::Text, RED, 1500, &[(2000, 3000)]);
        // What XML cannot carry (a NUL, markup) is left out or escaped, never a failure.
        text.text = Some("Hi <b>&\u{0}".into());
        let written = |lettering: Option<Lettering>| {
            let mut canvas = Canvas::new(320, 180, Backdrop::Blank)
                .expect("a canvas")
                .with_lettering(lettering);
            canvas.strokes(std::iter::once(&text));
            canvas.into_pixmap()
        };
        let frame = written(Some(lettering));
        let red = |(x0, y0): (u32, u32), (x1, y1): (u32, u32)| {
            (x0..x1)
                .flat_map(|x| (y0..y1).map(move |y| (x, y)))
                .filter(|&(x, y)| {
                    let p = pixel(&frame, x, y);
                    p[0] > 150 && p[1] < 120 && p[2] < 120
                })
                .count()
        };
        assert!(red((64, 54), (320, 102)) > 300, "the letters");
        assert_eq!(red((0, 0), (320, 50)), 0, "nothing above the point");
        assert_eq!(red((0, 0), (60, 180)), 0, "nothing left of it");
        let unwritten = written(None);
        assert_eq!(
            pixel(&unwritten, 70, 80),
            [255, 255, 255],
            "no fonts, no text"
        );
    }

    #[test]
    fn a_pointer_is_a_red_dot() {
        let frame = render(
            160,
            90,
            Backdrop::Blank,
            std::iter::empty(),
            [Point(5000, 5000)].into_iter(),
        )
        .expect("a frame");
        let centre = pixel(&frame, 80, 45);
        assert!(centre[0] > 240 && centre[1] < 60, "{centre:?}");
        assert_eq!(pixel(&frame, 90, 45), [255, 255, 255]);
    }

    #[test]
    fn a_page_image_is_checked_before_it_is_decoded() {
        let png = page().encode_png().expect("encodes");
        let decoded = decode_page(&png, 400 * 300).expect("decodes");
        assert_eq!((decoded.width(), decoded.height()), (400, 300));
        assert_eq!(
            decode_page(&png, 1000),
            Err(PageError::TooLarge {
                width: 400,
                height: 300,
                max: 1000
            })
        );
        assert_eq!(decode_page(b"GIF89a", 1000), Err(PageError::NotPng));
        // A header that claims a huge picture is refused before anything is allocated.
        let mut huge = png.clone();
        huge[16..24].copy_from_slice(&[0, 1, 0, 0, 0, 1, 0, 0]);
        assert!(matches!(
            decode_page(&huge, 1 << 24),
            Err(PageError::TooLarge { .. })
        ));
        // Cut short: an error, never a panic.
        assert!(matches!(
            decode_page(&png[..png.len() / 2], 1 << 24),
            Err(PageError::Undecodable(_))
        ));
    }
}
