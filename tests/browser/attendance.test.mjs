// Attendance in a real Chromium: a teacher and a student are in a lesson's room (their
// signaling only, from their pages), the student raises a hand, chats and leaves; the teacher
// opens the lesson's attendance from the course page, sees the student's stay and counts, and
// downloads the CSV with the same numbers; the student sees their own attendance on the
// course page; axe-core finds no serious or critical problems on the attendance page.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";

import { school as makeSchool, startServer } from "./lib/server.mjs";
import { accessibilityProblems, eventually, launch, pageAs } from "./lib/browser.mjs";

let server;
let browser;
let school;

before(async () => {
  server = await startServer();
  browser = await launch();
  school = await makeSchool(server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Joins the lesson's room from `page` with `person`'s join token and sends `messages`, each
 * answered `ok`; the WebSocket stays open on the page (unless a message closes it). */
async function inRoom(page, person, messages) {
  const { token } = await server.request("POST", `/api/v1/lessons/${school.lesson.id}/join`, person.token);
  await page.evaluate(async ({ token, messages }) => {
    const ws = new WebSocket(`${location.origin.replace(/^http/, "ws")}/ws`);
    window.attendanceSocket = ws;
    await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
    const answered = (id) => new Promise((resolve) => {
      ws.addEventListener("message", (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "ok" && message.id === id) resolve();
      });
    });
    let id = 1;
    ws.send(JSON.stringify({ v: 1, id, type: "join", token }));
    await answered(id);
    for (const message of messages) {
      id += 1;
      ws.send(JSON.stringify({ v: 1, id, ...message }));
      await answered(id);
    }
  }, { token, messages });
}

test("a teacher sees who attended a lesson and exports it; a student sees their own", async () => {
  // The teacher stays in the room on a page of their own while they look at the reports.
  const teacherInRoom = await pageAs(browser, server.base, school.teacher);
  const teacher = await pageAs(browser, server.base, school.teacher);
  const sam = await pageAs(browser, server.base, school.sam);
  await inRoom(teacherInRoom, school.teacher, []);
  await inRoom(sam, school.sam, [{ type: "raise_hand" }, { type: "chat", text: "present!" }, { type: "leave" }]);

  await teacher.goto(`${server.base}/course.html?id=${school.course.id}`);
  await teacher.getByRole("link", { name: `Attendance of ${school.lesson.title}` }).click();
  await teacher.getByRole("heading", { name: `Attendance: ${school.lesson.title}` }).waitFor();
  const samRow = teacher.locator(`#report-body tr[data-user="${school.sam.id}"]`);
  // Written as it happens: the page may be a moment ahead of the last write.
  await eventually("Sam's row with his hand and chat message", async () => {
    await teacher.reload();
    await samRow.waitFor();
    const cells = await samRow.locator("td").allTextContents();
    return cells[1] === "student" && cells[7] === "1" && cells[8] === "1" && /\(left\)/.test(cells[2]);
  });
  const teacherRow = teacher.locator(`#report-body tr[data-user="${school.teacher.id}"]`);
  assert.match(await teacherRow.locator("td").nth(2).textContent(), /now/, "the teacher is still in the room");
  assert.deepEqual(await accessibilityProblems(teacher), [], "attendance page: no serious or critical axe violations");

  const [download] = await Promise.all([
    teacher.waitForEvent("download"),
    teacher.getByRole("button", { name: "Download CSV" }).click(),
  ]);
  assert.equal(download.suggestedFilename(), `lesson-${school.lesson.id}-attendance.csv`);
  const csv = (await readFile(await download.path(), "utf8")).trim().split("\n");
  const header = csv[0].split(",");
  const samLine = csv.map((line) => line.split(",")).find((cells) => cells[0] === String(school.sam.id));
  const field = (name) => samLine[header.indexOf(name)];
  assert.equal(field("hands_raised"), "1");
  assert.equal(field("chat_messages"), "1");
  assert.equal(field("intervals"), "1");

  // The course's summary, from the course page.
  await teacher.goto(`${server.base}/course.html?id=${school.course.id}`);
  await teacher.getByRole("link", { name: "Attendance of all students" }).click();
  await teacher.getByRole("heading", { name: "Course attendance" }).waitFor();
  const summary = await teacher.locator(`#report-body tr[data-user="${school.sam.id}"] td`).allTextContents();
  assert.equal(summary[1], "1 of 1");
  assert.equal(summary[6], "1", "hands");
  assert.equal(summary[7], "1", "chat");

  // Sam's own attendance on the course page.
  await sam.goto(`${server.base}/course.html?id=${school.course.id}`);
  await sam.getByText("You attended 1 of 1 lessons").waitFor();
  await sam.locator(`#my-attendance li[data-lesson="${school.lesson.id}"]`).getByText("min").waitFor();
  assert.equal(await sam.getByRole("link", { name: "Attendance of all students" }).count(), 0);
});
