// The school's pages in a real Chromium: signing in (and a wrong password), session expiry
// with the way back, the admin's users (search, disable, CSV import report), a teacher's
// course page (schedule, edit, cancel), a student's course page on a phone, the replay page,
// and axe-core finding no serious or critical accessibility problems on any of them.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { ADMIN_EMAIL, PASSWORD, startServer } from "./lib/server.mjs";
import { accessibilityProblems, launch, personPage, signIn } from "./lib/browser.mjs";
import { adminCreatesSchool, scheduleLesson } from "./lib/ui.mjs";

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

const freshPage = (viewport) => personPage(browser, viewport);

async function assertAccessible(page, what) {
  assert.deepEqual(await accessibilityProblems(page), [], `${what}: no serious or critical axe violations`);
}

test("the school through its pages", async () => {
  const page = await freshPage();
  await page.goto(server.base + "/");
  await assertAccessible(page, "sign-in page");

  // The keyboard reaches the form in reading order, and focus is visible.
  await page.getByLabel("Email").focus();
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "password");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Sign in");
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.equal(outline, "solid", "the focused button shows an outline");

  // A wrong password says so and keeps the user on the sign-in form.
  await signIn(page, ADMIN_EMAIL, "not the password");
  await page.getByRole("alert").getByText("Wrong email or password.").waitFor();
  assert.equal(await page.getByRole("heading", { name: "Sign in" }).isVisible(), true);

  await signIn(page, ADMIN_EMAIL, PASSWORD);
  await page.getByRole("heading", { name: "My courses" }).waitFor();
  await page.getByRole("link", { name: "School admin" }).click();
  await page.getByRole("heading", { name: "Users", exact: true }).waitFor();

  const school = await adminCreatesSchool(page, server.base);
  await assertAccessible(page, "admin page");

  // Search finds by name; disabling an account stops its sign-in.
  await page.getByLabel("Name or email").fill("kim");
  await page.getByRole("button", { name: "Search" }).click();
  const found = page.getByRole("list", { name: "Users found" }).getByRole("listitem");
  await page.waitForFunction(() => document.querySelectorAll("#users li").length === 1);
  assert.match(await found.first().textContent(), /Kim Student <kim@school\.test> · student/);
  await page.getByRole("button", { name: "Disable Kim Student" }).click();
  await page.getByRole("button", { name: "Enable Kim Student" }).waitFor();
  const refused = await fetch(server.base + "/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: school.kim.email, password: PASSWORD }),
  });
  assert.equal(refused.status, 401, "a disabled account cannot sign in");
  await page.getByRole("button", { name: "Enable Kim Student" }).click();
  await page.getByRole("button", { name: "Disable Kim Student" }).waitFor();

  // CSV import: one row created with a temporary password, two refused with reasons.
  await page.getByLabel("or paste the CSV").fill("email,name\nlee@school.test,Lee Learner\nnot-an-email,Bad Row\nsam@school.test,Sam Again\n");
  await page.getByRole("button", { name: "Import" }).click();
  await page.getByText("1 created, 2 refused.").waitFor();
  const rows = await page.locator("#import-rows tr").evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  const byLine = Object.fromEntries(rows.map((r) => [r[0], r]));
  assert.equal(byLine["2"][2], "created");
  assert.ok(byLine["2"][3].length >= 8, "a temporary password is shown");
  assert.equal(byLine["3"][2], "refused");
  assert.equal(byLine["4"][2], "refused");
  assert.ok(byLine["4"][3].length > 0, "the refusal says why");

  // The teacher schedules, edits and cancels lessons on the course page.
  const teacher = await freshPage();
  await teacher.goto(`${server.base}/course.html?id=${school.courseId}`);
  await teacher.getByRole("heading", { name: "Sign in" }).waitFor(); // no session yet: sign in first
  await signIn(teacher, school.teacher.email, PASSWORD);
  await teacher.getByRole("heading", { name: "Biology 8a" }).waitFor(); // back where they were going
  const first = await scheduleLesson(teacher, "Photosynthesis");
  await scheduleLesson(teacher, "Field trip");
  await teacher.getByRole("button", { name: "Edit Photosynthesis" }).click();
  await teacher.locator(`#edit-${first}-title`).fill("Photosynthesis, part 1");
  await teacher.getByRole("button", { name: "Save changes" }).click();
  await teacher.locator("#upcoming").getByText("Photosynthesis, part 1").waitFor();
  await teacher.getByRole("button", { name: "Cancel lesson: Field trip" }).click();
  await teacher.locator("#ended li", { hasText: "Field trip" }).getByText("cancelled").waitFor();
  assert.equal(await teacher.getByRole("link", { name: "Go live: Photosynthesis, part 1" }).count(), 1);
  await assertAccessible(teacher, "teacher's course page");

  // An expired session (here: a token the server refuses) sends the teacher to sign in and back.
  await teacher.evaluate(() => {
    const saved = JSON.parse(localStorage.getItem("classroom.session"));
    localStorage.setItem("classroom.session", JSON.stringify({ ...saved, token: "expired.token.value" }));
  });
  await teacher.reload();
  await teacher.getByText("Your session has ended. Sign in again to continue.").waitFor();
  assert.match(teacher.url(), /\/\?next=%2Fcourse\.html%3Fid%3D/);
  await signIn(teacher, school.teacher.email, PASSWORD);
  await teacher.getByRole("heading", { name: "Biology 8a" }).waitFor();
  // Signing out ends the session for good.
  await teacher.getByRole("button", { name: "Sign out" }).click();
  await teacher.getByRole("heading", { name: "Sign in" }).waitFor();
  assert.equal(await teacher.evaluate(() => localStorage.getItem("classroom.session")), null);
  await teacher.close();

  // A student on a phone: the course without teacher controls, then the replay page.
  const student = await freshPage({ width: 390, height: 844 });
  await student.goto(server.base + "/");
  await signIn(student, school.sam.email, PASSWORD);
  await student.getByRole("link", { name: "Biology 8a" }).click();
  await student.getByRole("link", { name: "Join: Photosynthesis, part 1" }).waitFor();
  assert.equal(await student.getByRole("heading", { name: "Schedule a lesson" }).isVisible(), false);
  assert.equal(await student.getByRole("button", { name: /^Cancel / }).count(), 0);
  const width = await student.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 390, `the course page fits a phone (scroll width ${width})`);
  await assertAccessible(student, "student's course page");
  await student.goto(`${server.base}/replay.html?lesson=${first}`);
  await student.getByText(/^No replay yet/).waitFor();
  assert.equal(await student.locator("video").isVisible(), false);
  await assertAccessible(student, "replay page");
  await student.close();

  // The admin page refuses the server being gone with a clear message.
  await server.halt();
  await page.getByRole("button", { name: "Search" }).click();
  await page.getByRole("alert").getByText(/The server cannot be reached/).waitFor();
  await server.start();
  await page.close();
});
