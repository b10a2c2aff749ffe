// How replays read in lists: what was recorded (the lesson, or one of its breakout rooms),
// when, how long the replay is and what it takes on disk (course page, replay page).

import { number, t } from "./i18n.js";
import { when } from "./page.js";

/** mm:ss (or h:mm:ss) of a time in milliseconds. */
export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const mmss = `${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mmss}` : mmss;
}

/** A size in bytes as people read it: 840 KB, 12.5 MB, 1.2 GB. */
export function bytes(n) {
  if (!Number.isFinite(n) || n < 0) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : 1;
  return `${number(value, { minimumFractionDigits: digits, maximumFractionDigits: digits })} ${units[unit]}`;
}

const REPLAY_STATES = {
  ready: () => t("replayState.ready"),
  processing: () => t("replayState.processing"),
  failed: () => t("replayState.failed"),
};

/** A replay's state (ready, processing, failed) in the visitor's language. */
export function replayState(state) {
  return REPLAY_STATES[state]?.() ?? state;
}

/** "recorded 7 Dec 2026, 09:00 · 45:12 · 310.4 MB": what is known of a replay. */
export function replayFacts(replay) {
  const facts = [t("replay.recordedAt", { when: when(replay.created_at) })];
  if (replay.duration_ms != null) facts.push(clock(replay.duration_ms));
  if (replay.size_bytes != null) facts.push(bytes(replay.size_bytes));
  return facts.join(" · ");
}

/** The replay's name: its lesson's title, with the breakout room it recorded if it is one's. */
export function replayName(replay) {
  const breakout = replay.breakout;
  if (!breakout) return replay.title;
  return t("replay.breakoutTitle", { title: replay.title, room: t("breakout.roomName", { n: breakout.room + 1 }), round: breakout.round });
}
