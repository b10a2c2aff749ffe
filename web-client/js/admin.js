// School admin: users (create, search, disable, CSV import with its per-row report) and
// courses (create, assign teachers, enroll students).

import { api } from "./api.js";
import { $, banner, el, report, requireSession } from "./page.js";

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
      class: user.disabled ? "" : "danger",
      text: user.disabled ? "Enable" : "Disable",
      "aria-label": `${user.disabled ? "Enable" : "Disable"} ${user.name}`,
      onclick: () => act(async () => {
        await api(`/api/v1/users/${user.id}`, { method: "PATCH", body: { disabled: !user.disabled } });
        await searchUsers();
      }, `${user.name} is ${user.disabled ? "enabled" : "disabled"}.`),
    }))));
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
    await Promise.all([searchUsers(), fillPeople()]);
  }, "Import finished.");
});

// --- Courses -------------------------------------------------------------------------------

async function fillCourses(selected) {
  const courses = await api("/api/v1/courses?per_page=200");
  $("course-pick").replaceChildren(el("option", { value: "", text: "Choose a course" }),
    ...courses.items.map((c) => el("option", { value: String(c.id), text: c.title })));
  if (selected) $("course-pick").value = String(selected);
  await showCourse();
}

async function fillPeople() {
  const [teachers, students] = await Promise.all([
    api("/api/v1/users?role=teacher&per_page=200"),
    api("/api/v1/users?role=student&per_page=200"),
  ]);
  const options = (users) => users.items.filter((u) => !u.disabled)
    .map((u) => el("option", { value: String(u.id), text: `${u.name} <${u.email}>` }));
  $("teacher-pick").replaceChildren(...options(teachers));
  $("student-pick").replaceChildren(...options(students));
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
  const [teachers, students] = await Promise.all([
    api(`/api/v1/courses/${course}/teachers?per_page=200`),
    api(`/api/v1/courses/${course}/enrollments?per_page=200`),
  ]);
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

for (const [form, pick, path, what] of [["add-teacher", "teacher-pick", "teachers", "assigned"], ["add-student", "student-pick", "enrollments", "enrolled"]]) {
  $(form).addEventListener("submit", (event) => {
    event.preventDefault();
    const option = $(pick).selectedOptions[0];
    if (!option) return;
    act(async () => {
      await api(`/api/v1/courses/${$("course-pick").value}/${path}`, { method: "POST", body: { user_id: Number(option.value) } });
      await showCourse();
    }, `${option.textContent} was ${what}.`);
  });
}

const me = requireSession();
if (me && me.user.role !== "admin") {
  banner("This page is for the school's administrators.");
} else if (me) {
  Promise.all([searchUsers(), fillPeople(), fillCourses()]).catch(report);
}
