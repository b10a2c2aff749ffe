// Polls and quizzes in the live room (docs/protocol.md, "Polls and quizzes"). Moderators get a
// form in the Stream tab (and quick "A/B/C/D" and "Yes/No" buttons, also beside a shown slide)
// and, on the poll card, the live results and the buttons to close the poll and show its
// results to the class. Students get the poll card: the question, buttons or a field to
// answer, the timer's countdown, their answer, and the results once a moderator shows them.
//
// live.js calls `attachPolls(signaling, joined)` after every join (a reconnect brings the open
// poll and the student's own answer in `joined`).

import { api } from "./api.js";
import { el } from "./page.js";
import { errorText } from "./errors.js";
import { list, number, t } from "./i18n.js";

const KINDS = [
  ["single_choice", () => t("polls.singleChoice")],
  ["multiple_choice", () => t("polls.multipleChoice")],
  ["true_false", () => t("polls.trueFalse")],
  ["number", () => t("polls.number")],
  ["text", () => t("polls.shortText")],
];

// The options the server writes itself (a true-or-false question, the Yes/No quick poll), in
// the visitor's language; options a teacher typed are shown as typed.
const SERVER_OPTIONS = {
  True: () => t("polls.optionTrue"),
  False: () => t("polls.optionFalse"),
  Yes: () => t("polls.optionYes"),
  No: () => t("polls.optionNo"),
};

/** An option of a poll as shown. */
export function pollOption(option) {
  return SERVER_OPTIONS[option]?.() ?? option;
}

const view = {
  signaling: null,
  moderator: false,
  poll: null,
  /** The results last received (moderators: live; students: once shown). */
  results: null,
  answer: null,
  /** When the open poll's timer runs out, in this page's clock (ms), or null. */
  deadline: null,
  ticker: null,
  card: null,
  form: null,
};

function stylesheet() {
  if (!document.querySelector('link[href="/css/polls.css"]')) {
    document.head.append(el("link", { rel: "stylesheet", href: "/css/polls.css" }));
  }
}

function send(message, status) {
  return view.signaling?.request(message).then(
    () => true,
    (error) => {
      if (status) status.textContent = errorText(error);
      return false;
    },
  );
}

// --- The poll card (everyone) ------------------------------------------------------------

function card() {
  if (view.card) return view.card;
  stylesheet();
  const title = el("h2", { id: "poll-title", class: "poll-title" });
  const timer = el("p", { id: "poll-timer", class: "poll-timer", role: "timer", "aria-live": "off" });
  const answer = el("div", { id: "poll-answer", class: "poll-answer" });
  const mine = el("p", { id: "poll-mine", class: "poll-mine" });
  const results = el("div", { id: "poll-results", class: "poll-results", "aria-live": "polite" });
  const status = el("p", { id: "poll-status", class: "poll-status", role: "status" });
  const close = el("button", { id: "poll-close", type: "button", text: t("polls.close") });
  const show = el("button", { id: "poll-show", type: "button", class: "primary", text: t("polls.showResults") });
  const dismiss = el("button", { id: "poll-dismiss", type: "button", text: t("polls.hide") });
  const tools = el("div", { id: "poll-tools", class: "poll-tools", hidden: true }, close, show);
  const section = el("section", { id: "poll-card", class: "poll-card", "aria-labelledby": "poll-title", hidden: true },
    title, timer, answer, mine, results, status, el("div", { class: "poll-tools" }, tools, dismiss));
  close.addEventListener("click", () => send({ type: "close_poll", poll: view.poll.id }, status));
  show.addEventListener("click", () => send({ type: "show_poll_results", poll: view.poll.id }, status));
  dismiss.addEventListener("click", () => { section.hidden = true; });
  const area = document.querySelector("#stage-area") ?? document.body;
  const tiles = area.querySelector("#tiles");
  if (tiles) area.insertBefore(section, tiles);
  else area.append(section);
  view.card = { section, title, timer, answer, mine, results, status, tools, close, show };
  return view.card;
}

/** The text of an answer: the chosen options, the number or the text. */
function answerText(poll, answer) {
  if (!answer) return "";
  if (answer.choices) return list(answer.choices.map((i) => (i in poll.options ? pollOption(poll.options[i]) : `#${i}`)));
  if (answer.number !== undefined) return String(answer.number);
  return answer.text ?? "";
}

