// Failure paths in the browser: the camera denied (no fake-UI flag: headless Chromium refuses
// the permission), the server stopped mid-lesson and started again on the same port and data
// directory (the pages show "Reconnecting…", then resume and media flows again), and a
// removed student who stays out.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { school, startServer } from "./lib/server.mjs";
import { eventually, inbound, launch, pageAs } from "./lib/browser.mjs";

let server;
let people;

before(async () => {
  server = await startServer();
  people = await school(server);
});

after(async () => {
  await server?.stop();
});

const decodedFrom = (rows, participant) =>
  rows.filter((r) => r.kind === "video" && r.participant === participant).reduce((n, r) => n + r.framesDecoded, 0);
const audioFrom = (rows, participant) =>
  rows.filter((r) => r.kind === "audio" && r.participant === participant).reduce((n, r) => n + r.packetsReceived, 0);
const live = () => `${server.base}/live.html?lesson=${people.lesson.id}`;

test("camera denied: the teacher is told how to allow it", async () => {
  const browser = await launch({ fakeUi: false });
  try {
    const teacher = await pageAs(browser, server.base, people.teacher);
    await teacher.goto(live());
    const denied = teacher.getByRole("alert").getByText(/Access to the camera and microphone was denied/);
    await denied.waitFor();
    // Trying again asks again, and says the same.
    await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
    await denied.waitFor();
    assert.equal(await teacher.evaluate(() => window.classroom.publishing), false);
    // Joined all the same: the teacher still runs the room without a camera.
    await eventually("the teacher joined", () => teacher.evaluate(() => window.classroom.me !== null));
    await teacher.close();
  } finally {
    await browser.close();
  }
});

test("server stopped mid-lesson, then back: the pages reconnect and media flows again", async () => {
  const browser = await launch();
  try {
    const teacher = await pageAs(browser, server.base, people.teacher);
    await teacher.goto(live());
    await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
    await eventually("the teacher's connection", () => teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"));
    const sam = await pageAs(browser, server.base, people.sam, { width: 390, height: 844 });
    const kim = await pageAs(browser, server.base, people.kim);
    await sam.goto(live());
    await kim.goto(live());
    const before = await teacher.evaluate(() => window.classroom.me);
    await eventually("sam decoding the teacher", async () => decodedFrom(await inbound(sam), before) > 10);

    // The WebSocket drops (the join token has expired meanwhile): the page gets a fresh token
    // and takes its old place back within the grace period: same participant, no duplicate.
    const samBefore = await sam.evaluate(() => window.classroom.me);
    const oldToken = await sam.evaluate(() => {
      const old = window.classroom.join.token;
      window.classroom.join.expires_at = new Date(Date.now() - 1000).toISOString();
      window.classroom.signaling.socket.close();
      return old;
    });
    // The close event is asynchronous: wait for the new token before judging the reconnect.
    await eventually("a fresh join token", () => sam.evaluate((old) => Boolean(window.classroom.join?.token) && window.classroom.join.token !== old, oldToken));
    await eventually("sam back in place", () => sam.evaluate(() => !window.classroom.reconnecting && window.classroom.media?.pc.connectionState === "connected"));
    assert.equal(await sam.evaluate(() => window.classroom.me), samBefore, "the same participant");
    await eventually("sam decoding the teacher after the drop", async () => decodedFrom(await inbound(sam), before) > 10);
    assert.equal(await teacher.locator("#people li").count(), 3, "no duplicate participant");

    // What the room holds outlives the server (kept in its database): a raised hand, the
    // chat lock. SIGTERM drains: the pages are sent to join again, and keep trying.
    await kim.getByRole("button", { name: "Raise hand" }).click();
    await teacher.getByRole("button", { name: "Lock chat" }).click();
    await kim.getByText("The teacher has locked the chat: only teachers can write for now.").waitFor();
    await server.halt();
    for (const page of [teacher, sam]) {
      await page.getByRole("alert").getByText(/^Reconnecting…/).waitFor();
    }
    assert.equal(await sam.locator("#connection").textContent(), "reconnecting…");
    await new Promise((r) => setTimeout(r, 1500)); // a few failed attempts while it is down
    await sam.getByRole("alert").getByText(/The server cannot be reached/).waitFor();

    await server.start();
    await eventually("the teacher back", () => teacher.evaluate(() => !window.classroom.reconnecting && window.classroom.media?.pc.connectionState === "connected"), 30_000);
    const after = await teacher.evaluate(() => window.classroom.me);
    const rows = await eventually("sam decoding the teacher again", async () => {
      const now = await inbound(sam);
      return decodedFrom(now, after) > 10 && audioFrom(now, after) > 0 ? now : null;
    }, 30_000);
    assert.ok(rows.length > 0);
    assert.equal(await sam.getByRole("alert").isVisible(), false, "the banner is gone");
    assert.equal(await teacher.evaluate(() => window.classroom.publishing), true, "the teacher publishes again");

    // A removed student stays out: no reconnect.
    await eventually("kim back", () => kim.evaluate(() => !window.classroom.reconnecting && window.classroom.me !== null), 30_000);
    // The restarted room gave Kim her raised hand back, and the chat is still locked.
    await kim.getByRole("button", { name: "Lower hand" }).waitFor();
    await kim.getByText("The teacher has locked the chat: only teachers can write for now.").waitFor();
    await teacher.getByRole("button", { name: "Unlock chat" }).waitFor();
    await teacher.getByRole("tab", { name: "People" }).click();
    await teacher.getByRole("button", { name: "Remove Kim Student" }).click();
    await kim.getByText("You were removed from this lesson.").waitFor();
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await kim.evaluate(() => window.classroom.over), "removed");
    assert.equal(await kim.getByText(/^Reconnecting/).count(), 0);
    // Reloading does not help her (the removal holds for the lesson)...
    await kim.reload();
    await kim.getByText("You were removed from this lesson.").waitFor();
    // ...until the teacher lets her back in from the participant list's "Removed" section.
    await teacher.getByRole("button", { name: "Let back in: Kim Student" }).click();
    await teacher.getByText("Kim Student can join the lesson again.").waitFor();
    assert.equal(await teacher.getByRole("button", { name: "Let back in: Kim Student" }).count(), 0);
    await kim.reload();
    await eventually("kim in again", () => kim.evaluate(() => !window.classroom.over && !window.classroom.reconnecting && window.classroom.me !== null), 30_000);
  } finally {
    await browser.close();
  }
});
