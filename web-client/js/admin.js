// School admin: users (create, search, disable, reset a password, CSV import with its
// per-row report), courses (create, edit, assign teachers, enroll students one by one, picked
// from a list or pasted as emails) and the queue of replay and document jobs (retry).

import { api } from "./api.js";
import { $, banner, el, report, requireSession, when } from "./page.js";

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
  $("user-count").textContent = `${users.total} found${users.total > users.items.length ? `, first ${users.items.length} shown` : ""}.`;
  $("users").replaceChildren(...users.items.map((user) => el("li", { "data-user": user.id },
    el("span", { class: "grow", text: `${user.name} <${user.email}> · ${user.role}${user.disabled ? " · disabled" : ""}` }),
    el("button", {
      type: "button",
      text: "Reset password",
      "aria-label": `Reset password of ${user.name}`,
      onclick: () => resetPassword(user),
    }),
    el("button", {
      type: "button",
      class: user.disabled ? "" : "danger",
      text: user.disabled ? "Enable" : "Disable",
      "aria-label": `${user.disabled ? "Enable" : "Disable"} ${user.name}`,
      onclick: () => act(async () => {
        await api(`/api/v1/users/${user.id}`, { method: "PATCH", body: { disabled: !user.disabled } });
        await searchUsers();
      }, `${user.name} is ${user.disabled ? "enabled" : "disabled"}.`),
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
  if (!confirm(`Give ${user.name} a new temporary password? Their current one stops working.`)) return;
  const password = temporaryPassword();
  act(async () => {
    await api(`/api/v1/users/${user.id}/password`, { method: "PUT", body: { password } });
  }, `${user.name}'s temporary password is ${password} — give it to them now; it is shown only once. They can change it on their account page.`);
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
  }, `${name} was created.`);
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
    if (!csv.trim()) throw new Error("Choose a CSV file or paste the class list first.");
    const result = await api("/api/v1/users/import", { method: "POST", body: csv, contentType: "text/csv" });
    $("import-summary").textContent = `${result.created} created, ${result.refused} refused.`;
    $("import-rows").replaceChildren(...result.rows.map((row) => el("tr", { class: row.status },
      el("td", { text: String(row.line) }),
      el("td", { text: row.email ?? "" }),
      el("td", { text: row.status === "created" ? "created" : "refused" }),
      el("td", { text: row.status === "created" ? (row.temporary_password ?? "(their own password)") : (row.reason ?? "") }))));
    $("import-report").hidden = false;
    const course = $("import-course").value;
    if (course) {
      // Everyone created, and those who had an account already, join the course.
      const emails = result.rows.filter((row) => row.email && (row.status === "created" || /already exists/.test(row.reason ?? "")))
        .map((row) => row.email);
      if (emails.length) {
        const enrolled = await api(`/api/v1/courses/${course}/enrollments/bulk`, { method: "POST", body: { emails } });
        $("import-summary").textContent += ` ${enrolled.enrolled} enrolled in the course, ${enrolled.already_enrolled} were already.`;
      }
    }
    await Promise.all([searchUsers(), fillPeople()]);
    if (course === $("course-pick").value) await showCourse();
  }, "Import finished.");
});

// --- Courses -------------------------------------------------------------------------------

async function fillCourses(selected) {
  const courses = await api("/api/v1/courses?per_page=200");
  $("course-pick").replaceChildren(el("option", { value: "", text: "Choose a course" }),
    ...courses.items.map((c) => el("option", { value: String(c.id), text: c.title })));
  $("import-course").replaceChildren(el("option", { value: "", text: "No course" }),
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
    .map((u) => el("option", { value: String(u.id), text: `${u.name} <${u.email}>` }));
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
    el("label", { class: "check grow" }, el("input", { type: "checkbox", value: String(u.id) }), ` ${u.name} <${u.email}>`))));
  $("student-pick-count").textContent = offered.length === 0
    ? "Every student of the school is enrolled, or none matches."
    : `${offered.length} not enrolled${offered.length > shown.length ? `; the first ${shown.length} shown — narrow the search` : ""}.`;
}