function answerControls(poll) {
  const c = view.card;
  const submit = async (answer) => {
    c.status.textContent = "";
    if (await send({ type: "answer_poll", poll: poll.id, answer }, c.status)) {
      view.answer = answer;
      render();
    }
  };
  const answered = view.answer !== null;
  const locked = poll.closed || (answered && !poll.changeable);
  if (poll.closed || view.moderator || locked) return [];
  if (poll.kind === "single_choice" || poll.kind === "true_false") {
    return poll.options.map((option, i) => el("button", {
      type: "button",
      class: view.answer?.choices?.[0] === i ? "poll-option chosen" : "poll-option",
      "aria-pressed": String(view.answer?.choices?.[0] === i),
      text: pollOption(option),
      onclick: () => submit({ choices: [i] }),
    }));
  }
  if (poll.kind === "multiple_choice") {
    const boxes = poll.options.map((option, i) => {
      const box = el("input", { type: "checkbox", id: `poll-choice-${i}`, value: String(i) });
      box.checked = !!view.answer?.choices?.includes(i);
      return el("label", { class: "poll-check", for: `poll-choice-${i}` }, box, ` ${pollOption(option)}`);
    });
    const go = el("button", { type: "button", class: "primary", text: t("polls.sendAnswer"), onclick: () => {
      const choices = boxes.map((l) => l.querySelector("input")).filter((b) => b.checked).map((b) => Number(b.value));
      if (choices.length) submit({ choices });
      else c.status.textContent = t("polls.chooseOne");
    } });
    return [...boxes, go];
  }
  const numeric = poll.kind === "number";
  const input = el("input", {
    id: "poll-value",
    type: numeric ? "number" : "text",
    step: "any",
    maxlength: "200",
    "aria-label": numeric ? t("polls.yourAnswerNumber") : t("polls.yourAnswerLabel"),
  });
  const go = el("button", { type: "button", class: "primary", text: t("polls.sendAnswer"), onclick: () => {
    const value = input.value.trim();
    if (!value) return;
    submit(numeric ? { number: Number(value) } : { text: value });
  } });
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") go.click(); });
  return [input, go];
}

function resultRows(poll, results) {
  const total = Math.max(results.answered, 1);
  const correct = results.correct?.choices ?? [];
  const rows = [];
  if (results.tallies.length) {
    results.tallies.forEach((count, i) => {
      const percent = Math.round((100 * count) / total);
      const right = correct.includes(i);
      // Set through the CSSOM: the page's CSP allows no style attributes.
      const fill = el("span", { class: "poll-bar-fill" });
      fill.style.width = `${percent}%`;
      rows.push(el("li", { class: right ? "poll-bar correct" : "poll-bar", "data-option": String(i) },
        el("span", { class: "poll-bar-label", text: `${pollOption(poll.options[i])}${right ? " ✓" : ""}` }),
        el("span", { class: "poll-bar-track" }, fill),
        el("span", { class: "poll-bar-count", text: t("polls.countPercent", { count, percent: number(percent / 100, { style: "percent" }) }) })));
    });
  }
  for (const v of results.values) {
    rows.push(el("li", { class: "poll-bar" },
      el("span", { class: "poll-bar-label", text: v.value }),
      el("span", { class: "poll-bar-count", text: String(v.count) })));
  }
  const summary = [t("polls.answered", { count: results.answered })];
  if (results.correct_count !== undefined && results.correct_count !== null) {
    summary.push(t("polls.correctCount", { count: results.correct_count }));
  }
  if (results.correct && !results.correct.choices) summary.push(t("polls.correctAnswer", { answer: answerText(poll, results.correct) }));
  const parts = [el("p", { id: "poll-summary", class: "poll-summary", text: summary.join(t("common.separator")) }),
    el("ul", { class: "poll-bars" }, ...rows)];
  if (results.answers?.length) {
    parts.push(el("details", { class: "poll-who" }, el("summary", { text: t("polls.whoAnswered") }),
      el("ul", {}, ...results.answers.map((a) => el("li", { text: t("live.chatLine", { name: a.name, text: answerText(poll, a.answer) }) })))));
  }
  return parts;
}

function render() {
  const c = card();
  const poll = view.poll;
  if (!poll) {
    c.section.hidden = true;
    return;
  }
  c.section.hidden = false;
  c.section.dataset.poll = String(poll.id);
  c.section.classList.toggle("closed", poll.closed);
  c.title.textContent = poll.question || (poll.quiz ? t("polls.quiz") : t("polls.quickPoll"));
  c.answer.replaceChildren(...answerControls(poll));
  const mine = answerText(poll, view.answer);
  c.mine.textContent = view.moderator ? "" : mine ? t("polls.yourAnswer", { answer: mine }) : poll.closed ? t("polls.didNotAnswer") : "";
  const results = view.results?.poll.id === poll.id ? view.results : null;
  c.results.replaceChildren(...(results ? resultRows(poll, results) : []));
  c.tools.hidden = !view.moderator;
  c.close.disabled = poll.closed;
  tick();
}

