// Breakout rooms in Chromium: the teacher opens a breakout room from the People tab, two
// students are moved into it without a reload (the same page, the same WebSocket), turn on
// their cameras there and see each other, see the recording indicator while the teacher
// records their room from the panel (its replay then listed on the lesson's replay page with
// the room's name), hear the teacher speaking to all rooms while it is on, and come back to the
// teacher's video when the teacher closes the rooms.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { school, startServer } from "./lib/server.mjs";
import { eventually, launch, pageAs, videoFrom } from "./lib/browser.mjs";

let server;
let browser;
let people;

before(async () => {
  server = await startServer();
  browser = await launch();
  people = await school(server);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const liveUrl = () => `${server.base}/live.html?lesson=${people.lesson.id}`;
const connected = (page) => page.evaluate(() => window.classroom.media?.pc.connectionState === "connected");
/** The id, in the room the page is in now, of the participant named `name`. */
const idOf = (page, name) => page.evaluate((n) => [...window.classroom.participants.values()].find((p) => p.name === n)?.id ?? null, name);
const place = (page) => page.evaluate(() => document.querySelector(".breakout-place")?.textContent ?? null);

/** Whether `page` decodes video from the participant named `name`. */
async function seesVideoOf(page, name) {
  const id = await idOf(page, name);
  if (id === null) return false;
  const video = await videoFrom(page, id);
  return !!video && video.frames > 0;
}

test("the teacher opens a breakout room, two students meet there without a reload and come back", async () => {
  const teacher = await pageAs(browser, server.base, people.teacher);
  await teacher.goto(liveUrl());
  await teacher.getByRole("button", { name: "Go live with camera and microphone" }).click();
  await eventually("the teacher's connection", () => connected(teacher));

  const students = [];
  for (const person of [people.sam, people.kim]) {
    const page = await pageAs(browser, server.base, person);
    await page.goto(liveUrl());
    await eventually(`${person.name} sees the teacher`, () => seesVideoOf(page, people.teacher.name));
    // Gone if the page reloads: the move must keep this very page.
    await page.evaluate(() => { window.sameDocument = true; });
    students.push(page);
  }

  // One room at random: both students go there.
  await teacher.locator("#tab-people").click();
  await teacher.locator("#breakout-count").fill("1");
  await teacher.locator("#breakout-mode").selectOption("random");
  await teacher.getByRole("button", { name: "Open breakout rooms" }).click();
  await eventually("the teacher sees both students in Room 1", () => teacher.evaluate(() =>
    document.querySelector('#breakout-rooms [data-room="0"]')?.querySelectorAll("li").length === 2));

  for (const page of students) {
    await eventually("a student is in Room 1", async () => (await place(page)) === "You are in Room 1.");
    // Everyone may speak in a breakout room: the device check offers the camera.
    await page.getByRole("button", { name: "Turn on camera and microphone" }).click();
  }
  await eventually("Sam sees Kim", () => seesVideoOf(students[0], people.kim.name));
  await eventually("Kim sees Sam", () => seesVideoOf(students[1], people.sam.name));
  for (const page of students) {
    assert.equal(await page.evaluate(() => window.sameDocument), true, "no reload");
    assert.equal(await idOf(page, people.teacher.name), null, "the teacher stayed in the main room");
  }

  // The teacher records the room from the panel: its students see the recording indicator
  // (the room's own), the panel marks the room; stopping takes it away again.
  const recordingShown = (page) => page.evaluate(() => !document.querySelector("#recording").hidden);
  assert.equal(await recordingShown(students[0]), false, "not recorded yet");
  await teacher.getByRole("button", { name: "Record Room 1" }).click();
  for (const page of students) await eventually("a student sees the room recorded", () => recordingShown(page));
  await eventually("the panel marks the room recorded", () => teacher.evaluate(() =>
    !!document.querySelector('#breakout-rooms [data-recorded="0"]')));
  assert.equal(await recordingShown(teacher), false, "the main room is not recorded");
  await teacher.getByRole("button", { name: "Stop recording Room 1" }).click();
  for (const page of students) await eventually("the indicator goes", async () => !(await recordingShown(page)));

  // The teacher speaks to all rooms from the main room: each student receives the voice (a
  // `voice_track`, no participant of the room), until the teacher stops.
  const hearsVoice = (page) => page.evaluate(() =>
    [...(window.classroom.media?.ownerByMid.values() ?? [])].some((owner) => owner.participant === "voice"));
  await teacher.getByRole("button", { name: "Speak to all rooms" }).click();
  for (const page of students) await eventually("a student receives the teacher's voice", () => hearsVoice(page));
  await teacher.getByRole("button", { name: "Stop speaking to all rooms" }).click();
  for (const page of students) await eventually("the voice ends", async () => !(await hearsVoice(page)));

  // The teacher brings everyone back.
  await teacher.getByRole("button", { name: "Close all rooms" }).click();
  for (const page of students) {
    await eventually("a student is back in the main room", async () => (await place(page)) === null);
    await eventually("a student sees the teacher again", () => seesVideoOf(page, people.teacher.name));
    assert.equal(await page.evaluate(() => window.sameDocument), true, "no reload");
    assert.equal(await page.evaluate(() => window.classroom.signaling?.received.joined), 3, "three rooms' joined, one socket");
  }

  // The room's recording is a replay of its own: the lesson's replay page names its room.
  // The replay is listed once the recorder has closed the room's recording (a job then makes
  // the video): on a loaded machine that has taken more than 20 s, so the wait is longer, and
  // a failure says what the page listed.
  const replayPage = await pageAs(browser, server.base, people.teacher);
  const stopped = Date.now();
  let listed = "";
  try {
    await eventually("the replay page lists the breakout room's replay", async () => {
      await replayPage.goto(`${server.base}/replay.html?lesson=${people.lesson.id}`);
      listed = await replayPage.locator("#replays").innerText();
      const link = replayPage.locator('#replays a[data-breakout="1-0"]');
      return (await link.count()) === 1 && (await link.textContent()).includes("Room 1 (breakout round 1)");
    }, 90_000);
  } catch (error) {
    throw new Error(`${error.message}; the replay page listed: ${JSON.stringify(listed)}`);
  }
  console.log(`the breakout room's replay listed ${Date.now() - stopped} ms after the rooms closed`);
});
