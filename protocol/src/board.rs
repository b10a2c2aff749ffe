//! The whiteboard's wire types: what a stroke is, where it lies on a page and which page's
//! board it belongs to. The messages that carry them are in [`crate::signal`] (`draw`,
//! `stroke`, `board`, ...); `docs/protocol.md` ("Whiteboard") describes the whole exchange.
//!
//! Coordinates are whole numbers of [`PAGE_UNITS`]ths of the page: `x` of its width from the
//! left, `y` of its height from the top. Every screen shows the same page at its own size, so
//! a stroke lands on the same spot of the page for everyone; whole numbers keep messages
//! short (`[5012, 3380]`) and comparisons exact.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::DocumentId;
use crate::signal::ParticipantId;

/// A page is this many units wide and high (a point's coordinates run from 0 to it).
pub const PAGE_UNITS: u16 = 10_000;

/// A point on a page: `[x, y]` in [`PAGE_UNITS`]ths of its width and height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Point(pub u16, pub u16);

impl Point {
    /// Whether the point lies on the page.
    pub fn on_page(self) -> bool {
        self.0 <= PAGE_UNITS && self.1 <= PAGE_UNITS
    }
}

/// A page that can carry a board: a page of a course document, or a page of the room's blank
/// board (`document` null).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BoardPage {
    /// The document, or `null` for the blank board.
    pub document: Option<DocumentId>,
    /// The page, from 1.
    pub page: u32,
}

/// What a stroke is drawn with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    /// A freehand line through its points, streamed while it is drawn.
    Pen,
    /// Like the pen, wide and see-through, drawn under the ink.
    Highlighter,
    /// A straight line: two points, from and to.
    Line,
    /// A rectangle's outline: two opposite corners.
    Rectangle,
    /// An ellipse's outline inside the rectangle of two opposite corners.
    Ellipse,
    /// `text` written from one point (its top left); `width` is the height of its letters.
    Text,
}

impl Tool {
    /// Whether strokes of this tool grow by `draw_more` while they are drawn.
    pub fn is_freehand(self) -> bool {
        matches!(self, Tool::Pen | Tool::Highlighter)
    }
}

/// A colour, `"#rrggbb"` on the wire. Anything else is not a colour and fails to parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Colour(pub [u8; 3]);

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02x}{g:02x}{b:02x}")
    }
}

impl std::str::FromStr for Colour {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        const WRONG: &str = "a colour is written #rrggbb";
        let hex = text.strip_prefix('#').ok_or(WRONG)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(WRONG);
        }
        let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| WRONG);
        Ok(Colour([byte(0)?, byte(2)?, byte(4)?]))
    }
}

impl Serialize for Colour {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Colour {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A stroke's id: unique in the room, increasing, so that sorting by id gives the order in
/// which strokes were begun (later ones lie on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StrokeId(pub u64);

impl fmt::Display for StrokeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// One thing drawn on a page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stroke {
    pub id: StrokeId,
    /// Who drew it.
    pub by: ParticipantId,
    pub tool: Tool,
    pub colour: Colour,
    /// The line's width (the letters' height for text), in [`PAGE_UNITS`]ths of the page's
    /// width.
    pub width: u16,
    /// The points so far; a pen stroke still being drawn grows by `stroke_points`.
    pub points: Vec<Point>,
    /// The words of a text stroke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The board of the page shown now, as sent in `joined` and `board`, with who may draw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardSnapshot {
    /// The page shown (a document's or the blank board's); `null` when nothing is shown.
    pub page: Option<BoardPage>,
    /// How many pages the blank board has, while it is shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blank_pages: Option<u32>,
    /// The page's strokes, oldest first (later ones lie on top).
    pub strokes: Vec<Stroke>,
    /// Who holds the pen now (may draw without moderating); `pens` tells of each change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pens: Vec<ParticipantId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_hash_and_six_hex_digits_and_nothing_else() {
        let colour: Colour = serde_json::from_str("\"#E03131\"").expect("a colour");
        assert_eq!(colour, Colour([0xe0, 0x31, 0x31]));
        assert_eq!(
            serde_json::to_string(&colour).expect("serializes"),
            "\"#e03131\""
        );
        for bad in [
            "\"e03131\"",
            "\"#e0313\"",
            "\"#e031311\"",
            "\"#gg0000\"",
            "\"#+10000\"",
            "\"#éé00\"",
            "12",
        ] {
            assert!(serde_json::from_str::<Colour>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strokes_are_compact_json() {
        let stroke = Stroke {
            id: StrokeId(4),
            by: ParticipantId(2),
            tool: Tool::Pen,
            colour: Colour([0, 0, 0]),
            width: 30,
            points: vec![Point(0, 10_000), Point(5012, 3380)],
            text: None,
        };
        let text = r##"{"id":4,"by":2,"tool":"pen","colour":"#000000","width":30,"points":[[0,10000],[5012,3380]]}"##;
        assert_eq!(serde_json::to_string(&stroke).expect("serializes"), text);
        assert_eq!(
            serde_json::from_str::<Stroke>(text).expect("parses"),
            stroke
        );
        let page: BoardPage =
            serde_json::from_str(r#"{"document":null,"page":2}"#).expect("a blank page");
        assert_eq!(
            page,
            BoardPage {
                document: None,
                page: 2
            }
        );
        assert!(!Point(10_001, 0).on_page());
    }
}
