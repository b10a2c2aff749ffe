//! Parsing a school's class list (CSV) into students to create. Pure: no database, no I/O.
//! Every row gets an outcome; a bad row never stops the good ones.
//!
//! Format: a header row naming at least `email` and `name` (any order, any case); an optional
//! `password` column. Other columns (class, homeroom, ...) are ignored. Without a password, a
//! temporary one is generated and returned once in the report.

use crate::model::{Email, FieldError, Password, PersonName};

/// At most this many data rows are read from one file.
pub const MAX_ROWS: usize = 2_000;

/// A row that parsed: a student ready to be created.
#[derive(Debug, Clone)]
pub struct ClassListRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    pub email: Email,
    pub name: PersonName,
    /// `None` when the file has no password for this row.
    pub password: Option<Password>,
}

/// A row that did not parse, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRow {
    pub line: u64,
    /// The row's email as written, when there was one.
    pub email: Option<String>,
    pub reason: String,
}

/// The whole file could not be read as a class list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassListError {
    #[error("the file is empty; expected a header row such as `email,name,password`")]
    Empty,
    #[error("the header row has no `{0}` column; expected a header such as `email,name,password`")]
    MissingColumn(&'static str),
    #[error("the header row is not valid CSV: {0}")]
    BadHeader(String),
    #[error("the file has more than {MAX_ROWS} rows; split it into smaller files")]
    TooManyRows,
}

/// Parses a class list. Returns the good rows and the refused rows, in file order.
pub fn parse_class_list(
    bytes: &[u8],
) -> Result<(Vec<ClassListRow>, Vec<RefusedRow>), ClassListError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .byte_headers()
        .map_err(|e| ClassListError::BadHeader(e.to_string()))?
        .clone();
    if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
        return Err(ClassListError::Empty);
    }
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| String::from_utf8_lossy(h).trim().eq_ignore_ascii_case(name))
    };
    let email_col = column("email").ok_or(ClassListError::MissingColumn("email"))?;
    let name_col = column("name").ok_or(ClassListError::MissingColumn("name"))?;
    let password_col = column("password");

    // The csv crate does not count the blank lines it skips, so line numbers come from byte
    // offsets: a teacher fixing row 7 must find it on line 7 of the sheet.
    let newlines: Vec<u64> = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i as u64)
        .collect();
    // A record's position can point at the blank lines skipped before it; step over them.
    let line_at = |pos: Option<&csv::Position>, fallback: u64| {
        pos.map_or(fallback, |p| {
            let start = bytes
                .iter()
                .skip(p.byte() as usize)
                .take_while(|b| matches!(b, b'\n' | b'\r'))
                .count() as u64
                + p.byte();
            newlines.partition_point(|&nl| nl < start) as u64 + 1
        })
    };
    let mut good = Vec::new();
    let mut refused = Vec::new();
    for (index, record) in reader.byte_records().enumerate() {
        if index >= MAX_ROWS {
            return Err(ClassListError::TooManyRows);
        }
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                let line = line_at(e.position(), index as u64 + 2);
                refused.push(RefusedRow {
                    line,
                    email: None,
                    reason: format!("not valid CSV: {e}"),
                });
                continue;
            }
        };
        let line = line_at(record.position(), index as u64 + 2);
        if record.iter().all(|field| field.is_empty()) {
            continue; // blank lines are common at the end of exported sheets
        }
        let field = |col: usize| {
            record
                .get(col)
                .map(|f| std::str::from_utf8(f).map(str::to_string))
        };
        let email_raw = match field(email_col) {
            Some(Ok(email)) => email,
            Some(Err(_)) => {
                refused.push(RefusedRow {
                    line,
                    email: None,
                    reason: "the email is not valid UTF-8 text; save the file as UTF-8".into(),
                });
                continue;
            }
            None => {
                refused.push(RefusedRow {
                    line,
                    email: None,
                    reason: "the row has no email column".into(),
                });
                continue;
            }
        };
        let refuse = |reason: RowError| RefusedRow {
            line,
            email: Some(email_raw.clone()),
            reason: reason.to_string(),
        };
        let parsed = (|| -> Result<ClassListRow, RowError> {
            let name_raw = match field(name_col) {
                Some(Ok(name)) => name,
                Some(Err(_)) => return Err(RowError::NameNotUtf8),
                None => return Err(RowError::NoName),
            };
            let email = Email::parse(&email_raw).map_err(RowError::Invalid)?;
            let name = PersonName::parse(&name_raw).map_err(RowError::Invalid)?;
            let password = match password_col.and_then(field) {
                Some(Ok(p)) if !p.is_empty() => {
                    Some(Password::parse(&p).map_err(RowError::Invalid)?)
                }
                Some(Err(_)) => return Err(RowError::PasswordNotUtf8),
                _ => None,
            };
            Ok(ClassListRow {
                line,
                email,
                name,
                password,
            })
        })();
        match parsed {
            Ok(row) => good.push(row),
            Err(reason) => refused.push(refuse(reason)),
        }
    }
    Ok((good, refused))
}

