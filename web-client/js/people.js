// The People and Hands panels of the live page: one row per person (role, stage, hand,
// microphone, speaking, connection quality) with the moderators' actions, and the queue of
// raised hands with Bring on stage / Lower hand.

import { el } from "./page.js";

const QUALITY_TEXT = {
  excellent: "Connection: excellent",
  good: "Connection: good",
  poor: "Connection: poor (video may freeze or drop to a lower quality)",
  lost: "Connection: lost (no media arriving)",
};

/** Bars for a connection quality, with the words as tooltip and accessible name. */
export function qualityMark(quality) {
  if (!QUALITY_TEXT[quality]) return null;
  return el("span", { class: `quality ${quality}`, title: QUALITY_TEXT[quality], role: "img", "aria-label": QUALITY_TEXT[quality] },
    el("i"), el("i"), el("i"));
}

/**
 * `view`: what the rows need from the page: `state`, `moderator` (bool), `hasAudio(id)`,
 * `send(message)`, `stageNote(id)` ("declined", "left the stage" or "").
 */
export function personRow(p, view) {
  const { state } = view;
  const student = p.role === "student";
  const stageNote = view.stageNote(p.id);
  const flags = [
    p.role,
    p.on_stage && student ? "on stage" : stageNote,
    p.muted ? "muted" : "",
    p.reconnecting ? "reconnecting" : "",
    state.speakers.has(p.id) ? "speaking" : "",
  ].filter(Boolean).join(", ");
  const hand = state.hands.includes(p.id);
  const item = el("li", { "data-participant": p.id, class: hand ? "hand-up" : "" },
    hand ? el("span", { class: "hand-flag", role: "img", "aria-label": "hand raised", title: "Hand raised", text: "✋" }) : null,
    el("span", { class: "person-name", text: `${p.name}${p.id === state.me ? " (you)" : ""}` }),
    qualityMark(state.quality.get(p.id)),
    el("span", { class: "person-flags", text: flags }));
  if (view.moderator && p.id !== state.me && student) {
    item.append(...[
      p.on_stage
        ? action("Take off stage", `Take ${p.name} off stage`, { type: "remove_from_stage", participant: p.id }, view)
        : action("Bring on stage", `Bring ${p.name} on stage`, { type: "invite_to_stage", participant: p.id }, view),
      // Muting is offered only to someone whose microphone reaches us, and not muted already.
      p.on_stage && !p.muted && view.hasAudio(p.id) ? action("Mute", `Mute ${p.name}`, { type: "mute", participant: p.id }, view) : null,
      action("Remove", `Remove ${p.name}`, { type: "remove_participant", participant: p.id }, view),
    ].filter(Boolean));
  }
  return item;
}

/** A raised hand in the queue (first raised first). */
export function handRow(id, position, view) {
  const p = view.state.participants.get(id);
  const name = p?.name ?? `participant ${id}`;
  const item = el("li", { "data-participant": id },
    el("span", { class: "person-name", text: `${position}. ✋ ${name}${id === view.state.me ? " (you)" : ""}` }));
  if (view.moderator && p) {
    item.append(
      action("Bring on stage", `Bring ${name} on stage`, { type: "invite_to_stage", participant: id }, view),
      action("Lower hand", `Lower hand of ${name}`, { type: "lower_hand", participant: id }, view),
    );
  }
  return item;
}

/** A removed user, for moderators: they stay out of the lesson until let back in. */
export function removedRow(userId, name, readmit) {
  const letBackIn = el("button", {
    type: "button",
    text: "Let back in",
    "aria-label": `Let back in: ${name}`,
    onclick: () => readmit(userId, name),
  });
  return el("li", { "data-removed": userId }, el("span", { text: name }), letBackIn);
}

// The visible text starts the accessible name, so voice control users can say what they see.
function action(text, label, message, view) {
  return el("button", {
    type: "button",
    text,
    "aria-label": label.startsWith(text) ? label : `${text}: ${label}`,
    onclick: () => view.send(message).catch(() => {}),
  });
}
