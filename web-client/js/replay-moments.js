// The replay's polls and slides (moments.json, made by the recorder from what the room
// broadcast to everyone): each poll shows in the side panel once the replay reaches the time
// it was asked, closed once it closed, with its results once they were shown to the class;
// each slide turned becomes a chapter ("Slide 3 of Cells").

import { list, number, t } from "./i18n.js";
import { el } from "./page.js";
import { pollOption } from "./polls.js";
import { clock } from "./replay-format.js";

/** The moments of a replay, or none (an older replay has no moments file). */
export async function loadMoments(url) {
  if (!url) return [];
  const moments = await fetch(url).then((r) => (r.ok ? r.json() : [])).catch(() => []);
  return Array.isArray(moments) ? moments : [];
}

/** Chapters for the slides turned; `titles` maps a document id to its title. */
export function slideChapters(moments, titles) {
  return moments.filter((m) => m.type === "slide").map((m) => {
    const title = titles.get(m.document);
    return { at_ms: m.at_ms, title: title ? t("replay.slideOfTitle", { page: m.page, title }) : t("replay.slideOfPages", { page: m.page, pages: m.pages }) };
  });
}

function answerText(poll, answer) {
  if (answer?.choices) return list(answer.choices.map((i) => (i in poll.options ? pollOption(poll.options[i]) : "?")));
  if (answer && "number" in answer) return String(answer.number);
  return answer?.text ?? "";
}

function resultRows(poll, results) {
  const total = Math.max(results.answered, 1);
  const correct = results.correct?.choices ?? [];
  const rows = (results.tallies || []).map((count, i) => {
    const percent = Math.round((100 * count) / total);
    const right = correct.includes(i);
    // Set through the CSSOM: the page's CSP allows no style attributes.
    const fill = el("span", { class: "poll-bar-fill" });
    fill.style.width = `${percent}%`;
    return el("li", { class: right ? "poll-bar correct" : "poll-bar" },
      el("span", { class: "poll-bar-label", text: `${i in poll.options ? pollOption(poll.options[i]) : "?"}${right ? " ✓" : ""}` }),
      el("span", { class: "poll-bar-track" }, fill),
      el("span", { class: "poll-bar-count", text: t("polls.countPercent", { count, percent: number(percent / 100, { style: "percent" }) }) }));
  });
  for (const v of results.values || []) {
    rows.push(el("li", { class: "poll-bar" },
      el("span", { class: "poll-bar-label", text: v.value }),
      el("span", { class: "poll-bar-count", text: String(v.count) })));
  }
  const summary = [t("polls.answered", { count: results.answered })];
  if (results.correct_count != null) summary.push(t("polls.correctCount", { count: results.correct_count }));
  if (results.correct && !results.correct.choices) summary.push(t("polls.correctAnswer", { answer: answerText(poll, results.correct) }));
  return [el("p", { class: "poll-summary", text: summary.join(t("common.separator")) }), el("ul", { class: "poll-bars" }, ...rows)];
}

/** Each poll as it stood at `now_ms`: its latest state and its shown results, in asking order. */
function pollsAt(moments, nowMs) {
  const polls = new Map();
  for (const m of moments) {
    if (m.at_ms > nowMs) break;
    if (m.type === "poll") {
      const known = polls.get(m.poll.id);
      polls.set(m.poll.id, { poll: m.poll, askedAt: known?.askedAt ?? m.at_ms, results: known?.results ?? null, shownAt: known?.shownAt });
    } else if (m.type === "poll_results") {
      const id = m.results.poll.id;
      const known = polls.get(id);
      polls.set(id, { poll: known?.poll ?? m.results.poll, askedAt: known?.askedAt ?? m.at_ms, results: m.results, shownAt: m.at_ms });
    }
  }
  return [...polls.values()];
}

function pollItem({ poll, askedAt, results, shownAt }) {
  const status = poll.closed ? t("replay.pollClosed") : t("replay.pollOpen");
  const item = el("li", { class: "replay-poll", "data-poll": poll.id },
    el("p", { class: "poll-title" }, el("strong", { text: poll.question || t("polls.quickPoll") })),
    el("p", { class: "poll-status muted", text: [clock(askedAt), poll.quiz ? t("replay.quiz") : t("replay.poll"), status].join(t("common.separator")) }));
  if (results) {
    item.append(el("p", { class: "poll-status", text: t("replay.resultsShownAt", { at: clock(shownAt) }) }), ...resultRows(poll, results));
  } else if (poll.options?.length) {
    item.append(el("p", { class: "muted", text: poll.options.map(pollOption).join(t("common.separator")) }));
  }
  return item;
}

/** Keeps `list` showing the polls as they stood at the player's current time. */
export function followPolls(moments, player, list) {
  const hasPolls = moments.some((m) => m.type === "poll" || m.type === "poll_results");
  let shown = null;
  const update = () => {
    const now = player.currentTime * 1000;
    // Redraw only when what is due changes (timeupdate fires several times a second).
    const due = moments.filter((m) => m.at_ms <= now && m.type !== "slide" && m.type !== "slide_closed").length;
    if (due === shown) return;
    shown = due;
    const polls = pollsAt(moments, now);
    list.replaceChildren(...(polls.length
      ? polls.map(pollItem)
      : [el("li", { class: "muted", text: hasPolls ? t("replay.noPollsYet") : t("replay.noPolls") })]));
  };
  player.addEventListener("timeupdate", update);
  player.addEventListener("seeked", update);
  update();
}