/// Why a row with an email was refused; the message goes into the import's report.
#[derive(Debug, thiserror::Error)]
enum RowError {
    #[error("the name is not valid UTF-8 text; save the file as UTF-8")]
    NameNotUtf8,
    #[error("the row has no name column")]
    NoName,
    #[error("the password is not valid UTF-8 text")]
    PasswordNotUtf8,
    /// The email, the name or the password does not pass validation.
    #[error("{} {}", .0.field, .0.message)]
    Invalid(FieldError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_rows_are_kept_and_bad_rows_reported_by_line() {
        let file = b"Name,Email,Class,Password\n\
            Ada Lovelace,ada@school.edu,7b,\n\
            ,nobody@school.edu,7b,\n\
            Bob,not-an-email,7b,\n\
            Cy,cy@school.edu,7b,short\n\
            \n\
            Di,di@school.edu,7b,long enough pass\n\
            Ed\n";
        let (good, refused) = parse_class_list(file).expect("a class list");
        let emails: Vec<_> = good.iter().map(|r| (r.line, r.email.as_str())).collect();
        assert_eq!(emails, vec![(2, "ada@school.edu"), (7, "di@school.edu")]);
        assert!(good[0].password.is_none() && good[1].password.is_some());
        let lines: Vec<_> = refused.iter().map(|r| r.line).collect();
        assert_eq!(lines, vec![3, 4, 5, 8]);
        assert!(refused[0].reason.contains("name"), "{:?}", refused[0]);
        assert!(refused[1].reason.contains("email"), "{:?}", refused[1]);
        assert!(refused[2].reason.contains("password"), "{:?}", refused[2]);
        assert!(refused[3].reason.contains("no email"), "{:?}", refused[3]);
    }

    #[test]
    fn files_that_are_not_class_lists_are_refused_whole() {
        assert_eq!(
            parse_class_list(b"").map(|_| ()),
            Err(ClassListError::Empty)
        );
        assert_eq!(
            parse_class_list(b"email,class\na@b.c,7\n").map(|_| ()),
            Err(ClassListError::MissingColumn("name"))
        );
        let mut big = b"email,name\n".to_vec();
        for i in 0..=MAX_ROWS {
            big.extend_from_slice(format!("s{i}@school.edu,S {i}\n").as_bytes());
        }
        assert_eq!(
            parse_class_list(&big).map(|_| ()),
            Err(ClassListError::TooManyRows)
        );
    }

    #[test]
    fn invalid_utf8_is_a_row_error_not_a_crash() {
        let (good, refused) =
            parse_class_list(b"email,name\na@b.c,\xff\xfe\nok@b.c,Ok\n").expect("parses");
        assert_eq!(good.len(), 1);
        assert_eq!(refused.len(), 1);
        assert!(refused[0].reason.contains("UTF-8"));
    }
}
