// The course page's attendance parts: for the course's teachers and admins a link to the
// course's summary; for a student their own attendance of each held lesson.

import { api } from "./api.js";
import { $, el, when } from "./page.js";

/** Fills the course page's attendance section for a member with `membership`. */
export async function initAttendance(courseId, membership) {
  const section = $("attendance");
  if (!section) return;
  section.hidden = false;
  if (membership !== "student") {
    $("attendance-summary").replaceChildren(
      el("a", { class: "button", href: `/attendance.html?course=${encodeURIComponent(courseId)}`, text: "Attendance of all students" }));
    $("my-attendance").replaceChildren();
    return;
  }
  const own = await api(`/api/v1/courses/${encodeURIComponent(courseId)}/attendance/me`);
  const s = own.summary;
  $("attendance-summary").textContent =
    `You attended ${s.lessons_attended} of ${s.lessons_held} lessons, ${Math.floor(s.present_seconds / 60)} minutes in all` +
    `${s.times_late ? ` · late ${s.times_late}×` : ""}${s.times_left_early ? ` · left early ${s.times_left_early}×` : ""}.`;
  $("my-attendance").replaceChildren(...(own.lessons.length
    ? own.lessons.map(({ lesson, attendance: a }) => el("li", { "data-lesson": lesson.id },
      el("span", { class: "grow" }, el("strong", { text: lesson.title }), el("br"), el("span", { class: "muted", text: when(lesson.starts_at) })),
      el("span", { class: "pill", text: a ? `${a.minutes_present} min` : "absent" }),
      a?.came_late ? el("span", { class: "pill", text: `late ${a.late_minutes} min` }) : null,
      a?.left_early ? el("span", { class: "pill", text: "left early" }) : null))
    : [el("li", { class: "muted", text: "No lesson has taken place yet." })]));
}
