//! Slides: a moderator shows a document of the course's materials to the class and turns its
//! pages; everyone gets each change at once, and a late joiner (or a reconnect) gets the
//! current page in `joined`. The room holds only which document and which page: the pages
//! themselves come from the REST API, which checks the course membership of whoever fetches
//! them, so a document id from elsewhere shows nothing to anyone who may not see it.

use classroom_protocol::signal::{ServerMessage, Slide};
use classroom_protocol::{DocumentId, ErrorCode};

use super::{Actor, Output, Refusal, Room};

/// More pages than any document the server prepares may have (its limit is far lower).
pub const MAX_PAGES: u32 = 100_000;

impl Room {
    pub(super) fn open_document(
        &mut self,
        actor: &Actor,
        document: DocumentId,
        pages: u32,
        page: u32,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("show documents")?;
        if pages == 0 || pages > MAX_PAGES {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                format!("a document has 1 to {MAX_PAGES} pages"),
            ));
        }
        self.show(
            Slide {
                document,
                page: valid_page(page, pages)?,
                pages,
                by: actor.id,
                browse: false,
            },
            out,
        );
        Ok(())
    }

    pub(super) fn turn_page(
        &mut self,
        actor: &Actor,
        page: u32,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("turn pages")?;
        let Some(slide) = self.slide else {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                "no document is shown; open one first",
            ));
        };
        self.show(
            Slide {
                page: valid_page(page, slide.pages)?,
                by: actor.id,
                ..slide
            },
            out,
        );
        Ok(())
    }

    pub(super) fn close_document(
        &mut self,
        actor: &Actor,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("close documents")?;
        if self.slide.take().is_some() {
            out.push(Output::Broadcast {
                except: None,
                message: ServerMessage::Slide { slide: None },
            });
            self.board_page_changed(out);
        }
        Ok(())
    }

    /// Lets students browse the shown document on their own, or no longer.
    pub(super) fn allow_browsing(
        &mut self,
        actor: &Actor,
        allowed: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("let students browse")?;
        let Some(slide) = self.slide else {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                "no document is shown; open one first",
            ));
        };
        self.show(
            Slide {
                browse: allowed,
                ..slide
            },
            out,
        );
        Ok(())
    }

    /// Shows `slide` to everyone, unless it is what they see already.
    fn show(&mut self, slide: Slide, out: &mut Vec<Output>) {
        let shown = self.slide;
        let same_page =
            shown.is_some_and(|shown| (shown.document, shown.page) == (slide.document, slide.page));
        self.slide = Some(slide);
        if !same_page || shown.is_some_and(|shown| shown.browse != slide.browse) {
            out.push(Output::Broadcast {
                except: None,
                message: ServerMessage::Slide { slide: Some(slide) },
            });
        }
        if !same_page {
            self.board_page_changed(out);
        }
    }

    /// The document shown now and its page.
    pub fn slide(&self) -> Option<Slide> {
        self.slide
    }
}

fn valid_page(page: u32, pages: u32) -> Result<u32, Refusal> {
    if (1..=pages).contains(&page) {
        Ok(page)
    } else {
        Err(Refusal::new(
            ErrorCode::InvalidMessage,
            format!("page {page} is not a page of this document (1 to {pages})"),
        ))
    }
}
