// The replay of a lesson: /replay.html?lesson=ID[&replay=ID]. The lesson's recordings are
// listed (its main room's first, then each recorded breakout room's, named by its room and
// round); the chosen one plays. A ready replay plays its HLS
// playlist in a <video> (Chromium plays HLS natively), lists its chapters (click to jump),
// shows the chat and the polls as they were at the current time (slides turned are chapters
// too: the recorder's own, titled by the page, or from moments.json for older replays), and
// offers the MP4 download. The file links
// carry a token of their own and expire after a few hours: reloading the page renews them.

import { api } from "./api.js";
import { t } from "./i18n.js";
import { $, el, report, requireSession } from "./page.js";
import { clock, replayFacts, replayName, replayState } from "./replay-format.js";
import { followPolls, loadMoments, slideChapters } from "./replay-moments.js";

const params = new URLSearchParams(location.search);
const lessonId = params.get("lesson");

function statusOf(replay) {
  if (!replay) return t("replay.noneYet");
  if (replay.state === "processing") return t("replay.processing");
  if (replay.state === "failed") return t("replay.failed");
  if (!replay.url) return t("replay.notPlayable");
  return t("replay.titleFacts", { title: replayName(replay), facts: replayFacts(replay) });
}

/** The titles of the course's documents by id, for the slide chapters (none if unreadable). */
async function documentTitles(courseId) {
  const list = await api(`/api/v1/courses/${encodeURIComponent(courseId)}/documents`).catch(() => ({ items: [] }));
  return new Map((list.items || []).map((d) => [d.id, d.title]));
}

function showChapters(replay, player, extra = []) {
  const chapters = replay?.state === "ready"
    ? [...(replay.chapters || []), ...extra].sort((a, b) => a.at_ms - b.at_ms)
    : [];
  $("chapters").replaceChildren(...(chapters.length
    ? chapters.map((c) => el("li", {},
      el("button", {
        type: "button",
        text: t("replay.chapter", { at: clock(c.at_ms), title: c.title }),
        onclick: () => { player.currentTime = c.at_ms / 1000; player.play().catch(() => {}); },
      })))
    : [el("li", { class: "muted", text: t("replay.none") })]));
}

/** Shows the chat messages sent before the current time, newest last. */
function followChat(lines, player) {
  let shown = -1;
  const update = () => {
    const now = player.currentTime * 1000;
    const count = lines.filter((l) => l.at_ms <= now).length;
    if (count === shown) return;
    shown = count;
    $("replay-chat").replaceChildren(...(count
      ? lines.slice(0, count).map((l) => el("li", { text: t("replay.chatLine", { at: clock(l.at_ms), name: l.name, text: l.text }) }))
      : [el("li", { class: "muted", text: lines.length ? t("replay.noMessagesYet") : t("replay.noChat") })]));
  };
  player.addEventListener("timeupdate", update);
  player.addEventListener("seeked", update);
  update();
}

async function load() {
  const lesson = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}`);
  $("title").textContent = t("replay.lessonTitle", { title: lesson.title });
  document.title = t("replay.documentTitle", { title: lesson.title });
  $("back").href = `/course.html?id=${lesson.course_id}`;
  const replays = (await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}/replays`)).items;
  const wanted = params.get("replay");
  const chosen = replays.find((r) => String(r.id) === wanted)
    ?? replays.find((r) => r.state === "ready") ?? replays[0];
  $("status").textContent = statusOf(chosen);
  const player = $("player");
  const playable = chosen?.state === "ready" && chosen.url;
  player.hidden = !playable;
  $("download-row").hidden = !(playable && chosen.download_url);
  if (playable) {
    player.src = chosen.url;
    player.setAttribute("aria-label", t("course.replayLabel", { title: lesson.title }));
    if (chosen.download_url) $("download").href = chosen.download_url;
    const lines = chosen.chat_url ? await fetch(chosen.chat_url).then((r) => (r.ok ? r.json() : [])).catch(() => []) : [];
    followChat(lines, player);
  }
  const moments = playable ? await loadMoments(chosen.moments_url) : [];
  // Replays made since the recorder draws the slides have a chapter of their own for each
  // (titled by the page's first line, at the same time): the moments add those of older ones.
  const titled = new Set((chosen?.chapters || []).map((c) => c.at_ms));
  const untitled = moments.filter((m) => m.type !== "slide" || !titled.has(m.at_ms));
  const slides = untitled.some((m) => m.type === "slide") ? slideChapters(untitled, await documentTitles(lesson.course_id)) : [];
  followPolls(moments, player, $("replay-polls"));
  showChapters(chosen, player, slides);
  $("replays").replaceChildren(...(replays.length
    ? replays.map((r) => el("li", {},
      el("a", { href: `?lesson=${lessonId}&replay=${r.id}`, text: t("replay.listItem", { title: replayName(r), facts: replayFacts(r) }), "aria-current": r === chosen ? "true" : "false", ...(r.breakout ? { "data-breakout": `${r.breakout.round}-${r.breakout.room}` } : {}) }),
      el("span", { class: "pill", text: replayState(r.state) })))
    : [el("li", { class: "muted", text: t("replay.none") })]));
}

if (requireSession()) load().catch(report);