function tick() {
  const c = view.card;
  if (!c || !view.poll) return;
  if (view.poll.closed) {
    c.timer.textContent = t("polls.closed");
  } else if (view.deadline !== null) {
    const left = Math.max(0, Math.ceil((view.deadline - Date.now()) / 1000));
    c.timer.textContent = t("polls.closesIn", { seconds: left });
  } else {
    c.timer.textContent = t("polls.open");
  }
}

function pollArrived(poll) {
  if (view.poll?.id !== poll.id) {
    view.answer = null;
    view.results = null;
  }
  view.poll = poll;
  view.deadline = !poll.closed && poll.closes_in_ms !== undefined ? Date.now() + poll.closes_in_ms : null;
  clearInterval(view.ticker);
  if (view.deadline !== null) view.ticker = setInterval(tick, 250);
  render();
}

// --- The moderators' form ----------------------------------------------------------------

function form() {
  if (view.form) return view.form;
  stylesheet();
  const status = el("p", { id: "poll-form-status", class: "poll-status", role: "status" });
  const quickAbcd = el("button", { id: "poll-quick-abcd", type: "button", text: t("polls.quickAbcd") });
  const quickYesNo = el("button", { id: "poll-quick-yesno", type: "button", text: t("polls.quickYesNo") });
  const question = el("input", { id: "poll-question", type: "text", maxlength: "500" });
  const kind = el("select", { id: "poll-kind" }, ...KINDS.map(([value, text]) => el("option", { value, text: text() })));
  const options = el("textarea", { id: "poll-options", rows: "4" });
  const correct = el("input", { id: "poll-correct", type: "text" });
  const anonymous = el("input", { id: "poll-anonymous", type: "checkbox" });
  const changeable = el("input", { id: "poll-changeable", type: "checkbox" });
  const timer = el("input", { id: "poll-timer-secs", type: "number", min: "5", max: "3600", step: "1" });
  const ask = el("button", { id: "poll-ask", type: "button", class: "primary", text: t("polls.ask") });
  const optionsRow = el("div", { class: "poll-field" }, el("label", { for: "poll-options", text: t("polls.options") }), options);
  const section = el("section", { id: "poll-form", class: "poll-form", "aria-labelledby": "poll-form-heading" },
    el("h3", { id: "poll-form-heading", text: t("polls.formHeading") }),
    el("div", { class: "poll-tools" }, quickAbcd, quickYesNo),
    el("div", { class: "poll-field" }, el("label", { for: "poll-question", text: t("polls.question") }), question),
    el("div", { class: "poll-field" }, el("label", { for: "poll-kind", text: t("polls.kind") }), kind),
    optionsRow,
    el("div", { class: "poll-field" }, el("label", { for: "poll-correct", text: t("polls.correctField") }), correct),
    el("div", { class: "poll-field" }, el("label", { for: "poll-timer-secs", text: t("polls.timerField") }), timer),
    el("label", { class: "poll-check", for: "poll-anonymous" }, anonymous, " ", t("polls.anonymous")),
    el("label", { class: "poll-check", for: "poll-changeable" }, changeable, " ", t("polls.changeable")),
    ask, status);
  kind.addEventListener("change", () => { optionsRow.hidden = !kind.value.endsWith("_choice"); });
  quickAbcd.addEventListener("click", () => send({ type: "ask_quick_poll", preset: "abcd" }, status));
  quickYesNo.addEventListener("click", () => send({ type: "ask_quick_poll", preset: "yes_no" }, status));
  ask.addEventListener("click", async () => {
    status.textContent = "";
    const poll = {
      kind: kind.value,
      question: question.value.trim(),
      options: kind.value.endsWith("_choice") ? options.value.split("\n").map((o) => o.trim()).filter(Boolean) : [],
      anonymous: anonymous.checked,
      changeable: changeable.checked,
    };
    const right = parseCorrect(kind.value, correct.value.trim());
    if (right === undefined) {
      status.textContent = t("polls.correctDoesNotFit");
      return;
    }
    if (right) poll.correct = right;
    if (timer.value) poll.timer_secs = Number(timer.value);
    if (await send({ type: "ask_poll", poll }, status)) status.textContent = t("polls.asked");
  });
  const home = document.querySelector("#panel-stream") ?? document.querySelector("#side") ?? document.body;
  home.append(section);
  view.form = { section, status };
  return view.form;
}

