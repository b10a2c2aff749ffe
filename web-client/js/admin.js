// School admin: users (create, search, disable, reset a password, CSV import with its
// per-row report), courses (create, edit, assign teachers, enroll students one by one, picked
// from a list or pasted as emails) and the queue of replay and document jobs (retry).

import { api } from "./api.js";
import { t } from "./i18n.js";
import { $, banner, el, report, requireSession, roleName, when } from "./page.js";

/** Runs an action; shows its error in the banner, or `done` in the polite status line. */
async function act(action, done) {
  banner("");
  try {
    await action();
    $("notice").textContent = done;
  } catch (error) {
    report(error);
  }
}

// --- Users ---------------------------------------------------------------------------------

async function searchUsers() {
  const query = new URLSearchParams({ per_page: "50" });
  if ($("user-query").value.trim()) query.set("q", $("user-query").value.trim());
  if ($("user-filter").value) query.set("role", $("user-filter").value);
  const users = await api(`/api/v1/users?${query}`);
  $("user-count").textContent = users.total > users.items.length
    ? t("admin.usersFoundFirst", { count: users.total, shown: users.items.length })
    : t("admin.usersFound", { count: users.total });
  $("users").replaceChildren(...users.items.map((user) => el("li", { "data-user": user.id },
    el("span", { class: "grow", text: user.disabled
      ? t("admin.userRowDisabled", { name: user.name, email: user.email, role: roleName(user.role) })
      : t("admin.userRow", { name: user.name, email: user.email, role: roleName(user.role) }) }),
    el("button", {
      type: "button",
      text: t("admin.resetPassword"),
      "aria-label": t("admin.resetPasswordLabel", { name: user.name }),
      onclick: () => resetPassword(user),
    }),
    el("button", {
      type: "button",
      class: user.disabled ? "" : "danger",
      text: user.disabled ? t("admin.enable") : t("admin.disable"),
      "aria-label": user.disabled ? t("admin.enableLabel", { name: user.name }) : t("admin.disableLabel", { name: user.name }),
      onclick: () => act(async () => {
        await api(`/api/v1/users/${user.id}`, { method: "PATCH", body: { disabled: !user.disabled } });
        await searchUsers();
      }, user.disabled ? t("admin.userEnabled", { name: user.name }) : t("admin.userDisabled", { name: user.name })),
    }))));
}

/** A temporary password: 16 characters in groups of four, about 79 random bits (as imports). */
function temporaryPassword() {
  const alphabet = "abcdefghjkmnpqrstuvwxyzACDEFGHJKLMNPQRTUVWXYZ2346789";
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const chars = [...bytes].map((b) => alphabet[b % alphabet.length]);
  return [0, 4, 8, 12].map((i) => chars.slice(i, i + 4).join("")).join("-");
}

/** Sets a temporary password, shown once; the user's sessions end and they choose their own. */
function resetPassword(user) {
  if (!confirm(t("admin.confirmReset", { name: user.name }))) return;
  const password = temporaryPassword();
  act(async () => {
    await api(`/api/v1/users/${user.id}/password`, { method: "PUT", body: { password } });
  }, t("admin.temporaryPassword", { name: user.name, password }));
}

$("create-user").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("user-name").value;
  act(async () => {
    await api("/api/v1/users", {
      method: "POST",
      body: { name, email: $("user-email").value, password: $("user-password").value, role: $("user-role").value },
    });
    $("create-user").reset();
    await Promise.all([searchUsers(), fillPeople()]);
  }, t("admin.userCreated", { name }));
});

$("search-users").addEventListener("submit", (event) => {
  event.preventDefault();
  act(searchUsers, "");
});

$("import-users").addEventListener("submit", (event) => {
  event.preventDefault();
  act(async () => {
    const file = $("import-file").files[0];
    const csv = file ? await file.text() : $("import-text").value;
    if (!csv.trim()) throw new Error(t("admin.importNothing"));
    const result = await api("/api/v1/users/import", { method: "POST", body: csv, contentType: "text/csv" });
    $("import-summary").textContent = t("admin.importSummary", { created: result.created, refused: result.refused });
    $("import-rows").replaceChildren(...result.rows.map((row) => el("tr", { class: row.status },
      el("td", { text: String(row.line) }),
      el("td", { text: row.email ?? "" }),
      el("td", { text: row.status === "created" ? t("admin.rowCreated") : t("admin.rowRefused") }),
      el("td", { text: row.status === "created" ? (row.temporary_password ?? t("admin.theirOwnPassword")) : (row.reason ?? "") }))));
    $("import-report").hidden = false;
    const course = $("import-course").value;
    if (course) {
      // Everyone created, and those who had an account already, join the course.
      const emails = result.rows.filter((row) => row.email && (row.status === "created" || /already exists/.test(row.reason ?? "")))
        .map((row) => row.email);
      if (emails.length) {
        const enrolled = await api(`/api/v1/courses/${course}/enrollments/bulk`, { method: "POST", body: { emails } });
        $("import-summary").textContent += t("admin.importEnrolled", { enrolled: enrolled.enrolled, already: enrolled.already_enrolled });
      }
    }
    await Promise.all([searchUsers(), fillPeople()]);
    if (course === $("course-pick").value) await showCourse();
  }, t("admin.importFinished"));
});

