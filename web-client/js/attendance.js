// Attendance reports for a course's teachers and admins: one lesson's
// (/attendance.html?lesson=ID: who was there, each stay, minutes, late or early, stage, hands,
// chat) or a course's summary per student (/attendance.html?course=ID), a page at a time, and
// the CSV export of the whole report (the same numbers).

import { ApiError, UNREACHABLE, api, session } from "./api.js";
import { number, t } from "./i18n.js";
import { $, banner, el, lessonState, report, requireSession, roleName, when } from "./page.js";

const params = new URLSearchParams(location.search);
const lessonId = params.get("lesson");
const courseId = params.get("course");
const PER_PAGE = 50;
let page = 1;

const minutes = (seconds) => t("common.minutes", { count: Math.floor(seconds / 60) });
const yes = (flag) => (flag ? t("attendance.yes") : "");
const quiz = (r) => (r.quiz_answers ? t("attendance.quizRight", { right: r.quiz_correct, count: r.quiz_answers }) : "");

// Why a stay ended, as the server names it.
const LEFT_REASONS = {
  left: () => t("attendance.reasonLeft"),
  lost: () => t("attendance.reasonLost"),
  lesson_ended: () => t("attendance.reasonLessonEnded"),
};
const leftReason = (reason) => LEFT_REASONS[reason]?.() ?? reason.replace("_", " ");

/** One stay in the lesson: from when to when (or now), and why it ended. */
function stay(interval) {
  const from = when(interval.joined_at);
  const to = interval.left_at ? when(interval.left_at) : t("attendance.now");
  return interval.left_reason ? t("attendance.stayWhy", { from, to, why: leftReason(interval.left_reason) }) : t("attendance.stay", { from, to });
}

/** A lesson's rows: name, role, stays, minutes, late, early, stage, hands, chat, polls. */
const LESSON_COLUMNS = [
  [() => t("common.name"), (r) => el("span", {}, el("strong", { text: r.name }), el("br"), el("span", { class: "muted", text: r.email }))],
  [() => t("common.role"), (r) => roleName(r.role)],
  [() => t("attendance.stays"), (r) => el("span", {}, ...r.intervals.flatMap((i, n) => [
    n ? el("br") : null,
    stay(i),
  ]))],
  [() => t("attendance.present"), (r) => minutes(r.present_seconds)],
  [() => t("attendance.late"), (r) => (r.came_late ? t("common.minutes", { count: r.late_minutes }) : "")],
  [() => t("attendance.leftEarlyColumn"), (r) => yes(r.left_early)],
  [() => t("attendance.onStage"), (r) => (r.stage_seconds ? minutes(r.stage_seconds) : "")],
  [() => t("attendance.hands"), (r) => number(r.hands_raised)],
  [() => t("attendance.chat"), (r) => number(r.chat_messages)],
  [() => t("attendance.polls"), (r) => number(r.poll_answers)],
  [() => t("attendance.quiz"), quiz],
  [() => t("attendance.breakoutRooms"), (r) => (r.breakout_rooms ?? []).map((s) => t("breakout.roomName", { n: s.room })).join(", ")],
];

/** A course's rows: each student summed up across the held lessons. */
const COURSE_COLUMNS = [
  [() => t("common.name"), (r) => el("span", {}, el("strong", { text: r.name }), el("br"), el("span", { class: "muted", text: r.email }))],
  [() => t("attendance.lessons"), (r) => t("attendance.lessonsOf", { attended: r.lessons_attended, held: r.lessons_held })],
  [() => t("attendance.present"), (r) => minutes(r.present_seconds)],
  [() => t("attendance.late"), (r) => number(r.times_late)],
  [() => t("attendance.leftEarlyColumn"), (r) => number(r.times_left_early)],
  [() => t("attendance.onStage"), (r) => minutes(r.stage_seconds)],
  [() => t("attendance.hands"), (r) => number(r.hands_raised)],
  [() => t("attendance.chat"), (r) => number(r.chat_messages)],
  [() => t("attendance.polls"), (r) => number(r.poll_answers)],
  [() => t("attendance.quiz"), quiz],
  [() => t("attendance.breakoutRooms"), (r) => (r.breakout_stays ? t("attendance.breakoutSummary", { count: r.breakout_stays, time: minutes(r.breakout_seconds) }) : "")],
];

function base() {
  return lessonId
    ? `/api/v1/lessons/${encodeURIComponent(lessonId)}/attendance`
    : `/api/v1/courses/${encodeURIComponent(courseId)}/attendance`;
}

function fill(columns, items) {
  $("report-head").replaceChildren(el("tr", {}, ...columns.map(([name]) => el("th", { scope: "col", text: name() }))));
  $("report-body").replaceChildren(...(items.length
    ? items.map((row) => el("tr", { "data-user": row.user_id }, ...columns.map(([, cell]) => el("td", {}, cell(row)))))
    : [el("tr", {}, el("td", { colspan: String(columns.length), class: "muted", text: t("attendance.nobodyYet") }))]));
}

async function load() {
  const reply = await api(`${base()}?page=${page}&per_page=${PER_PAGE}`);
  if (lessonId) {
    const lesson = reply.lesson;
    document.title = t("attendance.lessonDocumentTitle", { title: lesson.title });
    $("title").textContent = t("attendance.lessonTitle", { title: lesson.title });
    const about = [t("attendance.scheduled", { starts: when(lesson.starts_at), ends: when(lesson.ends_at) }), lessonState(lesson.state)];
    if (lesson.state === "live") about.push(t("attendance.stillOpen"));
    $("about").textContent = about.join(t("common.separator"));
    $("back").href = `/course.html?id=${lesson.course_id}`;
    fill(LESSON_COLUMNS, reply.items);
  } else {
    $("title").textContent = t("attendance.courseTitle");
    $("about").textContent = [t("attendance.lessonsHeld", { count: reply.lessons_held }), t("course.studentCount", { count: reply.total })].join(t("common.separator"));
    $("back").href = `/course.html?id=${encodeURIComponent(courseId)}`;
    fill(COURSE_COLUMNS, reply.items);
  }
  const pages = Math.max(1, Math.ceil(reply.total / reply.per_page));
  $("page-status").textContent = t("materials.pageOfPages", { page: reply.page, pages });
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
    throw new ApiError(reply?.error?.message || t("attendance.downloadFailed", { status: response.status }), response.status);
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
  if (!lessonId && !courseId) banner(t("attendance.openFromCourse"));
  else load().catch(report);
}