/** The correct answer typed in the form: null for none, undefined when it does not fit. */
function parseCorrect(kind, text) {
  if (!text) return null;
  if (kind === "true_false") {
    // "true" / "false" in either language (对 / 错 in Chinese).
    const lower = text.toLowerCase();
    if (lower === "true" || lower === "对") return { choices: [0] };
    if (lower === "false" || lower === "错") return { choices: [1] };
    return undefined;
  }
  if (kind.endsWith("_choice")) {
    const choices = text.split(/[\s,]+/).filter(Boolean).map((n) => Number(n) - 1);
    return choices.every((n) => Number.isInteger(n) && n >= 0) ? { choices } : undefined;
  }
  if (kind === "number") {
    const n = Number(text);
    return Number.isFinite(n) ? { number: n } : undefined;
  }
  return { text };
}

/** A quick-poll button beside the slide controls, for a poll about the page shown. */
function slideButton() {
  const controls = document.querySelector("#slide-controls");
  if (!controls || controls.querySelector("#slide-quick-poll")) return;
  controls.append(el("button", {
    id: "slide-quick-poll",
    type: "button",
    text: t("polls.quickAbcd"),
    onclick: () => send({ type: "ask_quick_poll", preset: "abcd" }, view.card?.status),
  }));
}

function resultsArrived(results) {
  view.results = results;
  if (view.poll?.id !== results.poll.id || view.poll.closed !== results.poll.closed) pollArrived(results.poll);
  else render();
}

/**
 * Before a join: listen to the new connection. Moderators get the poll's results right after
 * `joined`, before the join's `ok` ends `signaling.join`; they are kept for `attachPolls`.
 */
export function watchPolls(signaling) {
  view.signaling = signaling;
  view.attached = false;
  view.pending = null;
  signaling.addEventListener("poll", (event) => {
    if (view.attached) pollArrived(event.detail.poll);
  });
  signaling.addEventListener("poll_results", (event) => {
    if (view.attached) resultsArrived(event.detail.results);
    else view.pending = event.detail.results;
  });
}

/** After a join: follow the room's polls; moderators get the form and the controls. */
export function attachPolls(signaling, joined) {
  if (view.signaling !== signaling) watchPolls(signaling);
  view.moderator = !!joined.grants?.moderate;
  card();
  if (view.moderator) {
    form();
    slideButton();
  }
  view.poll = null;
  view.answer = null;
  view.results = null;
  if (joined.poll) pollArrived(joined.poll);
  view.answer = joined.poll_answer ?? null;
  view.attached = true;
  if (view.pending) resultsArrived(view.pending);
  view.pending = null;
  render();
}

/**
 * The end screen (`ended`, the section shown when the lesson is over): a student's own quiz
 * answers with the correct ones. The server writes the lesson's end and its polls a moment
 * after the room closed, so a `lesson_not_over` answer is asked again a few times.
 */
export async function showOwnQuizAnswers(ended) {
  if (view.moderator || !ended || ended.querySelector("#own-quiz")) return;
  const lessonId = new URLSearchParams(location.search).get("lesson");
  let list = null;
  for (let attempt = 0; attempt < 10 && !list; attempt += 1) {
    try {
      list = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}/polls/mine`);
    } catch (error) {
      if (error.code !== "lesson_not_over") return;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  }
  if (!list?.items.length) return;
  stylesheet();
  const rows = list.items.map((q) => el("li", { class: q.is_correct ? "own-quiz-right" : "own-quiz-wrong" },
    el("strong", { text: q.question || t("polls.quizNumber", { number: q.number }) }),
    el("span", { text: t("polls.ownAnswer", { answer: q.answer_text ?? t("polls.noAnswer") }) }),
    el("span", { text: q.is_correct ? t("polls.ownCorrect") : t("polls.ownWrong", { answer: q.correct_text }) })));
  const section = el("section", { id: "own-quiz", class: "own-quiz", "aria-labelledby": "own-quiz-heading" },
    el("h3", { id: "own-quiz-heading", text: t("polls.ownHeading") }), el("ul", {}, ...rows));
  const back = ended.querySelector("#ended-back");
  if (back) ended.insertBefore(section, back);
  else ended.append(section);
}
