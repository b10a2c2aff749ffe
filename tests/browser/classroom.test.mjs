// The live page as one classroom: it fits the screen (1366×768, 1920×1080, a 390×844 phone)
// without page scrolling, with the control bar and the chat input in view and the teacher's
// video large on the stage, with 1, 5 and 30 people (screenshots in tests/artifacts); the
// hand queue (sound, badge, Bring on stage / Lower hand), a declined stage, self mute and
// leaving the stage, the chat lock; the early student waiting for the teacher, the teacher's
// reload and the end screen.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";

import { PASSWORD, school, startServer } from "./lib/server.mjs";
import { ARTIFACTS, accessibilityProblems, eventually, launch, pageAs } from "./lib/browser.mjs";

let server;
let browser;
let school_;

before(async () => {
  server = await startServer();
  browser = await launch();
  school_ = await school(server);
});

/** The school's people with a new lesson of their course, starting now. */
async function withLesson(title) {
  const now = new Date();
  const lesson = await server.request("POST", `/api/v1/courses/${school_.course.id}/lessons`, school_.teacher.token, {
    title,
    starts_at: now.toISOString(),
    ends_at: new Date(now.getTime() + 3600_000).toISOString(),
  });
  return { ...school_, lesson };
}

after(async () => {
  await browser?.close();
  await server?.stop();
});

const SIZES = [
  { name: "laptop", width: 1366, height: 768 },
  { name: "desktop", width: 1920, height: 1080 },
  { name: "phone", width: 390, height: 844 },
];
const liveUrl = (lesson) => `${server.base}/live.html?lesson=${lesson.id}`;

