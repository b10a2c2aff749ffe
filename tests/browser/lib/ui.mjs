// Steps driven through the web client's pages, as a school's people would click them.

import { PASSWORD } from "./server.mjs";

/** On the admin page: creates a user through the form and waits for the confirmation. */
export async function createUser(page, { name, email, role }) {
  const form = page.getByRole("form", { name: "Create a user" });
  await form.getByLabel("Name").fill(name);
  await form.getByLabel("Email").fill(email);
  await form.getByLabel("First password (8 characters or more)").fill(PASSWORD);
  await form.getByLabel("Role").selectOption(role);
  await form.getByRole("button", { name: "Create user" }).click();
  await page.getByRole("status").getByText(`${name} was created.`).waitFor();
}

/**
 * On the admin page: creates a course, a teacher and two students, assigns the teacher and
 * enrolls both students. Returns the people (with their emails) and the course id.
 */
export async function adminCreatesSchool(page, base) {
  await page.goto(`${base}/admin.html`);
  const teacher = { name: "Tess Teacher", email: "tess@school.test", role: "teacher" };
  const sam = { name: "Sam Student", email: "sam@school.test", role: "student" };
  const kim = { name: "Kim Student", email: "kim@school.test", role: "student" };
  for (const person of [teacher, sam, kim]) await createUser(page, person);

  const courseForm = page.getByRole("form", { name: "Create a course" });
  await courseForm.getByLabel("Title").fill("Biology 8a");
  await courseForm.getByLabel("Description").fill("Cells and living things");
  await page.getByRole("button", { name: "Create course" }).click();
  await page.getByRole("status").getByText("Biology 8a was created.").waitFor();
  const courseId = await page.getByLabel("Course to manage").inputValue();

  await page.getByLabel("Teacher to assign").selectOption({ label: `${teacher.name} <${teacher.email}>` });
  await page.getByRole("button", { name: "Assign teacher" }).click();
  await page.getByRole("list", { name: "Teachers", exact: true }).getByText(teacher.name).waitFor();
  // Both students at once, ticked in the list of those not enrolled yet.
  for (const student of [sam, kim]) await page.getByRole("checkbox", { name: `${student.name} <${student.email}>` }).check();
  await page.getByRole("button", { name: "Enroll selected" }).click();
  for (const student of [sam, kim]) await page.getByRole("list", { name: "Students", exact: true }).getByText(student.name).waitFor();
  return { teacher, sam, kim, courseId };
}

/** On a teacher's course page: schedules a lesson starting now; returns its id. */
export async function scheduleLesson(page, title, minutes = 60) {
  const form = page.getByRole("form", { name: "Schedule a lesson" });
  await form.getByLabel("Title").fill(title);
  await form.getByLabel("Length in minutes").fill(String(minutes));
  await page.getByRole("button", { name: "Schedule lesson" }).click();
  const row = page.locator("#upcoming li", { hasText: title });
  await row.waitFor();
  return row.getAttribute("data-lesson");
}