/** Shows what a bulk enrollment did: counts, and each refusal with its reason. */
function showEnrollReport(report) {
  $("enroll-summary").textContent = `${report.enrolled} enrolled, ${report.already_enrolled} already enrolled, ${report.refused} not enrolled.`;
  $("enroll-rows").replaceChildren(...report.rows.filter((r) => r.status === "refused")
    .map((r) => el("li", { class: "refused", text: `${r.email ?? `user ${r.user_id}`}: ${r.reason ?? "refused"}` })));
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
  return el("li", {}, el("span", { class: "grow", text: `${user.name} <${user.email}>` }),
    el("button", {
      type: "button",
      text: kind === "teacher" ? "Unassign" : "Unenroll",
      "aria-label": `${kind === "teacher" ? "Unassign" : "Unenroll"} ${user.name}`,
      onclick: () => act(async () => {
        await api(`/api/v1/courses/${course}/${path}/${user.id}`, { method: "DELETE" });
        await showCourse();
      }, `${user.name} was removed from the course.`),
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
  $("course-teachers").replaceChildren(...(teachers.items.length ? teachers.items.map((u) => memberRow(course, u, "teacher")) : none("No teacher yet.")));
  $("course-students").replaceChildren(...(students.items.length ? students.items.map((u) => memberRow(course, u, "student")) : none("No students yet.")));
}

$("create-course").addEventListener("submit", (event) => {
  event.preventDefault();
  const title = $("course-title").value;
  act(async () => {
    const course = await api("/api/v1/courses", { method: "POST", body: { title, description: $("course-description").value } });
    $("create-course").reset();
    await fillCourses(course.id);
  }, `${title} was created.`);
});

$("course-pick").addEventListener("change", () => act(showCourse, ""));

$("add-teacher").addEventListener("submit", (event) => {
  event.preventDefault();
  const option = $("teacher-pick").selectedOptions[0];
  if (!option) return;
  act(async () => {
    await api(`/api/v1/courses/${$("course-pick").value}/teachers`, { method: "POST", body: { user_id: Number(option.value) } });
    await showCourse();
  }, `${option.textContent} was assigned.`);
});

$("student-filter").addEventListener("input", () => renderStudentPick());

$("add-student").addEventListener("submit", (event) => {
  event.preventDefault();
  const ids = [...$("student-pick").querySelectorAll("input:checked")].map((box) => Number(box.value));
  if (!ids.length) return banner("Tick the students to enroll first.");
  act(async () => {
    const report = await enrollMany({ user_ids: ids });
    $("notice").textContent = `${report.enrolled} enrolled.`;
  }, "");
});

$("paste-students").addEventListener("submit", (event) => {
  event.preventDefault();
  const emails = $("paste-emails").value.split(/[\s,;]+/).filter(Boolean);
  if (!emails.length) return banner("Paste the students' emails first.");
  act(async () => {
    const report = await enrollMany({ emails });
    if (!report.refused) $("paste-emails").value = "";
    $("notice").textContent = `${report.enrolled} enrolled.`;
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
  }, "The course was saved.");
});

// --- The job queue -------------------------------------------------------------------------

const JOB_STATES = { queued: "waiting", running: "running", done: "done", failed: "failed" };

function jobRow(job) {
  const what = job.kind === "document" ? `Document ${job.document_id}` : `Replay of lesson ${job.lesson_id}`;
  const detail = [`${what} · ${JOB_STATES[job.state] ?? job.state}`, `${job.attempts} attempt${job.attempts === 1 ? "" : "s"}`, `since ${when(job.created_at)}`];
  return el("li", { "data-job": job.id },
    el("span", { class: "grow" }, detail.join(" · "), job.error ? el("span", { class: "error-text", text: ` — ${job.error}` }) : null),
    job.state === "failed" ? el("button", {
      type: "button",
      text: "Retry",
      "aria-label": `Retry job ${job.id}: ${what}`,
      onclick: () => act(async () => {
        await api(`/api/v1/recording-jobs/${job.id}/retry`, { method: "POST" });
        await showJobs();
      }, `Job ${job.id} is queued again.`),
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
  banner("This page is for the school's administrators.");
} else if (me) {
  Promise.all([searchUsers(), fillPeople(), fillCourses(), showJobs()]).catch(report);
}
