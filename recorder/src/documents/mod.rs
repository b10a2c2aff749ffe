//! Course materials, prepared by the job queue's workers: an uploaded PDF, or a PPTX, ODP or
//! DOCX converted to PDF by LibreOffice (headless), becomes page images in two sizes (poppler's
//! `pdftoppm`) and the text of each page (`pdftotext`). Everything runs under one deadline per
//! document and within size and page limits, so a hostile or broken file fails with a reason
//! the teacher can read and holds a worker no longer than the time limit.
//!
//! A document's folder `<data_dir>/documents/<id>/` holds the upload (`source.<ext>`); the
//! worker builds the pages in `work/` and renames it to `pages/` when all is there, so a
//! reader never sees half a document:
//! `pages/document.pdf`, `pages/page-<n>.png` (slide size), `pages/thumb-<n>.png`, and
//! `pages/text.json` (`["text of page 1", ...]`).

pub mod run;
pub mod zip;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use run::{RunError, run};
use zip::{ZipLimits, ZipRefused};

/// The upload's file in a document's folder.
pub fn source_path(folder: &Path, format: SourceFormat) -> PathBuf {
    folder.join(format!("source.{}", format.extension()))
}

/// The finished pages in a document's folder.
pub fn pages_path(folder: &Path) -> PathBuf {
    folder.join("pages")
}

/// The settings of document preparation (`[documents]` in the server's configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DocumentConfig {
    /// LibreOffice's program (a name looked up in PATH, or a path).
    pub soffice: PathBuf,
    pub pdfinfo: PathBuf,
    pub pdftoppm: PathBuf,
    pub pdftotext: PathBuf,
    /// Largest upload, in bytes.
    pub max_upload_bytes: u64,
    /// Time an upload may take (a large file over a slow link), in seconds; other requests
    /// have `http.request_timeout_secs`.
    pub upload_timeout_secs: u64,
    /// Most pages a document may have.
    pub max_pages: u32,
    /// Most bytes a PPTX, ODP or DOCX archive may unpack to.
    pub max_unpacked_bytes: u64,
    /// Time a document's whole preparation may take (conversion, rendering, text).
    pub time_limit_secs: u64,
    /// Address space each converter (LibreOffice, poppler's tools) may use, in MiB; 0: no
    /// limit. A document that makes a converter grow past it fails with the reason.
    pub max_memory_mb: u64,
    /// Width of the page images shown as slides, and of the thumbnails, in pixels.
    pub page_width: u32,
    pub thumb_width: u32,
}

impl Default for DocumentConfig {
    fn default() -> Self {
        DocumentConfig {
            soffice: PathBuf::from("soffice"),
            pdfinfo: PathBuf::from("pdfinfo"),
            pdftoppm: PathBuf::from("pdftoppm"),
            pdftotext: PathBuf::from("pdftotext"),
            max_upload_bytes: 50 << 20,
            upload_timeout_secs: 600,
            max_pages: 500,
            max_unpacked_bytes: 300 << 20,
            time_limit_secs: 180,
            max_memory_mb: 2048,
            page_width: 1600,
            thumb_width: 320,
        }
    }
}

/// What was uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Pdf,
    Pptx,
    Odp,
    Docx,
}

impl SourceFormat {
    pub fn extension(self) -> &'static str {
        match self {
            SourceFormat::Pdf => "pdf",
            SourceFormat::Pptx => "pptx",
            SourceFormat::Odp => "odp",
            SourceFormat::Docx => "docx",
        }
    }
}

/// A prepared document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentOutput {
    pub pages: u32,
}

/// Why a document could not be prepared, in words for the teacher who uploaded it.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("the file was refused: {0}")]
    Archive(#[from] ZipRefused),
    #[error("LibreOffice could not convert the file to PDF{detail}")]
    Conversion { detail: String },
    #[error("the PDF is damaged or not a PDF{detail}")]
    Corrupt { detail: String },
    #[error("the PDF is protected by a password; save it again without one and upload it again")]
    Encrypted,
    #[error("the document has {pages} pages; at most {limit} are allowed")]
    TooManyPages { pages: u32, limit: u32 },
    #[error("preparing the document took longer than {secs} seconds and was stopped")]
    TimedOut { secs: u64 },
    /// Ours, not the document's: a converter is missing, the disk is full. Worth a retry.
    #[error("the server could not prepare the document: {0}")]
    Internal(String),
}

impl DocumentError {
    /// Whether another attempt could succeed: only when the fault was the server's.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DocumentError::Internal(_))
    }
}

