// The People and Hands panels of the live page: one row per person (role, stage, hand,
// microphone, speaking, connection quality) with the moderators' actions, and the queue of
// raised hands with Bring on stage / Lower hand.

import { t } from "./i18n.js";
import { el, roleName } from "./page.js";

const QUALITY_TEXT = {
  excellent: () => t("people.qualityExcellent"),
  good: () => t("people.qualityGood"),
  poor: () => t("people.qualityPoor"),
  lost: () => t("people.qualityLost"),
};

// Roles in a lesson: the school's (teacher, student) and the lesson's own (assistant,
// observer, the encoder and the recorder).
const LESSON_ROLES = {
  assistant: () => t("role.assistant"),
  observer: () => t("role.observer"),
};
const lessonRole = (role) => LESSON_ROLES[role]?.() ?? roleName(role);

/** A name, marked when it is one's own. */
const nameOf = (name, own) => (own ? t("live.ownTile", { name }) : name);

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
  const text = QUALITY_TEXT[quality]();
  return el("span", { class: `quality ${quality}`, title: text, role: "img", "aria-label": text },
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
    lessonRole(p.role),
    p.on_stage && student ? t("people.onStage") : stageNote,
    p.muted ? t("people.muted") : "",
    p.reconnecting ? t("people.reconnecting") : "",
    state.speakers.has(p.id) ? t("people.speaking") : "",
    view.holdsPen?.(p.id) ? t("people.hasPen") : "",
  ].filter(Boolean).join(t("people.flagSeparator"));
  const hand = state.hands.includes(p.id);
  const item = el("li", { "data-participant": p.id, class: hand ? "hand-up" : "" },
    hand ? handIcon(t("people.handRaised")) : null,
    el("span", { class: "person-name", text: nameOf(p.name, p.id === state.me) }),
    qualityMark(state.quality.get(p.id)),
    el("span", { class: "person-flags", text: flags }));
  if (view.moderator && p.id !== state.me && student) {
    item.append(...[
      p.on_stage
        ? action(t("people.takeOffStage"), t("people.takeOffStageLabel", { name: p.name }), { type: "remove_from_stage", participant: p.id }, view)
        : action(t("people.bringOnStage"), t("people.bringOnStageLabel", { name: p.name }), { type: "invite_to_stage", participant: p.id }, view),
      // Muting is offered only to someone whose microphone reaches us, and not muted already.
      p.on_stage && !p.muted && view.hasAudio(p.id) ? action(t("people.mute"), t("people.muteLabel", { name: p.name }), { type: "mute", participant: p.id }, view) : null,
      // The whiteboard's pen (js/board.js): the student may draw while holding it.
      view.holdsPen?.(p.id)
        ? action(t("people.takePen"), t("people.takePenLabel", { name: p.name }), { type: "take_pen", participant: p.id }, view)
        : action(t("people.givePen"), t("people.givePenLabel", { name: p.name }), { type: "give_pen", participant: p.id }, view),
      action(t("people.remove"), t("people.removeLabel", { name: p.name }), { type: "remove_participant", participant: p.id }, view),
    ].filter(Boolean));
  }
  return item;
}

/** A raised hand in the queue (first raised first). */
export function handRow(id, position, view) {
  const p = view.state.participants.get(id);
  const name = p?.name ?? t("live.participantNumber", { id: String(id) });
  const item = el("li", { "data-participant": id },
    el("span", { class: "person-name" }, t("people.queuePosition", { position }), handIcon(null), ` ${nameOf(name, id === view.state.me)}`));
  if (view.moderator && p) {
    item.append(
      action(t("people.bringOnStage"), t("people.bringOnStageLabel", { name }), { type: "invite_to_stage", participant: id }, view),
      action(t("live.lowerHand"), t("people.lowerHandLabel", { name }), { type: "lower_hand", participant: id }, view),
    );
  }
  return item;
}

/** A removed user, for moderators: they stay out of the lesson until let back in. */
export function removedRow(userId, name, readmit) {
  const letBackIn = el("button", {
    type: "button",
    text: t("people.letBackIn"),
    "aria-label": t("people.letBackInLabel", { name }),
    onclick: () => readmit(userId, name),
  });
  return el("li", { "data-removed": userId }, el("span", { text: name }), letBackIn);
}

// The visible text starts the accessible name, so voice control users can say what they see.
function action(text, label, message, view) {
  return el("button", {
    type: "button",
    text,
    "aria-label": label.startsWith(text) ? label : t("people.actionLabel", { text, label }),
    onclick: () => view.send(message).catch(() => {}),
  });
}
