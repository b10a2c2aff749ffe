//! The signaling error codes are named in three places besides [`ErrorCode`]: the protocol
//! document's table, and the web client's table of texts. Both must list exactly the enum's
//! codes, so that a new code cannot reach clients undocumented or without a text.

use std::collections::BTreeSet;
use std::path::PathBuf;

use classroom_protocol::ErrorCode;

fn repo_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn enum_codes() -> BTreeSet<String> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

/// The codes in the first column of the table under `## Error codes` (a cell may name
/// several, each in backticks).
fn documented_codes(markdown: &str) -> Vec<String> {
    let section = markdown
        .split("\n## Error codes\n")
        .nth(1)
        .expect("docs/protocol.md has an `## Error codes` section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut codes = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap_or("");
        codes.extend(cell.split('`').skip(1).step_by(2).map(str::to_string));
    }
    codes
}

/// The keys of `ERROR_TEXTS` in web-client/js/errors.js: one `code: { text: ... }` a line.
fn web_client_codes(js: &str) -> Vec<String> {
    let table = js
        .split("export const ERROR_TEXTS = {")
        .nth(1)
        .expect("errors.js defines ERROR_TEXTS")
        .split("\n};")
        .next()
        .unwrap_or("");
    table
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.trim().split_once(':')?;
            rest.contains("text:").then(|| key.trim().to_string())
        })
        .collect()
}

fn assert_same(place: &str, listed: Vec<String>) {
    let set: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        set.len(),
        listed.len(),
        "{place} lists a code twice: {listed:?}"
    );
    let codes = enum_codes();
    let missing: Vec<_> = codes.difference(&set).collect();
    let unknown: Vec<_> = set.difference(&codes).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{place}: missing {missing:?}, not codes of ErrorCode {unknown:?}"
    );
}

#[test]
fn the_protocol_document_lists_exactly_the_error_codes() {
    assert_same(
        "docs/protocol.md",
        documented_codes(&repo_file("docs/protocol.md")),
    );
}

#[test]
fn the_web_client_has_a_text_for_exactly_the_error_codes() {
    assert_same(
        "web-client/js/errors.js",
        web_client_codes(&repo_file("web-client/js/errors.js")),
    );
}

#[test]
fn the_table_parsers_see_a_drift() {
    let doc = "x\n## Error codes\n\n| code | meaning |\n|---|---|\n| `a`, `b` | x |\n| `c` | y |\n\n## Close codes\n| `d` | z |\n";
    assert_eq!(documented_codes(doc), ["a", "b", "c"]);
    let js = "export const ERROR_TEXTS = {\n  a: { text: \"x: y\" },\n  b: { text: \"z\", ends: \"e\" },\n};\nconst X = { c: { text: \"\" } };";
    assert_eq!(web_client_codes(js), ["a", "b"]);
}