/// The last meaningful line a tool printed, for the teacher (trimmed, never long).
fn detail(stderr: &str) -> String {
    // LibreOffice without Java says so on every run; that is never the reason.
    let line = stderr
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty() && !line.contains("javaldx"))
        .unwrap_or("");
    if line.is_empty() {
        return String::new();
    }
    let short: String = line.chars().take(200).collect();
    format!(" ({short})")
}

struct Job<'a> {
    config: &'a DocumentConfig,
    work: PathBuf,
    deadline: Instant,
}

impl Job<'_> {
    fn run(&self, command: Command, name: &str) -> Result<run::Finished, DocumentError> {
        let command = match self.config.max_memory_mb {
            0 => command,
            mb => run::with_memory_limit(&command, mb << 20),
        };
        run(command, name, &self.work, self.deadline).map_err(|e| match e {
            RunError::TimedOut { .. } => DocumentError::TimedOut {
                secs: self.config.time_limit_secs,
            },
            e => DocumentError::Internal(e.to_string()),
        })
    }
}

/// Prepares the document in `folder` (uploaded as `format`); blocking, for a worker thread.
pub fn prepare(
    config: &DocumentConfig,
    folder: &Path,
    format: SourceFormat,
) -> Result<DocumentOutput, DocumentError> {
    let started = Instant::now();
    let job = Job {
        config,
        work: folder.join("work"),
        deadline: started + Duration::from_secs(config.time_limit_secs),
    };
    let internal = |e: std::io::Error| DocumentError::Internal(e.to_string());
    if job.work.exists() {
        std::fs::remove_dir_all(&job.work).map_err(internal)?;
    }
    std::fs::create_dir_all(&job.work).map_err(internal)?;
    let result = build(&job, folder, format);
    let _ = std::fs::remove_dir_all(job.work.join("profile"));
    let output = match result {
        Ok(output) => output,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&job.work);
            return Err(e);
        }
    };
    for log in ["convert", "pdfinfo", "pages", "thumbs", "text"] {
        let _ = std::fs::remove_file(job.work.join(format!("{log}.out")));
        let _ = std::fs::remove_file(job.work.join(format!("{log}.err")));
    }
    let pages = pages_path(folder);
    if pages.exists() {
        std::fs::remove_dir_all(&pages).map_err(internal)?;
    }
    std::fs::rename(&job.work, &pages).map_err(internal)?;
    Ok(output)
}

fn build(job: &Job, folder: &Path, format: SourceFormat) -> Result<DocumentOutput, DocumentError> {
    let source = source_path(folder, format);
    let pdf = job.work.join("document.pdf");
    match format {
        SourceFormat::Pdf => {
            std::fs::copy(&source, &pdf).map_err(|e| DocumentError::Internal(e.to_string()))?;
        }
        SourceFormat::Pptx | SourceFormat::Odp | SourceFormat::Docx => {
            zip::inspect(
                &source,
                ZipLimits {
                    max_unpacked: job.config.max_unpacked_bytes,
                    max_entries: 10_000,
                    max_ratio: 200,
                },
            )?;
            convert(job, &source, &pdf)?;
        }
    }
    let pages = page_count(job, &pdf)?;
    render(job, &pdf, "pages", "page", job.config.page_width, pages)?;
    render(job, &pdf, "thumbs", "thumb", job.config.thumb_width, pages)?;
    text(job, &pdf, pages)?;
    Ok(DocumentOutput { pages })
}

/// LibreOffice, headless, with a profile of its own in the work folder: two conversions at
/// once must not share one (the second would hand its file to the first and exit).
fn convert(job: &Job, source: &Path, pdf: &Path) -> Result<(), DocumentError> {
    let profile = job.work.join("profile");
    let mut command = Command::new(&job.config.soffice);
    command
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.display()
        ))
        .args([
            "--headless",
            "--invisible",
            "--nodefault",
            "--nolockcheck",
            "--nologo",
            "--norestore",
            "--convert-to",
            "pdf",
            "--outdir",
        ])
        .arg(&job.work)
        .arg(source)
        // Its temporary files stay in the work folder, which is removed afterwards.
        .env("TMPDIR", &job.work)
        .env("HOME", &job.work);
    let converted = job.work.join("source.pdf");
    // LibreOffice now and then crashes on a busy machine converting a document it converts
    // well the next time (its launcher then exits with an error, not of a signal): a failed
    // conversion gets one more run, with a fresh profile, within the same time limit. A second
    // failure is the document's (or its size's, against the memory limit).
    let mut finished = job.run(clone_command(&command), "convert")?;
    if !finished.status.success() || !converted.is_file() {
        tracing::warn!(status = %finished.status, error = %detail(&finished.stderr), "LibreOffice did not convert the document; once more");
        let _ = std::fs::remove_dir_all(&profile);
        finished = job.run(command, "convert-again")?;
    }
    if !finished.status.success() || !converted.is_file() {
        return Err(DocumentError::Conversion {
            detail: detail(&finished.stderr),
        });
    }
    std::fs::rename(&converted, pdf).map_err(|e| DocumentError::Internal(e.to_string()))
}

