// A course: its lessons (live now, upcoming, ended) with Join / Go live, its materials (see
// materials.js), its replays, and for its teachers scheduling, editing and cancelling
// lessons. /course.html?id=COURSE

import { api } from "./api.js";
import { initMaterials } from "./materials.js";
import { initAttendance } from "./own-attendance.js";
import { list, t } from "./i18n.js";
import { $, banner, el, lessonState, localInput, report, requireSession, when } from "./page.js";
import { replayFacts, replayName, replayState } from "./replay-format.js";

const courseId = new URLSearchParams(location.search).get("id");
let teaching = false;
// Teachers and admins see each held lesson's attendance.
let managing = false;

const empty = (text) => el("li", { class: "muted", text });

function lessonRow(lesson) {
  const times = t("course.lessonTimes", { starts: when(lesson.starts_at), ends: when(lesson.ends_at) });
  const item = el("li", { "data-lesson": lesson.id },
    el("span", { class: "grow" }, el("strong", { text: lesson.title }), el("br"), el("span", { class: "muted", text: times })));
  const live = `/live.html?lesson=${lesson.id}`;
  const attendance = managing && ["live", "ended"].includes(lesson.state)
    ? el("a", { href: `/attendance.html?lesson=${lesson.id}`, text: t("course.attendance"), "aria-label": t("course.attendanceLabel", { title: lesson.title }) })
    : null;
  if (lesson.state === "live") {
    item.append(el("a", { class: "button primary", href: live, text: teaching ? t("course.joinAsTeacher") : t("course.join"), "aria-label": teaching ? t("course.joinAsTeacherLabel", { title: lesson.title }) : t("course.joinLabel", { title: lesson.title }) }));
  } else if (lesson.state === "scheduled") {
    if (teaching) {
      item.append(
        el("a", { class: "button primary", href: live, text: t("course.goLive"), "aria-label": t("course.goLiveLabel", { title: lesson.title }) }),
        el("button", { type: "button", text: t("course.edit"), "aria-label": t("course.editLabel", { title: lesson.title }), onclick: () => editLesson(item, lesson) }),
        el("button", { type: "button", class: "danger", text: t("course.cancelLesson"), "aria-label": t("course.cancelLessonLabel", { title: lesson.title }), onclick: () => cancelLesson(lesson) }),
      );
    } else {
      item.append(el("a", { class: "button", href: live, text: t("course.join"), "aria-label": t("course.joinLabel", { title: lesson.title }) }));
    }
  } else {
    item.append(el("span", { class: "pill", text: lessonState(lesson.state) }),
      lesson.state === "ended" ? el("a", { href: `/replay.html?lesson=${lesson.id}`, text: t("course.replay"), "aria-label": t("course.replayLabel", { title: lesson.title }) }) : null);
  }
  if (attendance) item.append(attendance);
  return item;
}

function editLesson(item, lesson) {
  const id = `edit-${lesson.id}`;
  const start = new Date(lesson.starts_at);
  const minutes = Math.round((new Date(lesson.ends_at) - start) / 60000);
  const form = el("form", { class: "inline-form", "aria-label": t("course.editLabel", { title: lesson.title }) },
    el("label", { for: `${id}-title`, text: t("common.title") }), el("input", { id: `${id}-title`, value: lesson.title, required: true }),
    el("label", { for: `${id}-start`, text: t("course.starts") }), el("input", { id: `${id}-start`, type: "datetime-local", value: localInput(start), required: true }),
    el("label", { for: `${id}-minutes`, text: t("course.lengthInMinutes") }), el("input", { id: `${id}-minutes`, type: "number", min: "5", max: "1440", value: String(minutes), required: true }),
    el("button", { type: "submit", class: "primary", text: t("course.saveChanges") }),
    el("button", { type: "button", text: t("course.discard"), onclick: () => load() }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const starts = new Date($(`${id}-start`).value);
    const ends = new Date(starts.getTime() + Number($(`${id}-minutes`).value) * 60000);
    try {
      await api(`/api/v1/lessons/${lesson.id}`, {
        method: "PATCH",
        body: { title: $(`${id}-title`).value, starts_at: starts.toISOString(), ends_at: ends.toISOString() },
      });
      banner("");
      await load();
    } catch (error) {
      report(error);
    }
  });
  item.replaceChildren(form);
  $(`${id}-title`).focus();
}

async function cancelLesson(lesson) {
  if (!confirm(t("course.confirmCancel", { title: lesson.title }))) return;
  try {
    await api(`/api/v1/lessons/${lesson.id}/cancel`, { method: "POST" });
    await load();
  } catch (error) {
    report(error);
  }
}

async function load() {
  const [course, lessons, replays] = await Promise.all([
    api(`/api/v1/courses/${encodeURIComponent(courseId)}`),
    api(`/api/v1/courses/${encodeURIComponent(courseId)}/lessons?per_page=200`),
    api(`/api/v1/courses/${encodeURIComponent(courseId)}/replays`),
  ]);
  teaching = course.membership === "teacher";
  managing = course.membership !== "student";
  document.title = t("course.documentTitle", { title: course.title });
  $("title").textContent = course.title;
  const teachers = course.teachers.length ? list(course.teachers.map((teacher) => teacher.name)) : t("course.noTeacherYet");
  const about = [t("course.taughtBy", { teachers }), t("course.studentCount", { count: course.student_count })];
  if (course.description) about.unshift(course.description);
  $("about").textContent = about.join(t("common.separator"));
  $("schedule").hidden = course.membership === "student";
  const group = (states) => lessons.items.filter((l) => states.includes(l.state));
  const fill = (list, items, none) => $(list).replaceChildren(...(items.length ? items.map(lessonRow) : [empty(none)]));
  fill("live", group(["live"]), t("course.noneLive"));
  fill("upcoming", group(["scheduled"]), t("course.noneScheduled"));
  fill("ended", group(["ended", "cancelled"]).reverse(), t("course.noneEnded"));
  $("replays").replaceChildren(...(replays.items.length
    ? replays.items.map((r) => el("li", { "data-replay": r.id },
      el("span", { class: "grow" },
        el("a", { href: `/replay.html?lesson=${r.lesson_id}&replay=${r.id}`, text: replayName(r) }), el("br"),
        el("span", { class: "muted replay-facts", text: replayFacts(r) })),
      el("span", { class: "pill", text: replayState(r.state) })))
    : [empty(t("course.noReplays"))]));
  await initMaterials(courseId, course.membership !== "student");
  await initAttendance(courseId, course.membership);
}

$("schedule").addEventListener("submit", async (event) => {
  event.preventDefault();
  const starts = new Date($("lesson-start").value);
  const ends = new Date(starts.getTime() + Number($("lesson-minutes").value) * 60000);
  try {
    await api(`/api/v1/courses/${encodeURIComponent(courseId)}/lessons`, {
      method: "POST",
      body: { title: $("lesson-title").value, starts_at: starts.toISOString(), ends_at: ends.toISOString() },
    });
    banner("");
    $("lesson-title").value = "";
    await load();
  } catch (error) {
    report(error);
  }
});

if (requireSession()) {
  $("lesson-start").value = localInput(new Date(Date.now() + 5 * 60000));
  load().catch(report);
}
