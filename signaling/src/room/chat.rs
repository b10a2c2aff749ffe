//! The chat: messages to everyone, numbered, with a bounded history for late joiners, and the
//! moderators' lock (only moderators may chat while it is on).

use std::time::Instant;

use classroom_protocol::ErrorCode;
use classroom_protocol::signal::{ChatMessage, ServerMessage};

use super::{Actor, AttendanceEvent, Output, Refusal, Room};

impl Room {
    pub(super) fn send_chat(
        &mut self,
        now: Instant,
        actor: &Actor,
        text: &str,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        if !actor.may_chat {
            return Err(Refusal::grant("chat", "send chat messages"));
        }
        if self.chat_locked && !actor.moderator {
            return Err(Refusal::new(
                ErrorCode::ChatLocked,
                "the teacher has locked the chat",
            ));
        }
        let text = text.trim();
        if text.is_empty() {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                "a chat message cannot be empty",
            ));
        }
        if text.chars().count() > self.config.max_chat_chars {
            return Err(Refusal::new(
                ErrorCode::InvalidMessage,
                format!(
                    "a chat message has at most {} characters",
                    self.config.max_chat_chars
                ),
            ));
        }
        let message = ChatMessage {
            seq: self.next_chat_seq,
            from: actor.id,
            name: actor.name.clone(),
            text: text.to_string(),
            at_ms: u64::try_from(now.saturating_duration_since(self.opened_at).as_millis())
                .unwrap_or(u64::MAX),
        };
        self.next_chat_seq += 1;
        if self.chat.len() >= self.config.chat_history {
            self.chat.pop_front();
        }
        self.chat.push_back(message.clone());
        out.push(Output::Broadcast {
            except: None,
            message: ServerMessage::Chat { message },
        });
        self.attended(actor.id, |user| AttendanceEvent::ChatSent { user }, out);
        Ok(())
    }

    pub(super) fn lock_chat(
        &mut self,
        actor: &Actor,
        locked: bool,
        out: &mut Vec<Output>,
    ) -> Result<(), Refusal> {
        actor.require_moderator("lock the chat")?;
        if self.chat_locked != locked {
            self.chat_locked = locked;
            out.push(Output::Broadcast {
                except: None,
                message: ServerMessage::ChatLocked { locked },
            });
        }
        Ok(())
    }
}