// --- Courses -------------------------------------------------------------------------------

async function fillCourses(selected) {
  const courses = await api("/api/v1/courses?per_page=200");
  $("course-pick").replaceChildren(el("option", { value: "", text: t("admin.chooseCourse") }),
    ...courses.items.map((c) => el("option", { value: String(c.id), text: c.title })));
  $("import-course").replaceChildren(el("option", { value: "", text: t("admin.noCourse") }),
    ...courses.items.map((c) => el("option", { value: String(c.id), text: c.title })));
  if (selected) $("course-pick").value = String(selected);
  await showCourse();
}

/** Active students of the school (the pick list offers those not enrolled in the course). */
let schoolStudents = [];
let enrolledIds = new Set();

async function fillPeople() {
  const [teachers, students] = await Promise.all([
    api("/api/v1/users?role=teacher&per_page=200"),
    api("/api/v1/users?role=student&per_page=200"),
  ]);
  const options = (users) => users.items.filter((u) => !u.disabled)
    .map((u) => el("option", { value: String(u.id), text: t("admin.nameEmail", { name: u.name, email: u.email }) }));
  $("teacher-pick").replaceChildren(...options(teachers));
  schoolStudents = students.items.filter((u) => !u.disabled);
  renderStudentPick();
}

/** The students not enrolled yet that match the filter, each with a checkbox. */
function renderStudentPick() {
  const query = $("student-filter").value.trim().toLowerCase();
  const offered = schoolStudents.filter((u) => !enrolledIds.has(u.id))
    .filter((u) => !query || u.name.toLowerCase().includes(query) || u.email.toLowerCase().includes(query));
  const shown = offered.slice(0, 100);
  $("student-pick").replaceChildren(...shown.map((u) => el("li", {},
    el("label", { class: "check grow" }, el("input", { type: "checkbox", value: String(u.id) }), " ", t("admin.nameEmail", { name: u.name, email: u.email })))));
  $("student-pick-count").textContent = offered.length === 0
    ? t("admin.pickNone")
    : offered.length > shown.length
      ? t("admin.pickCountFirst", { count: offered.length, shown: shown.length })
      : t("admin.pickCount", { count: offered.length });
}

/** Shows what a bulk enrollment did: counts, and each refusal with its reason. */
function showEnrollReport(report) {
  $("enroll-summary").textContent = t("admin.enrollSummary", { enrolled: report.enrolled, already: report.already_enrolled, refused: report.refused });
  $("enroll-rows").replaceChildren(...report.rows.filter((r) => r.status === "refused")
    .map((r) => el("li", { class: "refused", text: t("admin.refusedRow", { who: r.email ?? t("admin.userNumber", { id: String(r.user_id) }), reason: r.reason ?? t("admin.rowRefused") }) })));
  $("enroll-report").hidden = false;
}

async function enrollMany(body) {
  const report = await api(`/api/v1/courses/${$("course-pick").value}/enrollments/bulk`, { method: "POST", body });
  showEnrollReport(report);
  await showCourse();
  return report;
}

function memberRow(course, user, kind) {
  const path = kind === "teacher" ? "teachers" : "enrollments";
  return el("li", {}, el("span", { class: "grow", text: t("admin.nameEmail", { name: user.name, email: user.email }) }),
    el("button", {
      type: "button",
      text: kind === "teacher" ? t("admin.unassign") : t("admin.unenroll"),
      "aria-label": kind === "teacher" ? t("admin.unassignLabel", { name: user.name }) : t("admin.unenrollLabel", { name: user.name }),
      onclick: () => act(async () => {
        await api(`/api/v1/courses/${course}/${path}/${user.id}`, { method: "DELETE" });
        await showCourse();
      }, t("admin.memberRemoved", { name: user.name })),
    }));
}

