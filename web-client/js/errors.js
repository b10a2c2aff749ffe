// What to tell the person for each signaling error code (docs/protocol.md, "Error codes"):
// the one table of these texts. `ends` marks the codes that end our place in the lesson for
// good (joining again would be refused), with how the page ends: "removed", "revoked" or
// "ended". The texts are in the catalogues (web-client/i18n), under `error.CODE`. A Rust test (protocol/tests/error_codes.rs) checks that every code the server can
// send has a text here, and nothing else.

import { t } from "./i18n.js";

export const ERROR_TEXTS = {
  malformed_json: { text: () => t("error.malformed_json") },
  invalid_message: { text: () => t("error.invalid_message") },
  unknown_type: { text: () => t("error.unknown_type") },
  unsupported_version: { text: () => t("error.unsupported_version") },
  message_too_large: { text: () => t("error.message_too_large") },
  rate_limited: { text: () => t("error.rate_limited") },
  missing_grant: { text: () => t("error.missing_grant") },
  chat_locked: { text: () => t("error.chat_locked") },
  recording_state: { text: () => t("error.recording_state") },
  unknown_participant: { text: () => t("error.unknown_participant") },
  not_on_stage: { text: () => t("error.not_on_stage") },
  cannot_remove_moderator: { text: () => t("error.cannot_remove_moderator") },
  encoder_participant: { text: () => t("error.encoder_participant") },
  not_joined: { text: () => t("error.not_joined") },
  already_joined: { text: () => t("error.already_joined") },
  join_timeout: { text: () => t("error.join_timeout") },
  invalid_token: { text: () => t("error.invalid_token") },
  room_full: { text: () => t("error.room_full") },
  wrong_room: { text: () => t("error.wrong_room") },
  unavailable: { text: () => t("error.unavailable") },
  wrong_node: { text: () => t("error.wrong_node") },
  server_draining: { text: () => t("error.server_draining") },
  removed_from_lesson: { text: () => t("error.removed_from_lesson"), ends: "removed" },
  account_disabled: { text: () => t("error.account_disabled"), ends: "revoked" },
  not_a_member: { text: () => t("error.not_a_member"), ends: "revoked" },
  lesson_ended: { text: () => t("error.lesson_ended"), ends: "ended" },
  lesson_cancelled: { text: () => t("error.lesson_cancelled"), ends: "ended" },
  invalid_sdp: { text: () => t("error.invalid_sdp") },
  no_pending_offer: { text: () => t("error.no_pending_offer") },
  no_media_session: { text: () => t("error.no_media_session") },
  media_unavailable: { text: () => t("error.media_unavailable") },
  unknown_mid: { text: () => t("error.unknown_mid") },
  board_full: { text: () => t("error.board_full") },
  invalid_poll: { text: () => t("error.invalid_poll") },
  invalid_answer: { text: () => t("error.invalid_answer") },
  poll_closed: { text: () => t("error.poll_closed") },
  already_answered: { text: () => t("error.already_answered") },
  too_many_polls: { text: () => t("error.too_many_polls") },
  invalid_breakout: { text: () => t("error.invalid_breakout") },
  breakout_state: { text: () => t("error.breakout_state") },
};

/** The text for a refusal: the table's, or the server's own message for a code it does not
 * know (a newer server). */
export function errorText(error) {
  return ERROR_TEXTS[error.code]?.text() ?? error.message;
}
