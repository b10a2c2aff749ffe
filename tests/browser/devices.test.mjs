// Devices: a teacher switches to another camera and microphone while live (the students keep
// decoding, on the same m-line: nothing is renegotiated), and a teacher on a machine without
// any camera is told so and still runs the room.

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

const live = () => `${server.base}/live.html?lesson=${people.lesson.id}`;
const teacherVideo = (rows, teacher) => rows.filter((r) => r.kind === "video" && r.participant === teacher);

/** What the teacher's page sends: the device id of each sending track. */
const sending = (page) => page.evaluate(() => window.classroom.media.pc.getTransceivers()
  .filter((t) => t.currentDirection === "sendonly" && t.sender.track)
  .map((t) => ({ mid: t.mid, kind: t.sender.track.kind, device: t.sender.track.getSettings().deviceId, live: t.sender.track.readyState === "live" })));

test("switching camera and microphone while live: students keep decoding, nothing renegotiated", async () => {
  // Chromium's fake cameras: fake_device_1 is a 16-bit depth camera that the video encoder
  // cannot take (it encodes no frame even as the first camera), so the test switches between
  // fake_device_0 and fake_device_2.
  const browser = await launch({ cameras: 3 });
  try {
    const teacher = await pageAs(browser, server.base, people.teacher);
    await teacher.goto(live());
    await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
    await eventually("the teacher's connection", () => teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"));
    const me = await teacher.evaluate(() => window.classroom.me);
    const sam = await pageAs(browser, server.base, people.sam);
    await sam.goto(live());
    const first = await eventually("sam decoding the teacher", async () => {
      const rows = teacherVideo(await inbound(sam), me);
      return rows.length === 1 && rows[0].framesDecoded > 10 ? rows[0] : null;
    });

    const before = await sending(teacher);
    const camera = before.find((t) => t.kind === "video");
    assert.ok(camera, "the teacher sends a camera");
    await teacher.locator("#more > summary").click(); // the control bar's menu ("More")
    await teacher.locator("summary", { hasText: "Camera and microphone" }).click(); // the disclosure in it
    const picker = teacher.getByRole("combobox", { name: "Camera", exact: true }).last();
    const choices = await picker.locator("option").evaluateAll((options) => options.map((o) => ({ id: o.value, label: o.textContent })));
    assert.equal(choices.length, 3, `three cameras to choose from: ${JSON.stringify(choices)}`);
    const other = choices.find((c) => c.id !== camera.device && c.label !== "fake_device_1").id;
    await picker.selectOption(other);

    const after = await eventually("the other camera on the same m-line", async () => {
      const now = await sending(teacher);
      const video = now.find((t) => t.kind === "video");
      return video?.device === other && video.live ? now : null;
    });
    assert.equal(after.find((t) => t.kind === "video").mid, camera.mid, "the same m-line: no new track for the students");
    assert.equal(after.length, before.length);

    // Sam goes on decoding on the slot they had.
    const decoded = first.framesDecoded;
    await eventually("sam decoding the new camera", async () => {
      const rows = teacherVideo(await inbound(sam), me);
      return rows.length === 1 && rows[0].mid === first.mid && rows[0].framesDecoded > decoded + 30;
    });
    // The microphone picker works the same way (one fake microphone may be all there is).
    const microphones = await teacher.getByRole("combobox", { name: "Microphone", exact: true }).last().locator("option").count();
    assert.ok(microphones >= 1);
  } finally {
    await browser.close();
  }
});

test("no camera on the machine: the teacher is told so and still runs the room", async () => {
  const browser = await launch({ cameras: 0 });
  try {
    const teacher = await pageAs(browser, server.base, people.teacher);
    await teacher.goto(live());
    await teacher.getByRole("alert").getByText(/No camera and microphone was found\. Connect one/).waitFor();
    await eventually("the teacher joined", () => teacher.evaluate(() => window.classroom.me !== null));
    assert.equal(await teacher.evaluate(() => window.classroom.publishing), false);
    await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
    await teacher.getByRole("alert").getByText(/No camera and microphone was found/).waitFor();
    assert.equal(await teacher.getByRole("button", { name: "End lesson" }).isVisible(), true, "the teacher still runs the room");
  } finally {
    await browser.close();
  }
});
