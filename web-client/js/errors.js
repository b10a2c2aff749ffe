// What to tell the person for each signaling error code (docs/protocol.md, "Error codes"):
// the one table of these texts. `ends` marks the codes that end our place in the lesson for
// good (joining again would be refused), with how the page ends: "removed", "revoked" or
// "ended". A Rust test (protocol/tests/error_codes.rs) checks that every code the server can
// send has a text here, and nothing else.

export const ERROR_TEXTS = {
  malformed_json: { text: "The server could not read a message from this page. Reload the page." },
  invalid_message: { text: "The server could not use that message." },
  unknown_type: { text: "The server does not know that action. Reload the page to update it." },
  unsupported_version: { text: "This page is out of date. Reload it." },
  message_too_large: { text: "That message is too long." },
  rate_limited: { text: "Too many actions at once; slow down a little." },
  missing_grant: { text: "You are not allowed to do that in this lesson." },
  chat_locked: { text: "The teacher has locked the chat." },
  recording_state: { text: "The recording is not in a state where that applies." },
  unknown_participant: { text: "That participant is no longer in the lesson." },
  not_on_stage: { text: "That participant is not a student on stage." },
  cannot_remove_moderator: { text: "Teachers and assistants cannot be removed." },
  encoder_participant: { text: "The encoder is controlled from the encoder itself: stop streaming there." },
  not_joined: { text: "Not in the lesson yet; joining…" },
  already_joined: { text: "Already in the lesson." },
  join_timeout: { text: "Joining took too long." },
  invalid_token: { text: "The join ticket expired; getting a new one." },
  room_full: { text: "The lesson is full." },
  wrong_room: { text: "The join ticket is for another lesson." },
  unavailable: { text: "The server cannot check your access right now; trying again." },
  wrong_node: { text: "This lesson moved to another of the school's servers; joining it there." },
  removed_from_lesson: { text: "You were removed from this lesson. A teacher can let you back in.", ends: "removed" },
  account_disabled: { text: "Your account was disabled, so you have left the lesson. Ask the school's administrator.", ends: "revoked" },
  not_a_member: { text: "You are no longer a member of this course, so you have left the lesson.", ends: "revoked" },
  lesson_ended: { text: "The lesson has ended.", ends: "ended" },
  lesson_cancelled: { text: "This lesson was cancelled.", ends: "ended" },
  invalid_sdp: { text: "Your browser's media description was refused; try again or use another browser." },
  no_pending_offer: { text: "The media connection got out of step; it will be set up again." },
  no_media_session: { text: "The media connection was lost; it will be set up again." },
  media_unavailable: { text: "This server does not carry audio or video." },
  unknown_mid: { text: "That video is no longer shown." },
  board_full: { text: "This board holds all the drawing it can; clear a page to draw more." },
  invalid_poll: { text: "That poll cannot be asked: check the question, its options and the timer." },
  invalid_answer: { text: "That answer does not fit the poll." },
  poll_closed: { text: "The poll has closed." },
  already_answered: { text: "You have answered this poll already." },
  too_many_polls: { text: "This lesson has asked as many polls as it may." },
  invalid_breakout: { text: "Those breakout rooms cannot be opened: check the number of rooms, the timer and who goes where." },
  breakout_state: { text: "The breakout rooms are not in a state where that applies." },
};

/** The text for a refusal: the table's, or the server's own message for a code it does not
 * know (a newer server). */
export function errorText(error) {
  return ERROR_TEXTS[error.code]?.text ?? error.message;
}
