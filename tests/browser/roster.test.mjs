// A large room's participant list, in real browsers: past `signaling.full_roster_limit` (here
// 1, so that three people make a large room) a student's page lists the teacher and
// themselves, shows the head count and "and N more", and hears nothing of other students'
// comings and goings; the teacher's page pages in everyone (docs/protocol.md, "Large rooms").

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { school, startServer } from "./lib/server.mjs";
import { eventually, launch, pageAs } from "./lib/browser.mjs";

let server;
let people;
let browser;

before(async () => {
  server = await startServer({ env: { CLASSROOM_SIGNALING__FULL_ROSTER_LIMIT: "1" } });
  people = await school(server);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** What the People panel of `page` shows: its rows' ids, the tab's count, the "more" line. */
const roster = (page) =>
  page.evaluate(() => ({
    ids: [...document.querySelectorAll("#people li")].map((li) => Number(li.dataset.participant)).sort((a, b) => a - b),
    count: document.getElementById("people-count").textContent,
    more: document.getElementById("people-more").hidden ? "" : document.getElementById("people-more").textContent,
  }));

const idOf = (page) => page.evaluate(() => window.classroom.me);

test("students of a large room see the teacher, themselves and the head count; the teacher sees everyone", async () => {
  const live = `${server.base}/live.html?lesson=${people.lesson.id}`;
  const teacher = await pageAs(browser, server.base, people.teacher);
  await teacher.goto(live);
  await eventually("the teacher in the room", () => idOf(teacher));
  const sam = await pageAs(browser, server.base, people.sam);
  await sam.goto(live);
  await eventually("Sam in the room", () => idOf(sam));
  const kim = await pageAs(browser, server.base, people.kim);
  await kim.goto(live);
  await eventually("Kim in the room", () => idOf(kim));
  const [teacherId, samId, kimId] = [await idOf(teacher), await idOf(sam), await idOf(kim)];

  // Kim joined a large room: the teacher and herself are listed, Sam is counted.
  await eventually("Kim's partial list", async () => {
    const r = await roster(kim);
    return r.count === "(3)" && r.more === "and 1 more in the lesson" ? r : null;
  });
  assert.deepEqual((await roster(kim)).ids, [teacherId, kimId].sort((a, b) => a - b));
  // Sam was not told of Kim (she is not on stage and has no hand up); the count tells him.
  await eventually("Sam's count", async () => {
    const r = await roster(sam);
    return r.count === "(3)" ? r : null;
  });
  assert.ok(!(await roster(sam)).ids.includes(kimId), "Sam was not told of Kim");

  // Kim raises her hand: now everyone hears of her.
  await kim.evaluate(() => window.classroom.signaling.request({ type: "raise_hand" }));
  await eventually("Kim on Sam's list", async () => (await roster(sam)).ids.includes(kimId));

  // The teacher reloads: their `joined` is partial too, and the page pages in everyone.
  await teacher.reload();
  await eventually("everyone on the teacher's list", async () => {
    const r = await roster(teacher);
    return JSON.stringify(r.ids) === JSON.stringify([teacherId, samId, kimId].sort((a, b) => a - b)) && r.more === "" ? r : null;
  });
  for (const page of [teacher, sam, kim]) await page.close();
});