async function showCourse() {
  const course = $("course-pick").value;
  $("course-manage").hidden = !course;
  if (!course) return;
  $("course-link").href = `/course.html?id=${course}`;
  const [detail, teachers, students] = await Promise.all([
    api(`/api/v1/courses/${course}`),
    api(`/api/v1/courses/${course}/teachers?per_page=200`),
    api(`/api/v1/courses/${course}/enrollments?per_page=200`),
  ]);
  if ($("edit-course").dataset.course !== course) {
    $("edit-course").dataset.course = course;
    $("edit-title").value = detail.title;
    $("edit-description").value = detail.description;
    $("edit-record").checked = detail.record_by_default;
  }
  enrolledIds = new Set(students.items.map((u) => u.id));
  renderStudentPick();
  const none = (text) => [el("li", { class: "muted", text })];
  $("course-teachers").replaceChildren(...(teachers.items.length ? teachers.items.map((u) => memberRow(course, u, "teacher")) : none(t("admin.noTeacherYet"))));
  $("course-students").replaceChildren(...(students.items.length ? students.items.map((u) => memberRow(course, u, "student")) : none(t("admin.noStudentsYet"))));
}

$("create-course").addEventListener("submit", (event) => {
  event.preventDefault();
  const title = $("course-title").value;
  act(async () => {
    const course = await api("/api/v1/courses", { method: "POST", body: { title, description: $("course-description").value } });
    $("create-course").reset();
    await fillCourses(course.id);
  }, t("admin.courseCreated", { title }));
});

$("course-pick").addEventListener("change", () => act(showCourse, ""));

$("add-teacher").addEventListener("submit", (event) => {
  event.preventDefault();
  const option = $("teacher-pick").selectedOptions[0];
  if (!option) return;
  act(async () => {
    await api(`/api/v1/courses/${$("course-pick").value}/teachers`, { method: "POST", body: { user_id: Number(option.value) } });
    await showCourse();
  }, t("admin.teacherAssigned", { name: option.textContent }));
});

$("student-filter").addEventListener("input", () => renderStudentPick());

$("add-student").addEventListener("submit", (event) => {
  event.preventDefault();
  const ids = [...$("student-pick").querySelectorAll("input:checked")].map((box) => Number(box.value));
  if (!ids.length) return banner(t("admin.tickFirst"));
  act(async () => {
    const report = await enrollMany({ user_ids: ids });
    $("notice").textContent = t("admin.enrolledCount", { count: report.enrolled });
  }, "");
});

$("paste-students").addEventListener("submit", (event) => {
  event.preventDefault();
  const emails = $("paste-emails").value.split(/[\s,;]+/).filter(Boolean);
  if (!emails.length) return banner(t("admin.pasteFirst"));
  act(async () => {
    const report = await enrollMany({ emails });
    if (!report.refused) $("paste-emails").value = "";
    $("notice").textContent = t("admin.enrolledCount", { count: report.enrolled });
  }, "");
});

$("edit-course").addEventListener("submit", (event) => {
  event.preventDefault();
  const course = $("course-pick").value;
  act(async () => {
    const saved = await api(`/api/v1/courses/${course}`, {
      method: "PATCH",
      body: { title: $("edit-title").value, description: $("edit-description").value, record_by_default: $("edit-record").checked },
    });
    await fillCourses(saved.id);
  }, t("admin.courseSaved"));
});

// --- The job queue -------------------------------------------------------------------------

const JOB_STATES = {
  queued: () => t("admin.jobWaiting"),
  running: () => t("admin.jobRunning"),
  done: () => t("admin.jobDone"),
  failed: () => t("admin.jobFailed"),
};

function jobRow(job) {
  const what = job.kind === "document" ? t("admin.jobDocument", { id: String(job.document_id) }) : t("admin.jobReplay", { id: String(job.lesson_id) });
  const detail = [what, JOB_STATES[job.state]?.() ?? job.state, t("admin.jobAttempts", { count: job.attempts }), t("admin.jobSince", { when: when(job.created_at) })];
  return el("li", { "data-job": job.id },
    el("span", { class: "grow" }, detail.join(t("common.separator")), job.error ? el("span", { class: "error-text", text: t("admin.jobError", { error: job.error }) }) : null),
    job.state === "failed" ? el("button", {
      type: "button",
      text: t("admin.retry"),
      "aria-label": t("admin.retryLabel", { id: String(job.id), what }),
      onclick: () => act(async () => {
        await api(`/api/v1/recording-jobs/${job.id}/retry`, { method: "POST" });
        await showJobs();
      }, t("admin.jobRequeued", { id: String(job.id) })),
    }) : null);
}

async function showJobs() {
  const filter = $("jobs-state").value;
  const jobs = await api(`/api/v1/recording-jobs${filter ? `?state=${filter}` : ""}`);
  $("jobs").replaceChildren(...jobs.items.map(jobRow));
  $("jobs-empty").hidden = jobs.items.length > 0;
}

$("jobs-state").addEventListener("change", () => act(showJobs, ""));

const me = requireSession();
if (me && me.user.role !== "admin") {
  banner(t("admin.adminsOnly"));
} else if (me) {
  Promise.all([searchUsers(), fillPeople(), fillCourses(), showJobs()]).catch(report);
}
