//! Documents made up by tests: PDFs of any number of pages, a damaged one, one locked with a
//! password, office files (DOCX, PPTX) for LibreOffice, and a zip bomb dressed as a PPTX.
//! Written byte by byte here so that the tests need no tools to make them.

pub use classroom_loadtest::pdf::{corrupt_pdf, encrypted_pdf, pdf, pdf_of};

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// An entry of a zip archive: its name, how it is stored, its CRC and sizes.
struct Entry {
    name: String,
    method: u16,
    crc: u32,
    packed: Vec<u8>,
    unpacked_len: u32,
}

/// A zip of the entries (stored uncompressed), in order.
pub fn zip(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let entries: Vec<Entry> = entries
        .iter()
        .map(|(name, data)| Entry {
            name: (*name).to_string(),
            method: 0,
            crc: crc32(data),
            unpacked_len: data.len() as u32,
            packed: data.clone(),
        })
        .collect();
    write_zip(&entries)
}

fn write_zip(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for entry in entries {
        let offset = out.len() as u32;
        let name = entry.name.as_bytes();
        let mut header = Vec::new();
        header.extend_from_slice(&20u16.to_le_bytes()); // version needed
        header.extend_from_slice(&0u16.to_le_bytes()); // flags
        header.extend_from_slice(&entry.method.to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes()); // time
        header.extend_from_slice(&0x21u16.to_le_bytes()); // date: 1980-01-01
        header.extend_from_slice(&entry.crc.to_le_bytes());
        header.extend_from_slice(&(entry.packed.len() as u32).to_le_bytes());
        header.extend_from_slice(&entry.unpacked_len.to_le_bytes());
        header.extend_from_slice(&(name.len() as u16).to_le_bytes());
        header.extend_from_slice(&0u16.to_le_bytes()); // extra length
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(name);
        out.extend_from_slice(&entry.packed);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        central.extend_from_slice(&header);
        central.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let directory_at = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let n = entries.len() as u16;
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&directory_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A DOCX whose body has one paragraph per entry, the last on a page of its own.
pub fn docx(paragraphs: &[&str]) -> Vec<u8> {
    let content_types = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;
    let rels = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;
    let mut body = String::new();
    for (i, text) in paragraphs.iter().enumerate() {
        let page_break = if i + 1 == paragraphs.len() && i > 0 {
            r#"<w:r><w:br w:type="page"/></w:r>"#
        } else {
            ""
        };
        body.push_str(&format!(
            "<w:p>{page_break}<w:r><w:t>{text}</w:t></w:r></w:p>"
        ));
    }
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    zip(&[
        ("[Content_Types].xml", content_types.as_bytes().to_vec()),
        ("_rels/.rels", rels.as_bytes().to_vec()),
        ("word/document.xml", document.into_bytes()),
    ])
}

/// A PPTX of one slide per entry, each a text box with its text: the least LibreOffice
/// Impress opens (no masters or layouts).
pub fn pptx(slides: &[&str]) -> Vec<u8> {
    const P: &str = "http://schemas.openxmlformats.org/presentationml/2006/main";
    const A: &str = "http://schemas.openxmlformats.org/drawingml/2006/main";
    const R: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    const HEAD: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#;
    let n = slides.len();
    let overrides: String = (1..=n)
        .map(|i| format!(r#"<Override PartName="/ppt/slides/slide{i}.xml" ContentType="application/vnd.openxmlformats-officedocument.presentationml.slide+xml"/>"#))
        .collect();
    let content_types = format!(
        r#"{HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/ppt/presentation.xml" ContentType="application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"/>{overrides}</Types>"#
    );
    let rels = format!(
        r#"{HEAD}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{R}/officeDocument" Target="ppt/presentation.xml"/></Relationships>"#
    );
    let ids: String = (1..=n)
        .map(|i| format!(r#"<p:sldId id="{}" r:id="rId{i}"/>"#, 255 + i))
        .collect();
    let presentation = format!(
        r#"{HEAD}<p:presentation xmlns:p="{P}" xmlns:r="{R}" xmlns:a="{A}"><p:sldIdLst>{ids}</p:sldIdLst><p:sldSz cx="9144000" cy="6858000"/><p:notesSz cx="6858000" cy="9144000"/></p:presentation>"#
    );
    let slide_rels: String = (1..=n)
        .map(|i| {
            format!(r#"<Relationship Id="rId{i}" Type="{R}/slide" Target="slides/slide{i}.xml"/>"#)
        })
        .collect();
    let presentation_rels = format!(
        r#"{HEAD}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{slide_rels}</Relationships>"#
    );
    let mut entries = vec![
        (
            "[Content_Types].xml".to_string(),
            content_types.into_bytes(),
        ),
        ("_rels/.rels".to_string(), rels.into_bytes()),
        (
            "ppt/presentation.xml".to_string(),
            presentation.into_bytes(),
        ),
        (
            "ppt/_rels/presentation.xml.rels".to_string(),
            presentation_rels.into_bytes(),
        ),
    ];
    for (i, text) in slides.iter().enumerate() {
        let slide = format!(
            r#"{HEAD}<p:sld xmlns:p="{P}" xmlns:a="{A}" xmlns:r="{R}"><p:cSld><p:spTree><p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/><p:sp><p:nvSpPr><p:cNvPr id="2" name="Text"/><p:cNvSpPr txBox="1"/><p:nvPr/></p:nvSpPr><p:spPr><a:xfrm><a:off x="457200" y="457200"/><a:ext cx="8000000" cy="1500000"/></a:xfrm><a:prstGeom prst="rect"><a:avLst/></a:prstGeom></p:spPr><p:txBody><a:bodyPr/><a:p><a:r><a:rPr lang="en-US" sz="4000"/><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>"#
        );
        entries.push((format!("ppt/slides/slide{}.xml", i + 1), slide.into_bytes()));
    }
    let entries: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(name, data)| (name.as_str(), data.clone()))
        .collect();
    zip(&entries)
}

/// Writes bits least significant first, as deflate does.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, count: u32) {
        self.acc |= value << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: deflate sends those most significant bit first.
    fn code(&mut self, code: u64, count: u32) {
        let reversed = (0..count).fold(0, |r, i| r | (((code >> i) & 1) << (count - 1 - i)));
        self.put(reversed, count);
    }
}

/// A raw deflate stream (fixed Huffman codes) that inflates to `len` zero bytes: one literal
/// zero, then copies of 258 bytes from one back, 13 bits each (about 160:1).
fn deflated_zeros(len: u64) -> Vec<u8> {
    let mut bits = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // the final block
    bits.put(1, 2); // fixed Huffman codes
    let literal_zero = |bits: &mut Bits| bits.code(0x30, 8);
    literal_zero(&mut bits);
    let rest = len.saturating_sub(1);
    for _ in 0..rest / 258 {
        bits.code(0xC5, 8); // length 258 (symbol 285)
        bits.code(0, 5); // distance 1
    }
    for _ in 0..rest % 258 {
        literal_zero(&mut bits);
    }
    bits.code(0, 7); // end of block (symbol 256)
    bits.put(0, 7); // flush
    bits.out
}

/// A zip bomb named like a PPTX: a slide that inflates to `len` bytes of zeros. (Its CRC is
/// not computed: nothing that refuses it unpacks it.)
pub fn zip_bomb(len: u32) -> Vec<u8> {
    let content_types = br#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>"#;
    write_zip(&[
        Entry {
            name: "[Content_Types].xml".into(),
            method: 0,
            crc: crc32(content_types),
            packed: content_types.to_vec(),
            unpacked_len: content_types.len() as u32,
        },
        Entry {
            name: "ppt/slides/slide1.xml".into(),
            method: 8,
            crc: 0,
            packed: deflated_zeros(u64::from(len)),
            unpacked_len: len,
        },
    ])
}

/// The width and height of a PNG, from its header.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(..8)? != b"\x89PNG\r\n\x1a\n" || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let width = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let height = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((width, height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_a_known_string() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    /// Writes the test files for a look with other tools (`unzip -t`, `python3 -m zipfile`):
    /// `CLASSROOM_DUMP_DOCUMENTS=/some/dir cargo test -p classroom-tests --lib documents`.
    #[test]
    fn dump_for_other_tools() {
        let Some(dir) = std::env::var_os("CLASSROOM_DUMP_DOCUMENTS") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join("handout.docx"), docx(&["One", "Two"])).expect("write");
        std::fs::write(dir.join("bomb.pptx"), zip_bomb(1 << 24)).expect("write");
        std::fs::write(dir.join("long.pdf"), pdf_of(20)).expect("write");
    }

    #[test]
    fn zeros_deflate_small() {
        let packed = deflated_zeros(1 << 20);
        assert!(packed.len() < (1 << 20) / 100, "{}", packed.len());
    }
}