/// A second `Command` with the same program, arguments and environment.
fn clone_command(command: &Command) -> Command {
    let mut again = Command::new(command.get_program());
    again.args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => again.env(key, value),
            None => again.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        again.current_dir(dir);
    }
    again
}

fn page_count(job: &Job, pdf: &Path) -> Result<u32, DocumentError> {
    let mut command = Command::new(&job.config.pdfinfo);
    command.arg(pdf);
    let finished = job.run(command, "pdfinfo")?;
    if finished.stderr.contains("Incorrect password") {
        return Err(DocumentError::Encrypted);
    }
    if !finished.status.success() {
        return Err(DocumentError::Corrupt {
            detail: detail(&finished.stderr),
        });
    }
    let pages = finished
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| DocumentError::Corrupt {
            detail: " (it has no pages)".into(),
        })?;
    if pages > job.config.max_pages {
        return Err(DocumentError::TooManyPages {
            pages,
            limit: job.config.max_pages,
        });
    }
    Ok(pages)
}

/// Renders every page `width` pixels wide as `<prefix>-<n>.png` (pdftoppm pads the numbers
/// to the page count's digits; they are renamed so that links need not know the count).
fn render(
    job: &Job,
    pdf: &Path,
    name: &str,
    prefix: &str,
    width: u32,
    pages: u32,
) -> Result<(), DocumentError> {
    let mut command = Command::new(&job.config.pdftoppm);
    command
        .args(["-png", "-scale-to-x"])
        .arg(width.to_string())
        .args(["-scale-to-y", "-1", "-l"])
        .arg(pages.to_string())
        .arg(pdf)
        .arg(job.work.join(prefix));
    let finished = job.run(command, name)?;
    if !finished.status.success() {
        return Err(DocumentError::Corrupt {
            detail: detail(&finished.stderr),
        });
    }
    let internal = |e: std::io::Error| DocumentError::Internal(e.to_string());
    let mut found = 0;
    for entry in std::fs::read_dir(&job.work).map_err(internal)? {
        let path = entry.map_err(internal)?.path();
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let number = file
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.strip_suffix(".png"))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(n) = number {
            std::fs::rename(&path, job.work.join(format!("{prefix}-{n}.png"))).map_err(internal)?;
            found += 1;
        }
    }
    if found != pages {
        return Err(DocumentError::Corrupt {
            detail: format!(" ({found} of its {pages} pages could be drawn)"),
        });
    }
    Ok(())
}

/// The text of each page, as a JSON array (`pdftotext` ends each page with a form feed).
fn text(job: &Job, pdf: &Path, pages: u32) -> Result<(), DocumentError> {
    let out = job.work.join("text.txt");
    let mut command = Command::new(&job.config.pdftotext);
    command
        .args(["-enc", "UTF-8", "-layout"])
        .arg(pdf)
        .arg(&out);
    let finished = job.run(command, "text")?;
    if !finished.status.success() {
        return Err(DocumentError::Corrupt {
            detail: detail(&finished.stderr),
        });
    }
    let internal = |e: std::io::Error| DocumentError::Internal(e.to_string());
    let raw = std::fs::read(&out).map_err(internal)?;
    let text = String::from_utf8_lossy(&raw);
    let mut per_page: Vec<String> = text
        .split('\u{c}')
        .map(|page| page.trim_end().to_string())
        .take(pages as usize)
        .collect();
    per_page.resize(pages as usize, String::new());
    let json = serde_json::to_vec(&per_page).map_err(|e| DocumentError::Internal(e.to_string()))?;
    std::fs::write(job.work.join("text.json"), json).map_err(internal)?;
    std::fs::remove_file(&out).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_the_last_line_and_short() {
        assert_eq!(detail(""), "");
        assert_eq!(
            detail("Syntax Error: x\nSyntax Error: Couldn't find trailer dictionary\n\n"),
            " (Syntax Error: Couldn't find trailer dictionary)"
        );
        assert_eq!(detail(&"x".repeat(500)).len(), 203);
        assert_eq!(
            detail("Warning: failed to launch javaldx - java may not function correctly\n"),
            ""
        );
    }

    #[test]
    fn only_the_servers_faults_are_retried() {
        assert!(DocumentError::Internal("disk full".into()).is_retryable());
        assert!(!DocumentError::Encrypted.is_retryable());
        assert!(!DocumentError::TimedOut { secs: 1 }.is_retryable());
    }
}
