// A whole lesson through the UI in real browsers: the admin creates a course, a teacher and
// two students and enrolls them on the admin page; the teacher schedules a lesson and goes
// live with the fake camera (after the preview); both students join from their course page
// and decode the teacher's video and receive audio; a student raises a hand, is brought on stage
// and the other decodes them; off stage, their video stops; the teacher shares a screen and
// the students decode it (large); chat both ways; the teacher ends the lesson and both
// students see it ended. The teacher adds a restream destination on the way. Screenshots (student on a phone, teacher on a desktop) are kept in
// tests/artifacts.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";

import { ADMIN_EMAIL, PASSWORD, startServer } from "./lib/server.mjs";
import { ARTIFACTS, accessibilityProblems, eventually, inbound, launch, personPage, signIn } from "./lib/browser.mjs";
import { adminCreatesSchool, scheduleLesson } from "./lib/ui.mjs";

let server;
let browser;

before(async () => {
  // The restream destination below is on loopback: allowed as an operator would allow the
  // school's own media server (by default only public addresses are).
  server = await startServer({ env: { CLASSROOM_RESTREAM__ALLOWED_NETWORKS: '["127.0.0.0/8"]' } });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const decodedFrom = (rows, participant, source = "camera") =>
  rows.filter((r) => r.kind === "video" && r.participant === participant && r.source === source).reduce((n, r) => n + r.framesDecoded, 0);
const audioFrom = (rows, participant) =>
  rows.filter((r) => r.kind === "audio" && r.participant === participant).reduce((n, r) => n + r.packetsReceived, 0);
const participantOf = (page) => page.evaluate(() => window.classroom.me);

/** A person signs in on the home page and opens the course. */
async function signedInOnCourse(viewport, email, name) {
  const page = await personPage(browser, viewport, name);
  await page.goto(server.base + "/");
  await signIn(page, email, PASSWORD);
  await page.getByRole("link", { name: "Biology 8a" }).click();
  await page.getByRole("heading", { name: "Biology 8a" }).waitFor();
  return page;
}

test("a whole lesson, driven through the pages", async () => {
  const admin = await personPage(browser, { width: 1280, height: 900 }, "admin");
  await admin.goto(server.base + "/");
  await signIn(admin, ADMIN_EMAIL, PASSWORD);
  await admin.getByRole("heading", { name: "My courses" }).waitFor();
  const school = await adminCreatesSchool(admin, server.base);
  await admin.close();

  const teacher = await signedInOnCourse({ width: 1280, height: 800 }, school.teacher.email, "teacher");
  const lesson = await scheduleLesson(teacher, "Cells, live");
  await teacher.getByRole("link", { name: "Go live: Cells, live" }).click();
  await teacher.getByLabel("Camera preview").waitFor();
  await eventually("the camera preview", () => teacher.evaluate(() => document.getElementById("preview").videoWidth > 0));
  assert.ok((await teacher.getByLabel("Camera", { exact: true }).locator("option").count()) > 0, "cameras are listed");
  await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
  await eventually("the teacher's connection", () => teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"));
  const teacherId = await participantOf(teacher);

  const sam = await signedInOnCourse({ width: 390, height: 844 }, school.sam.email, "sam");
  const kim = await signedInOnCourse({ width: 1024, height: 700 }, school.kim.email, "kim");
  for (const page of [sam, kim]) await page.getByRole("link", { name: "Join: Cells, live" }).click();
  assert.match(sam.url(), new RegExp(`/live\\.html\\?lesson=${lesson}$`));

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
  // The teacher's video is the large one for students.
  assert.equal(await sam.locator("#main-tile figcaption").textContent(), "Tess Teacher");

  // Sam raises a hand; the teacher sees it and brings Sam on stage.
  await sam.getByRole("button", { name: "Raise hand" }).click();
  await teacher.getByRole("tab", { name: "Hands" }).click();
  await teacher.getByRole("list", { name: "Raised hands" }).getByText("Sam Student").waitFor();
  await teacher.getByRole("button", { name: "Bring Sam Student on stage" }).click();
  await sam.getByText("The teacher invited you on stage.").waitFor();
  await sam.getByRole("button", { name: "Turn on camera and microphone" }).click();
  const samId = await participantOf(sam);
  await eventually("kim decoding sam", async () => decodedFrom(await inbound(kim), samId) > 10);
  await eventually("the teacher decoding sam", async () => decodedFrom(await inbound(teacher), samId) > 10);

  await sam.screenshot({ path: join(ARTIFACTS, "student-classroom-phone.png"), fullPage: true });
  await teacher.screenshot({ path: join(ARTIFACTS, "teacher-classroom-desktop.png"), fullPage: true });

  // Off stage: the server stops forwarding Sam's video.
  await teacher.getByRole("tab", { name: "People" }).click();
  await teacher.getByRole("button", { name: "Take Sam Student off stage" }).click();
  await eventually("sam's grants revoked", () => sam.evaluate(() => !window.classroom.grants.publish.includes("camera")));
  await new Promise((r) => setTimeout(r, 700));
  const stopped = decodedFrom(await inbound(kim), samId);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(decodedFrom(await inbound(kim), samId), stopped, "no more frames of sam after leaving the stage");
  assert.ok(decodedFrom(await inbound(kim), teacherId) > 0, "the teacher's video still plays");

  // A screen share (sent with source "screen") takes the large tile while it lasts.
  await teacher.getByRole("button", { name: "Share screen" }).click();
  await eventually("kim decoding the teacher's screen", async () => decodedFrom(await inbound(kim), teacherId, "screen") > 10);
  await sam.locator("#main-tile figcaption", { hasText: "Tess Teacher's screen" }).waitFor();
  assert.ok(decodedFrom(await inbound(sam), teacherId, "camera") > 0, "the teacher's camera plays beside it");
  // (The SFU does not yet end a publication whose m-line turns inactive, so viewers keep the
  // last frame until it does; only the sharer's side is checked here.)
  await teacher.getByRole("button", { name: "Stop sharing screen" }).click();
  await teacher.getByRole("button", { name: "Share screen" }).waitFor();

  // Chat both ways (on the phone, in the side panel's drawer).
  await teacher.getByRole("tab", { name: "Chat" }).click();
  await sam.getByRole("button", { name: "People and chat" }).click();
  await kim.getByLabel("Message", { exact: true }).fill("What is a ribosome?");
  await kim.getByRole("button", { name: "Send" }).click();
  await teacher.getByText("Kim Student: What is a ribosome?").waitFor();
  await teacher.getByLabel("Message", { exact: true }).fill("It makes proteins.");
  await teacher.getByRole("button", { name: "Send" }).click();
  await kim.getByText("Tess Teacher: It makes proteins.").waitFor();
  await sam.getByText("Tess Teacher: It makes proteins.").waitFor();

  // The teacher's restream panel: a destination nobody listens at is retried, with the
  // reason (that it could not connect, never whether the port refused or stayed silent); the
  // key only ever comes back masked. Students have no such panel.
  await teacher.getByRole("tab", { name: "Stream" }).click();
  await teacher.getByLabel("Server URL").fill("rtmp://127.0.0.1:9/live");
  await teacher.getByLabel("Stream key").fill("browser-test-key-1234");
  await teacher.getByRole("button", { name: "Add destination" }).click();
  const destinations = teacher.getByRole("list", { name: "Restream destinations" });
  await destinations.getByText("rtmp://127.0.0.1:9/live · key ****1234").waitFor();
  await destinations.getByText(/retrying.*could not connect to 127\.0\.0\.1:9$/).waitFor({ timeout: 20000 });
  assert.ok(await sam.locator("#restream").isHidden(), "students have no restream panel");
  await teacher.locator("#restream").screenshot({ path: join(ARTIFACTS, "teacher-restream-panel.png") });

  // No serious or critical accessibility problems in the classroom, on either side.
  assert.deepEqual(await accessibilityProblems(teacher), [], "teacher's classroom");
  assert.deepEqual(await accessibilityProblems(sam), [], "student's classroom on a phone");

  // The teacher ends the lesson; both students see it.
  await teacher.getByRole("button", { name: "End lesson" }).click();
  await sam.getByText("The lesson has ended.").waitFor();
  await kim.getByText("The lesson has ended.").waitFor();
  const ended = await server.request("GET", `/api/v1/lessons/${lesson}`, (await server.login(school.sam.email)).token);
  assert.equal(ended.state, "ended");
});