/** The teacher opens the lesson and goes live with the fake camera. */
async function teacherLive(people, viewport) {
  const teacher = await pageAs(browser, server.base, people.teacher, viewport);
  await teacher.goto(liveUrl(people.lesson));
  await teacher.getByRole("button", { name: "Go live with camera and microphone" }).click();
  await eventually("the teacher's connection", () => teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"));
  return teacher;
}

/** Joins `count` more enrolled students to the lesson, signaling only (no media), from one page. */
let crowded = 0;
async function crowd(people, count) {
  const students = [];
  for (let i = crowded; i < crowded + count; i++) {
    const email = `crowd${i}@school.test`;
    const user = await server.request("POST", "/api/v1/users", people.admin.token, { email, name: `Student ${i + 1}`, password: PASSWORD, role: "student" });
    await server.request("POST", `/api/v1/courses/${people.course.id}/enrollments`, people.teacher.token, { user_id: user.id });
    const { token } = await server.login(email);
    students.push((await server.request("POST", `/api/v1/lessons/${people.lesson.id}/join`, token)).token);
  }
  crowded += count;
  const page = await browser.newPage();
  await page.goto(`${server.base}/offline.html`); // any page of the server: same origin for /ws
  await page.evaluate(async (tokens) => {
    window.sockets = await Promise.all(tokens.map((token) => new Promise((resolve, reject) => {
      const socket = new WebSocket(`ws://${location.host}/ws`);
      socket.onopen = () => socket.send(JSON.stringify({ v: 1, id: 1, type: "join", token }));
      socket.onmessage = (event) => { if (JSON.parse(event.data).type === "ok") resolve(socket); };
      socket.onclose = () => reject(new Error("closed"));
    })));
  }, students);
  return page;
}

/** Whatever the page shows must fit the viewport: no scrolling, controls and chat in view. */
async function checkLayout(page, who, size) {
  const found = await page.evaluate(() => {
    const box = (id) => {
      const r = document.getElementById(id)?.getBoundingClientRect();
      return r && { top: r.top, left: r.left, bottom: r.bottom, right: r.right, width: r.width, height: r.height };
    };
    return {
      scrollWidth: document.documentElement.scrollWidth,
      scrollHeight: document.documentElement.scrollHeight,
      controls: box("controls"),
      chat: box("chat-text"),
      main: box("main-tile"),
      large: document.querySelector("#main-tile figcaption")?.textContent ?? null,
      // Where the page grows, when it does: the bottom of each of the body's parts.
      parts: [...document.body.children].map((e) => `${e.id || e.tagName}:${Math.round(e.getBoundingClientRect().bottom)}`).join(" "),
    };
  });
  const where = `${who} at ${size.width}×${size.height}`;
  assert.ok(found.scrollWidth <= size.width, `${where}: nothing overflows horizontally (${found.scrollWidth})`);
  assert.ok(found.scrollHeight <= size.height, `${where}: no page scrolling (${found.scrollHeight}; ${found.parts})`);
  const inside = (r) => r && r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= size.height + 0.5 && r.right <= size.width + 0.5;
  assert.ok(inside(found.controls), `${where}: the control bar in view ${JSON.stringify(found.controls)}`);
  assert.ok(inside(found.chat), `${where}: the chat input in view ${JSON.stringify(found.chat)}`);
  // The teacher's own page names their tile "Tess Teacher (you)".
  assert.match(found.large ?? "", /^Tess Teacher( \(you\))?$/, `${where}: the teacher on the stage`);
  const phone = size.width < 600;
  assert.ok(found.main.width >= size.width * (phone ? 0.9 : 0.6), `${where}: the stage is wide (${found.main.width})`);
  assert.ok(found.main.height >= size.height * (phone ? 0.25 : 0.5), `${where}: the stage is tall (${found.main.height})`);
}

test("the live page fits laptop, desktop and phone with 1, 5 and 30 people", { timeout: 240_000 }, async () => {
  const people = await withLesson("Layout");
  const teacher = await teacherLive(people, SIZES[0]);
  const sam = await pageAs(browser, server.base, people.sam, SIZES[0]);
  await sam.goto(liveUrl(people.lesson));
  await eventually("sam seeing the teacher large", () => sam.evaluate(() => document.querySelector("#main-tile video")?.videoWidth > 0));
  const extra = [];
  for (const [count, more] of [[2, 0], [5, 3], [30, 25]]) {
    if (more) {
      extra.push(await crowd(people, more));
      await eventually(`${count} people in the lesson`, () => teacher.evaluate((n) => window.classroom.participants.size >= n, count));
    }
    for (const size of SIZES) {
      for (const [who, page] of [["teacher", teacher], ["student", sam]]) {
        await page.setViewportSize({ width: size.width, height: size.height });
        if (size.width < 600) {
          await page.screenshot({ path: join(ARTIFACTS, `classroom-${who}-${size.name}-${count}-stage.png`) });
          // On a phone the side panel is a drawer: open it to reach the chat.
          await page.getByRole("button", { name: "People and chat" }).click();
          await page.getByRole("tab", { name: "Chat" }).click();
        }
        await checkLayout(page, who, size);
        await page.screenshot({ path: join(ARTIFACTS, `classroom-${who}-${size.name}-${count}.png`) });
        if (size.width < 600) await page.getByRole("button", { name: "Close the panel" }).click();
      }
    }
  }
  // The People tab lists everyone without the page growing.
  await teacher.setViewportSize({ width: 1366, height: 768 });
  await teacher.getByRole("tab", { name: "People" }).click();
  assert.equal(await teacher.locator("#people li").count(), 30);
  await checkLayout(teacher, "teacher with the people list", SIZES[0]).catch((error) => {
    // The chat input is on the other tab now: only the rest must hold.
    if (!/chat input/.test(error.message)) throw error;
  });
  assert.deepEqual(await accessibilityProblems(teacher), [], "teacher's classroom");
  for (const page of [teacher, sam, ...extra]) await page.close();
});

test("raised hands: sound, badge, queue buttons; a declined stage; self mute and leaving the stage; the chat lock", { timeout: 180_000 }, async () => {
  const people = await withLesson("Hands");
  const teacher = await teacherLive(people, { width: 1366, height: 768 });
  const sam = await pageAs(browser, server.base, people.sam, { width: 1366, height: 768 });
  const kim = await pageAs(browser, server.base, people.kim, { width: 1366, height: 768 });
  for (const page of [sam, kim]) {
    await page.goto(liveUrl(people.lesson));
    await eventually("joined", () => page.evaluate(() => window.classroom.me !== null));
  }
  const samId = await sam.evaluate(() => window.classroom.me);
  const kimId = await kim.evaluate(() => window.classroom.me);
  const chimes = () => teacher.evaluate(() => window.classroom.chimes);
  const badge = teacher.locator("#hands-badge");

  // Two hands: a sound each, the count on the Hands tab, a hand in each person's row.
  await sam.getByRole("button", { name: "Raise hand" }).click();
  await badge.getByText("1", { exact: true }).waitFor();
  await kim.getByRole("button", { name: "Raise hand" }).click();
  await badge.getByText("2", { exact: true }).waitFor();
  assert.equal(await chimes(), 2, "a sound for each raised hand");
  await teacher.getByRole("tab", { name: "People" }).click();
  for (const id of [samId, kimId]) {
    await teacher.locator(`#people li[data-participant="${id}"]`).getByRole("img", { name: "hand raised" }).waitFor();
  }
  // Muting is not offered for someone who sends no microphone.
  assert.equal(await teacher.getByRole("button", { name: "Mute Kim Student" }).count(), 0);
  assert.equal(await teacher.getByRole("button", { name: "Remove Kim Student" }).count(), 1);

  // The queue, first raised first: lower Kim's hand; Kim sees it lowered.
  await teacher.getByRole("tab", { name: "Hands" }).click();
  const queue = teacher.getByRole("list", { name: "Raised hands" });
  assert.deepEqual(await queue.locator("li .person-name").allTextContents(), ["1.  Sam Student", "2.  Kim Student"]);
  await teacher.screenshot({ path: join(ARTIFACTS, "classroom-teacher-hands.png") });
  await teacher.getByRole("button", { name: "Lower hand of Kim Student" }).click();
  await badge.getByText("1", { exact: true }).waitFor();
  await kim.getByRole("button", { name: "Raise hand" }).waitFor();
  // With the sound off, a hand raised makes none.
  await teacher.getByRole("button", { name: /Sound on raised hands/ }).click();
  assert.equal(await teacher.getByRole("button", { name: /Sound on raised hands/ }).getAttribute("aria-pressed"), "false");
  await kim.getByRole("button", { name: "Raise hand" }).click();
  await badge.getByText("2", { exact: true }).waitFor();
  assert.equal(await chimes(), 2, "no sound once muted");
  await kim.getByRole("button", { name: "Lower hand" }).click();
  await badge.getByText("1", { exact: true }).waitFor();

  // Sam is brought on stage and declines: shown as declined, not on stage.
  await teacher.getByRole("button", { name: "Bring Sam Student on stage" }).click();
  await badge.waitFor({ state: "hidden" });
  await sam.getByText("The teacher invited you on stage.").waitFor();
  await sam.getByRole("button", { name: "Not now" }).click();
  await teacher.getByRole("tab", { name: "People" }).click();
  const samRow = teacher.locator(`#people li[data-participant="${samId}"]`);
  await samRow.getByText(/declined the stage/).waitFor();
  assert.doesNotMatch(await samRow.locator(".person-flags").textContent(), /on stage/);
  await samRow.getByRole("button", { name: "Bring Sam Student on stage" }).waitFor();

  // Invited again, Sam goes on: mutes and unmutes the microphone, turns the camera off, leaves.
  await samRow.getByRole("button", { name: "Bring Sam Student on stage" }).click();
  // The device check: the camera's picture, the microphone's level moving (Chromium's fake
  // microphone beeps), a speaker to choose and a test sound.
  await eventually("the camera preview", () => sam.evaluate(() => document.getElementById("preview").videoWidth > 0));
  await eventually("the microphone level", async () => Number(await sam.getByRole("meter", { name: "Microphone level" }).getAttribute("aria-valuenow")) > 0);
  assert.ok(await sam.getByRole("combobox", { name: "Speaker" }).first().locator("option").count() >= 1);
  await sam.getByRole("button", { name: "Play test sound" }).click();
  await eventually("the test sound played", () => sam.evaluate(() => !document.getElementById("test-sound").disabled));
  await sam.getByRole("button", { name: "Turn on camera and microphone" }).click();
  await teacher.getByRole("button", { name: "Mute Sam Student" }).waitFor(); // Sam's microphone reaches the teacher
  const microphone = () => sam.evaluate(() => window.classroom.localStream.getAudioTracks()[0].enabled);
  await sam.getByRole("button", { name: "Mute my microphone" }).click();
  assert.equal(await microphone(), false);
  await sam.getByRole("button", { name: "Unmute my microphone" }).click();
  assert.equal(await microphone(), true);
  await sam.getByRole("button", { name: "Turn camera off" }).click();
  assert.equal(await sam.evaluate(() => window.classroom.localStream.getVideoTracks()[0].enabled), false);
  await sam.locator(".tile.camera-off").waitFor();
  await sam.getByRole("button", { name: "Turn camera on" }).click();

  // Gallery and speaker views; a pinned video takes the stage.
  await teacher.locator('#tiles figure[data-tile$=":camera"] figcaption', { hasText: "Sam Student" }).waitFor();
  await teacher.getByRole("button", { name: "Gallery view" }).click();
  await teacher.locator("#stage-area.gallery").waitFor();
  assert.equal(await teacher.locator("#tiles figure").count(), 2, "everyone in the gallery");
  await teacher.screenshot({ path: join(ARTIFACTS, "classroom-teacher-gallery.png") });
  await teacher.getByRole("button", { name: "Speaker view" }).click();
  await teacher.getByRole("button", { name: "Pin Sam Student" }).click();
  await teacher.locator("#main-tile figcaption", { hasText: "Sam Student" }).waitFor();
  await teacher.getByRole("button", { name: "Unpin Sam Student" }).click();
  await teacher.locator("#main-tile figcaption", { hasText: "Tess Teacher" }).waitFor();
  await sam.getByRole("button", { name: "Leave stage" }).click();
  await samRow.getByText(/left the stage/).waitFor();
  await eventually("sam off stage", () => sam.evaluate(() => !window.classroom.publishing && !window.classroom.grants.publish.includes("camera")));
  await sam.getByRole("button", { name: "Raise hand" }).waitFor();

  // The teacher mutes Kim's microphone... Kim has none: the chat lock instead.
  await teacher.getByRole("tab", { name: "Chat" }).click();
  await teacher.getByRole("button", { name: "Lock chat" }).click();
  await kim.getByText("The teacher has locked the chat: only teachers can write for now.").waitFor();
  assert.equal(await kim.getByRole("textbox", { name: "Message" }).isDisabled(), true);
  assert.equal(await teacher.getByRole("textbox", { name: "Message" }).isDisabled(), false, "teachers still write");
  await teacher.getByRole("button", { name: "Unlock chat" }).click();
  await kim.getByText("The teacher has locked the chat: only teachers can write for now.").waitFor({ state: "hidden" });
  assert.equal(await kim.getByRole("textbox", { name: "Message" }).isDisabled(), false);
  // The teacher leaves the stage too: camera and microphone off, the device check back.
  await teacher.getByRole("button", { name: "Leave stage" }).click();
  await teacher.getByRole("button", { name: "Turn on camera and microphone" }).waitFor();
  assert.equal(await teacher.evaluate(() => window.classroom.publishing), false);
  for (const page of [teacher, sam, kim]) await page.close();
});

test("an early student waits for the teacher, sees the teacher reconnect, then the end screen", { timeout: 180_000 }, async () => {
  const people = await withLesson("Waiting");
  const sam = await pageAs(browser, server.base, people.sam, { width: 390, height: 844 });
  await sam.goto(liveUrl(people.lesson));
  const note = sam.locator("#stage-note");
  await note.getByText("Waiting for the teacher.").waitFor();
  await note.getByText(/^The lesson starts at .+\.$/).waitFor();
  await sam.screenshot({ path: join(ARTIFACTS, "classroom-student-waiting.png") });
  // Every text the stage note shows from now on, however briefly.
  await sam.evaluate(() => {
    window.notes = [];
    const text = document.getElementById("stage-note-text");
    new MutationObserver(() => { if (!document.getElementById("stage-note").hidden) window.notes.push(text.textContent); })
      .observe(document.getElementById("stage-note"), { subtree: true, childList: true, characterData: true, attributes: true });
  });

  // The teacher opens the page: in the room, but the lesson starts only with Go live. Until
  // then the student is told the teacher is getting ready, and nothing is live.
  const teacher = await pageAs(browser, server.base, people.teacher, { width: 1366, height: 768 });
  await teacher.goto(liveUrl(people.lesson));
  await note.getByText("The teacher is getting ready.").waitFor();
  await teacher.getByRole("button", { name: "Go live", exact: true }).waitFor();
  const before = await server.request("GET", `/api/v1/lessons/${people.lesson.id}`, people.teacher.token);
  assert.equal(before.state, "scheduled", "opening the page does not start the lesson");
  await teacher.getByRole("button", { name: "Go live with camera and microphone" }).click();
  await eventually("the teacher's connection", () => teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"));
  await note.waitFor({ state: "hidden" });
  const after = await server.request("GET", `/api/v1/lessons/${people.lesson.id}`, people.teacher.token);
  assert.equal(after.state, "live");
  assert.equal(await teacher.getByRole("button", { name: "Go live", exact: true }).isVisible(), false);
  await sam.locator("#main-tile figcaption", { hasText: "Tess Teacher" }).waitFor();

  // The teacher reloads the page: the students see the teacher reconnecting, not a blank stage.
  await teacher.reload();
  await eventually("sam told the teacher reconnects", () => sam.evaluate(() => window.notes.includes("The teacher is reconnecting…")));
  // The lesson is live: the reloaded page does not ask to go live again.
  await teacher.getByRole("button", { name: "Turn on camera and microphone" }).click();
  assert.equal(await teacher.getByRole("button", { name: "Go live", exact: true }).isVisible(), false);
  await note.waitFor({ state: "hidden" });
  await sam.locator("#main-tile figcaption", { hasText: "Tess Teacher" }).waitFor();

  await teacher.getByRole("button", { name: "End lesson" }).click();
  await sam.getByRole("heading", { name: "The lesson has ended." }).waitFor();
  await sam.getByText(/^It lasted \d+ minutes? \(/).waitFor();
  await sam.getByText("This lesson was not recorded, so it has no replay.").waitFor();
  const back = sam.getByRole("link", { name: "Back to the course" });
  assert.equal(await back.getAttribute("href"), `/course.html?id=${people.course.id}`);
  assert.equal(await sam.getByRole("button", { name: "Raise hand" }).count(), 0, "no lesson controls left");
  await sam.screenshot({ path: join(ARTIFACTS, "classroom-student-ended.png") });
  assert.deepEqual(await accessibilityProblems(sam), [], "the end screen");
  await back.click();
  await sam.getByRole("heading", { name: "Biology 8a" }).waitFor();
  for (const page of [teacher, sam]) await page.close();
});

test("a page that cannot reach the server shows our offline page, and Try again brings it back", async () => {
  const people = await withLesson("Offline");
  const sam = await pageAs(browser, server.base, people.sam);
  await sam.goto(liveUrl(people.lesson));
  await sam.evaluate(() => navigator.serviceWorker.ready);
  await server.halt();
  try {
    await sam.reload();
    await sam.getByRole("heading", { name: "The classroom cannot be reached" }).waitFor();
    assert.deepEqual(await accessibilityProblems(sam), [], "the offline page");
  } finally {
    await server.start();
  }
  await sam.getByRole("button", { name: "Try again" }).click();
  await sam.getByRole("heading", { name: "Offline" }).waitFor();
  await sam.close();
});
