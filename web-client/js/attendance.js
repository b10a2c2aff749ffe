// Attendance reports for a course's teachers and admins: one lesson's
// (/attendance.html?lesson=ID: who was there, each stay, minutes, late or early, stage, hands,
// chat) or a course's summary per student (/attendance.html?course=ID), a page at a time, and
// the CSV export of the whole report (the same numbers).

import { ApiError, UNREACHABLE, api, session } from "./api.js";
import { $, banner, el, report, requireSession, when } from "./page.js";

const params = new URLSearchParams(location.search);
const lessonId = params.get("lesson");
const courseId = params.get("course");
const PER_PAGE = 50;
let page = 1;

const minutes = (seconds) => `${Math.floor(seconds / 60)} min`;
const yes = (flag) => (flag ? "yes" : "");

/** A lesson's rows: name, role, stays, minutes, late, early, stage, hands, chat, polls. */
const LESSON_COLUMNS = [
  ["Name", (r) => el("span", {}, el("strong", { text: r.name }), el("br"), el("span", { class: "muted", text: r.email }))],
  ["Role", (r) => r.role],
  ["Stays", (r) => el("span", {}, ...r.intervals.flatMap((i, n) => [
    n ? el("br") : null,
    `${when(i.joined_at)} – ${i.left_at ? when(i.left_at) : "now"}${i.left_reason ? ` (${i.left_reason.replace("_", " ")})` : ""}`,
  ]))],
  ["Present", (r) => minutes(r.present_seconds)],
  ["Late", (r) => (r.came_late ? `${r.late_minutes} min` : "")],
  ["Left early", (r) => yes(r.left_early)],
  ["On stage", (r) => (r.stage_seconds ? minutes(r.stage_seconds) : "")],
  ["Hands", (r) => String(r.hands_raised)],
  ["Chat", (r) => String(r.chat_messages)],
  ["Polls", (r) => String(r.poll_answers)],
  ["Quiz", (r) => (r.quiz_answers ? `${r.quiz_correct} of ${r.quiz_answers} right` : "")],
  ["Breakout rooms", (r) => (r.breakout_rooms ?? []).map((s) => `Room ${s.room}`).join(", ")],
];

/** A course's rows: each student summed up across the held lessons. */
const COURSE_COLUMNS = [
  ["Name", (r) => el("span", {}, el("strong", { text: r.name }), el("br"), el("span", { class: "muted", text: r.email }))],
  ["Lessons", (r) => `${r.lessons_attended} of ${r.lessons_held}`],
  ["Present", (r) => minutes(r.present_seconds)],
  ["Late", (r) => String(r.times_late)],
  ["Left early", (r) => String(r.times_left_early)],
  ["On stage", (r) => minutes(r.stage_seconds)],
  ["Hands", (r) => String(r.hands_raised)],
  ["Chat", (r) => String(r.chat_messages)],
  ["Polls", (r) => String(r.poll_answers)],
  ["Quiz", (r) => (r.quiz_answers ? `${r.quiz_correct} of ${r.quiz_answers} right` : "")],
];

function base() {
  return lessonId
    ? `/api/v1/lessons/${encodeURIComponent(lessonId)}/attendance`
    : `/api/v1/courses/${encodeURIComponent(courseId)}/attendance`;
}

function fill(columns, items) {
  $("report-head").replaceChildren(el("tr", {}, ...columns.map(([name]) => el("th", { scope: "col", text: name }))));
  $("report-body").replaceChildren(...(items.length
    ? items.map((row) => el("tr", { "data-user": row.user_id }, ...columns.map(([, cell]) => el("td", {}, cell(row)))))
    : [el("tr", {}, el("td", { colspan: String(columns.length), class: "muted", text: "Nobody yet." }))]));
}

async function load() {
  const reply = await api(`${base()}?page=${page}&per_page=${PER_PAGE}`);
  if (lessonId) {
    const lesson = reply.lesson;
    document.title = `Attendance: ${lesson.title} · classroom`;
    $("title").textContent = `Attendance: ${lesson.title}`;
    $("about").textContent = `Scheduled ${when(lesson.starts_at)} – ${when(lesson.ends_at)} · ${lesson.state}` +
      (lesson.state === "live" ? " · stays still open count up to the last few seconds" : "");
    $("back").href = `/course.html?id=${lesson.course_id}`;
    fill(LESSON_COLUMNS, reply.items);
  } else {
    $("title").textContent = "Course attendance";
    $("about").textContent = `${reply.lessons_held} lessons held · ${reply.total} students`;
    $("back").href = `/course.html?id=${encodeURIComponent(courseId)}`;
    fill(COURSE_COLUMNS, reply.items);
  }
  const pages = Math.max(1, Math.ceil(reply.total / reply.per_page));
  $("page-status").textContent = `Page ${reply.page} of ${pages}`;
  $("previous").disabled = page <= 1;
  $("next").disabled = page >= pages;
}

/** Fetches the CSV with the session's token and hands it to the browser as a download. */
async function download() {
  let response;
  try {
    response = await fetch(`${base()}.csv`, { headers: { authorization: `Bearer ${session()?.token}` } });
  } catch {
    throw new ApiError(UNREACHABLE, 0, "unreachable");
  }
  if (!response.ok) {
    const reply = await response.json().catch(() => ({}));
    throw new ApiError(reply?.error?.message || `download failed (${response.status})`, response.status);
  }
  const name = lessonId ? `lesson-${lessonId}-attendance.csv` : `course-${courseId}-attendance.csv`;
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

$("previous").addEventListener("click", () => { page -= 1; load().catch(report); });
$("next").addEventListener("click", () => { page += 1; load().catch(report); });
$("download").addEventListener("click", () => download().then(() => banner("")).catch(report));

if (requireSession()) {
  if (!lessonId && !courseId) banner("Open attendance from a course or one of its lessons.");
  else load().catch(report);
}
