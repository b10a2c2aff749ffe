//! The codes of signaling `error` messages ([`crate::signal::ServerMessage::Error`]): one
//! enum, so that the server cannot send a code the protocol does not name and a client can
//! match on them. `docs/protocol.md` ("Error codes") lists exactly these, and the web client
//! keeps a text for each (`web-client/js/errors.js`); tests in the `classroom-tests` crate
//! check both against [`ErrorCode::ALL`].

use serde::{Deserialize, Serialize};

/// Declares the enum, its list of all codes and their wire names from one list, so that a
/// code cannot be added to one and forgotten in another.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// Why the server refused a signaling message (`code` of an `error` message).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the protocol document.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code on the wire (snake_case).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $text,)*
                }
            }
        }
    };
}

error_codes! {
    /// The frame is not JSON.
    MalformedJson = "malformed_json",
    /// A known type with missing or wrong fields, a binary frame, or a chat message that is
    /// empty or too long.
    InvalidMessage = "invalid_message",
    /// No such message type.
    UnknownType = "unknown_type",
    /// `v` is not [`crate::PROTOCOL_VERSION`].
    UnsupportedVersion = "unsupported_version",
    /// Larger than the server's message size limit.
    MessageTooLarge = "message_too_large",
    /// Too many messages; slow down.
    RateLimited = "rate_limited",
    /// The action needs the grant named in the error's `grant`.
    MissingGrant = "missing_grant",
    /// The teacher locked the chat.
    ChatLocked = "chat_locked",
    /// A recording control that does not fit the recording's state.
    RecordingState = "recording_state",
    /// No such participant in the room.
    UnknownParticipant = "unknown_participant",
    /// `remove_from_stage` aimed at someone who is not a student on stage.
    NotOnStage = "not_on_stage",
    /// Teachers and assistants cannot be removed.
    CannotRemoveModerator = "cannot_remove_moderator",
    /// Moderation aimed at the encoder, which is controlled from the encoder itself.
    EncoderParticipant = "encoder_participant",
    /// `join` must come first.
    NotJoined = "not_joined",
    /// `join` comes once.
    AlreadyJoined = "already_joined",
    /// `join` did not come in time.
    JoinTimeout = "join_timeout",
    /// The join token is invalid or expired.
    InvalidToken = "invalid_token",
    /// The room has its maximum of participants.
    RoomFull = "room_full",
    /// The join token is for another room.
    WrongRoom = "wrong_room",
    /// The server cannot check access right now; try again.
    Unavailable = "unavailable",
    /// Several nodes: the lesson's room is on another node. Ask `POST /api/v1/lessons/{id}/join`
    /// again and open its `signaling_url`.
    WrongNode = "wrong_node",
    /// The server is draining before a restart or an upgrade: join again (the REST join names
    /// the node to use); connections it had are closed with 1012.
    ServerDraining = "server_draining",
    /// A moderator removed the user from the lesson.
    RemovedFromLesson = "removed_from_lesson",
    /// The account is disabled.
    AccountDisabled = "account_disabled",
    /// The user is no longer a member of the lesson's course.
    NotAMember = "not_a_member",
    /// The lesson has ended.
    LessonEnded = "lesson_ended",
    /// The lesson was cancelled.
    LessonCancelled = "lesson_cancelled",
    /// The SDP could not be used.
    InvalidSdp = "invalid_sdp",
    /// An `answer` without an outstanding server `offer`.
    NoPendingOffer = "no_pending_offer",
    /// No media session (send an `offer` first, or again).
    NoMediaSession = "no_media_session",
    /// The server runs without media.
    MediaUnavailable = "media_unavailable",
    /// `video_size` named an m-line that carries no video to the client.
    UnknownMid = "unknown_mid",
    /// The whiteboard page, or the room's boards together, hold all the drawing they may
    /// (strokes, points, pages): clear a page first.
    BoardFull = "board_full",
    /// `ask_poll` with a question that does not fit its kind or the limits.
    InvalidPoll = "invalid_poll",
    /// An answer that does not fit the poll (wrong kind, no such option, too long), or from a
    /// moderator.
    InvalidAnswer = "invalid_answer",
    /// The poll named is closed or not the current one.
    PollClosed = "poll_closed",
    /// A second answer to a poll that does not allow changing answers.
    AlreadyAnswered = "already_answered",
    /// The lesson has asked its maximum of polls.
    TooManyPolls = "too_many_polls",
    /// `open_breakouts` or a move that does not fit: room count, timer, assignment, or a
    /// breakout room or student that is not there.
    InvalidBreakout = "invalid_breakout",
    /// Breakout rooms are open already (close them first), or none are, or they are not open
    /// for students to choose.
    BreakoutState = "breakout_state",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_their_snake_case_names_on_the_wire_and_back() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).expect("parses");
            assert_eq!(back, *code);
        }
        assert!(serde_json::from_str::<ErrorCode>("\"no_such_code\"").is_err());
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len(), "each name once");
    }
}
