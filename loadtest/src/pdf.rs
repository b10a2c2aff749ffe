//! PDFs written byte by byte, so that a load test (and the tests) need no tool to make one:
//! any number of pages with a line of text each, one locked with a password, a damaged one.

/// A PDF with one page per entry, each showing its text (Helvetica, so that `pdftotext`
/// reads it back).
pub fn pdf(pages: &[String]) -> Vec<u8> {
    pdf_with(pages, None)
}

/// A PDF of `n` pages saying "Page 1", "Page 2", ...
pub fn pdf_of(n: usize) -> Vec<u8> {
    let pages: Vec<String> = (1..=n).map(|i| format!("Page {i}")).collect();
    pdf(&pages)
}

/// A PDF locked with a password (the standard security handler, revision 2): poppler cannot
/// open it without the password. Its page contents are not really encrypted; a reader never
/// gets that far, as the password check comes first.
pub fn encrypted_pdf() -> Vec<u8> {
    pdf_with(&["Secret".to_string()], Some(()))
}

/// The start of a PDF followed by junk: no objects, no cross-reference table, no trailer.
pub fn corrupt_pdf() -> Vec<u8> {
    let mut bytes =
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R".to_vec();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..4096 {
        // xorshift: junk that is the same every run.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push((x & 0xff) as u8);
    }
    bytes
}

fn pdf_with(pages: &[String], encrypt: Option<()>) -> Vec<u8> {
    let n = pages.len();
    // Objects: 1 catalog, 2 pages, 3 font, then per page: page, contents; then encrypt.
    let mut objects: Vec<String> = Vec::new();
    objects.push("<< /Type /Catalog /Pages 2 0 R >>".into());
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objects.push(format!(
        "<< /Type /Pages /Kids [{}] /Count {n} >>",
        kids.join(" ")
    ));
    objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".into());
    for (i, text) in pages.iter().enumerate() {
        objects.push(format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {} 0 R \
             /Resources << /Font << /F1 3 0 R >> >> >>",
            5 + 2 * i
        ));
        let escaped = text
            .replace('\\', "\\\\")
            .replace('(', "\\(")
            .replace(')', "\\)");
        let stream = format!("BT /F1 36 Tf 72 600 Td ({escaped}) Tj ET");
        objects.push(format!(
            "<< /Length {} >>\nstream\n{stream}\nendstream",
            stream.len()
        ));
    }
    if encrypt.is_some() {
        let o = "A1".repeat(32);
        let u = "5C".repeat(32);
        objects.push(format!(
            "<< /Filter /Standard /V 1 /R 2 /O <{o}> /U <{u}> /P -44 >>"
        ));
    }
    let mut out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    let encrypt = match encrypt {
        Some(()) => format!(
            " /Encrypt {} 0 R /ID [<00112233445566778899AABBCCDDEEFF> <00112233445566778899AABBCCDDEEFF>]",
            objects.len()
        ),
        None => String::new(),
    };
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R{encrypt} >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}
