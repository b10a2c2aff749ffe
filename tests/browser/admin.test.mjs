// The school run from the browser alone: a class enrolled at once (ticked, pasted, or with a
// CSV import), a course edited, a forgotten password reset by the admin and changed by its
// owner, the replay and document queue with a failed job retried, and the admin pages on a
// phone without sideways scrolling.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { ADMIN_EMAIL, PASSWORD, startServer } from "./lib/server.mjs";
import { accessibilityProblems, launch, personPage, signIn } from "./lib/browser.mjs";
import { adminCreatesSchool } from "./lib/ui.mjs";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** The width the page scrolls to: more than the viewport means sideways scrolling. */
const scrollWidth = (page) => page.evaluate(() => document.documentElement.scrollWidth);

test("an admin enrolls a class at once, edits the course, resets a password and retries a job, on a phone", async () => {
  const page = await personPage(browser, { width: 390, height: 844 });
  await page.goto(server.base + "/");
  await signIn(page, ADMIN_EMAIL, PASSWORD);
  await page.getByRole("heading", { name: "My courses" }).waitFor();
  const school = await adminCreatesSchool(page, server.base);
  assert.ok(await scrollWidth(page) <= 390, `the admin page fits a phone (${await scrollWidth(page)} px)`);

  // A CSV import enrolls its students in the course too.
  await page.getByLabel("or paste the CSV").fill("email,name\nlee@school.test,Lee Learner\nmo@school.test,Mo Learner\nsam@school.test,Sam Again\n");
  await page.getByLabel("and enroll them in").selectOption({ label: "Biology 8a" });
  await page.getByRole("button", { name: "Import" }).click();
  await page.getByText("2 created, 1 refused. 2 enrolled in the course, 1 were already.").waitFor();
  const students = page.getByRole("list", { name: "Students", exact: true });
  for (const name of ["Lee Learner", "Mo Learner"]) await students.getByText(name).waitFor();
  assert.ok(await scrollWidth(page) <= 390, "the import report scrolls inside its box, not the page");

  // Those enrolled are no longer offered; a pasted list says who could not be enrolled.
  assert.equal(await page.getByRole("checkbox", { name: /Lee Learner/ }).count(), 0);
  await page.getByRole("form", { name: "Create a user" }).getByLabel("Name").fill("Pat Pupil");
  const form = page.getByRole("form", { name: "Create a user" });
  await form.getByLabel("Email").fill("pat@school.test");
  await form.getByLabel("First password (8 characters or more)").fill(PASSWORD);
  await form.getByRole("button", { name: "Create user" }).click();
  await page.getByRole("status").getByText("Pat Pupil was created.").waitFor();
  await page.getByLabel("Or paste their emails").fill("pat@school.test, kim@school.test\nghost@school.test");
  await page.getByRole("button", { name: "Enroll the list" }).click();
  await page.getByText("1 enrolled, 1 already enrolled, 1 not enrolled.").waitFor();
  await page.getByRole("list", { name: "Students not enrolled, and why" }).getByText("ghost@school.test: no such user").waitFor();
  await students.getByText("Pat Pupil").waitFor();
  const enrolled = await server.request("GET", `/api/v1/courses/${school.courseId}/enrollments`, (await server.login(ADMIN_EMAIL)).token);
  assert.equal(enrolled.total, 5, "sam, kim, lee, mo and pat");

  // The course is edited in place.
  await page.getByRole("form", { name: "Edit the course" }).getByLabel("Title").fill("Biology 8a (spring)");
  await page.getByLabel("Record lessons by default").uncheck();
  await page.getByRole("button", { name: "Save course" }).click();
  await page.getByRole("status").getByText("The course was saved.").waitFor();
  const course = await server.request("GET", `/api/v1/courses/${school.courseId}`, (await server.login(ADMIN_EMAIL)).token);
  assert.equal(course.title, "Biology 8a (spring)");
  assert.equal(course.record_by_default, false);

  // Kim forgot her password: the admin gives her a temporary one, shown once.
  await page.getByLabel("Name or email").fill("kim");
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("button", { name: "Reset password of Kim Student" }).click();
  const notice = await page.getByRole("status").getByText(/temporary password is/).textContent();
  const temporary = notice.match(/temporary password is (\S+)/)[1];
  const old = await fetch(server.base + "/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: school.kim.email, password: PASSWORD }),
  });
  assert.equal(old.status, 401, "the old password stops working");

  // Kim signs in with it and chooses her own on her account page.
  const kim = await personPage(browser, { width: 390, height: 844 });
  await kim.goto(server.base + "/");
  await signIn(kim, school.kim.email, temporary);
  await kim.getByRole("link", { name: "Kim Student (student)" }).click();
  await kim.getByRole("heading", { name: "Change your password" }).waitFor();
  await kim.getByLabel("Current password").fill(temporary);
  await kim.getByLabel("New password (8 characters or more)").fill("kims own password");
  await kim.getByLabel("New password again").fill("kims own passwrd");
  await kim.getByRole("button", { name: "Change password" }).click();
  await kim.getByText("The two new passwords differ.").waitFor();
  await kim.getByLabel("New password again").fill("kims own password");
  await kim.getByRole("button", { name: "Change password" }).click();
  await kim.getByText("Your password was changed. Sign in with the new one.").waitFor();
  await signIn(kim, school.kim.email, "kims own password");
  await kim.getByRole("heading", { name: "My courses" }).waitFor();
  assert.deepEqual(await accessibilityProblems(kim), []);
  await kim.close();

  // A document whose conversion fails shows in the queue as failed, and is retried.
  const teacher = await server.login(school.teacher.email);
  const upload = await fetch(`${server.base}/api/v1/courses/${school.courseId}/documents?name=Broken.pdf`, {
    method: "POST",
    headers: { authorization: `Bearer ${teacher.token}`, "content-type": "application/pdf" },
    body: "%PDF-1.4\nnot really a pdf\n",
  });
  assert.equal(upload.status, 201, await upload.text());
  const admin = await server.login(ADMIN_EMAIL);
  const deadline = Date.now() + 60_000;
  let failed = [];
  while (!failed.length && Date.now() < deadline) {
    failed = (await server.request("GET", "/api/v1/recording-jobs?state=failed", admin.token)).items;
    if (!failed.length) await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(failed.length, 1, "the broken document's job failed");
  await page.reload();
  const job = page.getByRole("list", { name: "Jobs" }).getByRole("listitem");
  await job.getByText(/Document \d+ · failed/).waitFor();
  await page.getByRole("button", { name: /^Retry job \d+: Document/ }).click();
  await page.getByRole("status").getByText(/^Job \d+ is queued again\.$/).waitFor();
  assert.ok(await scrollWidth(page) <= 390, "still no sideways scrolling");
  assert.deepEqual(await accessibilityProblems(page), [], "admin page: no serious axe violations");
  await page.close();
});
