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

const SVG = "http://www.w3.org/2000/svg";

/** A raised hand (drawn, not an emoji: not every system has an emoji font). */
function handIcon(label) {
  const svg = document.createElementNS(SVG, "svg");
  for (const [k, v] of Object.entries({ class: "hand-flag", viewBox: "0 0 24 24", fill: "none", stroke: "currentColor", "stroke-width": "2", "stroke-linecap": "round", "stroke-linejoin": "round" })) svg.setAttribute(k, v);
  if (label) {
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", label);
    const title = document.createElementNS(SVG, "title");
    title.textContent = label;
    svg.append(title);
  } else {
    svg.setAttribute("aria-hidden", "true");
  }
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", "M8 13V6a1.5 1.5 0 0 1 3 0v5M11 11V4.5a1.5 1.5 0 0 1 3 0V11M14 11V6a1.5 1.5 0 0 1 3 0v7a6 6 0 0 1-6 6h-1a5 5 0 0 1-4-2l-3-4a1.5 1.5 0 0 1 2.3-2L8 13");
  svg.append(path);
  return svg;
}

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
    view.holdsPen?.(p.id) ? "has the pen" : "",
  ].filter(Boolean).join(", ");
  const hand = state.hands.includes(p.id);
  const item = el("li", { "data-participant": p.id, class: hand ? "hand-up" : "" },
    hand ? handIcon("hand raised") : null,
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
      // The whiteboard's pen (js/board.js): the student may draw while holding it.
      view.holdsPen?.(p.id)
        ? action("Take pen", `Take pen from ${p.name}`, { type: "take_pen", participant: p.id }, view)
        : action("Give pen", `Give pen to ${p.name}`, { type: "give_pen", participant: p.id }, view),
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
    el("span", { class: "person-name" }, `${position}. `, handIcon(null), ` ${name}${id === view.state.me ? " (you)" : ""}`));
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
