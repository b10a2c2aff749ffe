//! CSV exports (attendance, poll answers): cells made safe for spreadsheets.

use std::borrow::Cow;

/// Text from people (names, answers, questions), safe for spreadsheets: a cell starting with
/// `=`, `+`, `-`, `@` or a control character would be read as a formula, so it gets a leading
/// `'` that the spreadsheet shows rather than runs.
pub fn defused(text: &str) -> Cow<'_, str> {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// One cell of a hand-written row: [`defused`], then quoted when it holds a separator, a
/// quote or a line break.
pub fn cell(text: &str) -> String {
    let guarded = defused(text);
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_plain_text_kept() {
        assert_eq!(defused("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defused("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defused("-1"), "'-1");
        assert_eq!(defused("Paris"), "Paris");
        assert_eq!(defused(""), "");
    }

    #[test]
    fn cells_are_quoted_when_they_must_be() {
        assert_eq!(cell("Sam"), "Sam");
        assert_eq!(cell("Doe, Jane"), "\"Doe, Jane\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("=1+1"), "'=1+1");
        assert_eq!(cell("=A1,B1"), "\"'=A1,B1\"");
    }
}
