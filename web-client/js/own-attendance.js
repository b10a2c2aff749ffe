// The course page's attendance parts: for the course's teachers and admins a link to the
// course's summary; for a student their own attendance of each held lesson.

import { api } from "./api.js";
import { t } from "./i18n.js";
import { $, el, when } from "./page.js";

/** Fills the course page's attendance section for a member with `membership`. */
export async function initAttendance(courseId, membership) {
  const section = $("attendance");
  if (!section) return;
  section.hidden = false;
  if (membership !== "student") {
    $("attendance-summary").replaceChildren(
      el("a", { class: "button", href: `/attendance.html?course=${encodeURIComponent(courseId)}`, text: t("attendance.ofAllStudents") }));
    $("my-attendance").replaceChildren();
    return;
  }
  const own = await api(`/api/v1/courses/${encodeURIComponent(courseId)}/attendance/me`);
  const s = own.summary;
  const parts = [t("attendance.youAttended", { count: s.lessons_held, attended: s.lessons_attended, minutes: Math.floor(s.present_seconds / 60) })];
  if (s.times_late) parts.push(t("attendance.timesLate", { count: s.times_late }));
  if (s.times_left_early) parts.push(t("attendance.timesLeftEarly", { count: s.times_left_early }));
  $("attendance-summary").textContent = parts.join(t("common.separator"));
  $("my-attendance").replaceChildren(...(own.lessons.length
    ? own.lessons.map(({ lesson, attendance: a }) => el("li", { "data-lesson": lesson.id },
      el("span", { class: "grow" }, el("strong", { text: lesson.title }), el("br"), el("span", { class: "muted", text: when(lesson.starts_at) })),
      el("span", { class: "pill", text: a ? t("common.minutes", { count: a.minutes_present }) : t("attendance.absent") }),
      a?.came_late ? el("span", { class: "pill", text: t("attendance.lateBy", { minutes: a.late_minutes }) }) : null,
      a?.left_early ? el("span", { class: "pill", text: t("attendance.leftEarly") }) : null))
    : [el("li", { class: "muted", text: t("attendance.noLessonYet") })]));
}
