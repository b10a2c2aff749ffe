// Polls and quizzes in a real Chromium: the teacher asks a quiz from the Stream tab, two
// students answer on their poll cards, the teacher sees the results live, closes the poll and
// shows the results, the students see them; the results are in the REST API afterwards. Then
// a quick A/B/C/D poll in one click, and after the lesson each student's own quiz answers.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

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

const summary = (page) => page.locator("#poll-summary").textContent().catch(() => "");

test("a quiz from question to results, for the teacher and the class", async () => {
  const live = `${server.base}/live.html?lesson=${school.lesson.id}`;
  const teacher = await pageAs(browser, server.base, school.teacher);
  await teacher.goto(live);
  const sam = await pageAs(browser, server.base, school.sam);
  await sam.goto(live);
  const kim = await pageAs(browser, server.base, school.kim);
  await kim.goto(live);

  await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click({ timeout: 20_000 });
  await teacher.getByRole("tab", { name: "Stream" }).click();
  await teacher.getByLabel("Question").fill("Which organelle makes the cell's energy?");
  await teacher.getByLabel("Kind").selectOption("single_choice");
  await teacher.getByLabel("Options, one a line").fill("Nucleus\nMitochondria\nRibosome");
  await teacher.getByLabel(/Correct answer/).fill("2");
  await teacher.getByRole("button", { name: "Ask the class" }).click();

  // Both students get the poll card and answer.
  for (const student of [sam, kim]) {
    await student.getByRole("heading", { name: "Which organelle makes the cell's energy?" }).waitFor({ timeout: 20_000 });
    assert.equal(await student.locator("#poll-tools").isHidden(), true, "students get no poll controls");
  }
  await sam.getByRole("button", { name: "Mitochondria" }).click();
  await sam.getByText("Your answer: Mitochondria").waitFor();
  await kim.getByRole("button", { name: "Nucleus" }).click();
  await kim.getByText("Your answer: Nucleus").waitFor();
  // Answered once: the buttons are gone, and the class has seen no results yet.
  assert.equal(await sam.getByRole("button", { name: "Ribosome" }).count(), 0);
  assert.equal(await summary(sam), "");

  // The teacher sees the answers come in, then closes the poll and shows the results.
  await eventually("the teacher sees both answers", async () => (await summary(teacher)) === "2 answered · 1 correct");
  assert.deepEqual(await accessibilityProblems(teacher), [], "live page with a poll: no serious axe violations");
  await teacher.getByRole("button", { name: "Close the poll" }).click();
  await eventually("the students see it closed", async () => (await sam.locator("#poll-timer").textContent()) === "Closed");
  await teacher.getByRole("button", { name: "Show results to the class" }).click();
  for (const student of [sam, kim]) {
    await eventually("a student sees the results", async () => (await summary(student)) === "2 answered · 1 correct");
    const bar = student.locator('#poll-results [data-option="1"]');
    assert.match(await bar.textContent(), /Mitochondria ✓.*1 \(50%\)/);
  }
  assert.equal(await sam.locator(".poll-who").count(), 0, "the class never sees who answered what");

  // The results are stored with the lesson.
  const polls = `/api/v1/lessons/${school.lesson.id}/polls`;
  let stored;
  await eventually("the poll is in the REST API", async () => {
    stored = await server.request("GET", polls, school.teacher.token);
    return stored.items.length === 1;
  });
  const [quiz] = stored.items;
  assert.deepEqual(quiz.tallies, [1, 1, 0]);
  assert.equal(quiz.correct_count, 1);
  const byUser = Object.fromEntries(quiz.answers.map((a) => [a.user_id, a.answer_text]));
  assert.deepEqual(byUser, { [school.sam.id]: "Mitochondria", [school.kim.id]: "Nucleus" });

  // A quick poll in one click; answers may change until it closes.
  await teacher.getByRole("button", { name: "Quick poll A/B/C/D" }).first().click();
  await sam.getByRole("button", { name: "B", exact: true }).click({ timeout: 20_000 });
  await sam.getByText("Your answer: B").waitFor();
  await sam.getByRole("button", { name: "C", exact: true }).click();
  await sam.getByText("Your answer: C").waitFor();
  await eventually("the teacher sees the changed answer", async () => (await summary(teacher)) === "1 answered");
  const bar = teacher.locator('#poll-results [data-option="2"]');
  assert.match(await bar.textContent(), /C.*1 \(100%\)/);

  // The teacher ends the lesson (pages accept its confirm): each student's end screen lists
  // their own quiz answers.
  await teacher.getByRole("button", { name: "End lesson" }).click();
  const own = (page) => page.locator("#own-quiz li");
  await sam.getByRole("heading", { name: "Your quiz answers" }).waitFor({ timeout: 20_000 });
  assert.equal(await own(sam).count(), 1, "only the quiz, not the quick poll");
  assert.match(await own(sam).textContent(), /your answer: Mitochondria \(correct\)/);
  await kim.getByRole("heading", { name: "Your quiz answers" }).waitFor({ timeout: 20_000 });
  assert.match(await own(kim).textContent(), /your answer: Nucleus \(the correct answer: Mitochondria\)/);
});
