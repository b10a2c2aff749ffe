// A live lesson in real browsers: the teacher goes live with the fake camera, two students
// decode the teacher's video and receive audio; a student is brought on stage and the other
// decodes them; taken off stage, their video stops. Screenshots are kept in tests/artifacts.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";

import { startServer, school } from "./lib/server.mjs";
import { ARTIFACTS, eventually, inbound, launch, pageAs } from "./lib/browser.mjs";

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

const decodedFrom = (rows, participant) =>
  rows.filter((r) => r.kind === "video" && r.participant === participant).reduce((n, r) => n + r.framesDecoded, 0);
const audioFrom = (rows, participant) =>
  rows.filter((r) => r.kind === "audio" && r.participant === participant).reduce((n, r) => n + r.packetsReceived, 0);
const participantOf = (page) => page.evaluate(() => window.classroom.me);

test("teacher live, students receive, stage in and out", async () => {
  const s = await school(server);
  const live = `${server.base}/live.html?lesson=${s.lesson.id}`;

  const teacher = await pageAs(browser, server.base, s.teacher, { width: 1280, height: 800 });
  await teacher.goto(live);
  await teacher.getByRole("button", { name: "Go live with camera and microphone" }).click();
  await eventually("the teacher's connection", () => teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"));
  const teacherId = await participantOf(teacher);

  const sam = await pageAs(browser, server.base, s.sam, { width: 390, height: 844 });
  const kim = await pageAs(browser, server.base, s.kim);
  await sam.goto(live);
  await kim.goto(live);

  for (const [name, page] of [["sam", sam], ["kim", kim]]) {
    const first = await eventually(`${name} decoding the teacher`, async () => {
      const rows = await inbound(page);
      return decodedFrom(rows, teacherId) > 10 && audioFrom(rows, teacherId) > 0 ? rows : null;
    });
    await new Promise((r) => setTimeout(r, 1000));
    const later = await inbound(page);
    assert.ok(audioFrom(later, teacherId) > audioFrom(first, teacherId), `${name}: audio packets keep arriving`);
    assert.ok(decodedFrom(later, teacherId) > decodedFrom(first, teacherId), `${name}: frames keep being decoded`);
  }

  // Sam raises a hand; the teacher sees it and brings Sam on stage.
  await sam.getByRole("button", { name: "Raise hand" }).click();
  await teacher.getByRole("list", { name: "Raised hands" }).getByText("Sam Student").waitFor();
  await teacher.getByRole("button", { name: "Bring Sam Student on stage" }).click();
  await sam.getByRole("button", { name: "Turn on camera and microphone" }).click();
  const samId = await participantOf(sam);
  await eventually("kim decoding sam", async () => decodedFrom(await inbound(kim), samId) > 10);
  await eventually("the teacher decoding sam", async () => decodedFrom(await inbound(teacher), samId) > 10);

  await sam.screenshot({ path: join(ARTIFACTS, "student-classroom-phone.png"), fullPage: true });
  await teacher.screenshot({ path: join(ARTIFACTS, "teacher-classroom-desktop.png"), fullPage: true });

  // Off stage: the server stops forwarding Sam's video.
  await teacher.getByRole("button", { name: "Take Sam Student off stage" }).click();
  await eventually("sam's grants revoked", () => sam.evaluate(() => !window.classroom.grants.publish.includes("camera")));
  await new Promise((r) => setTimeout(r, 700));
  const stopped = decodedFrom(await inbound(kim), samId);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(decodedFrom(await inbound(kim), samId), stopped, "no more frames of sam after leaving the stage");
  assert.ok(decodedFrom(await inbound(kim), teacherId) > 0, "the teacher's video still plays");

  // Chat both ways.
  await kim.getByLabel("Message").fill("What is a ribosome?");
  await kim.getByRole("button", { name: "Send" }).click();
  await teacher.getByText("Kim Student: What is a ribosome?").waitFor();
  await teacher.getByLabel("Message").fill("It makes proteins.");
  await teacher.getByRole("button", { name: "Send" }).click();
  await kim.getByText("Tess Teacher: It makes proteins.").waitFor();

  // The teacher ends the lesson; both students see it.
  await teacher.getByRole("button", { name: "End lesson" }).click();
  await sam.getByText("The lesson has ended.").waitFor();
  await kim.getByText("The lesson has ended.").waitFor();
});
