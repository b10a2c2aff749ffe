// Who is speaking, in real browsers: the teacher's Chromium takes a recording of speech
// (espeak-ng) as its fake microphone, goes live, and the student's page lights the teacher's
// tile from the SFU's `speakers` messages (the audio-level header extension of Chromium's own
// Opus packets). When the teacher's microphone goes silent, the light goes out.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { school, startServer } from "./lib/server.mjs";
import { eventually, launch, pageAs } from "./lib/browser.mjs";

const SPEECH =
  "Good morning, everyone. Today we look at cells, the smallest units of life. " +
  "Every plant and every animal is made of them, and each one keeps itself alive. " +
  "Let us start with the membrane, the wall that decides what may come in.";

let server;
let people;
let speaking;
let listening;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "classroom-speech-"));
  const wav = join(dir, "speech.wav");
  const made = spawnSync("espeak-ng", ["-s", "150", "-w", wav, SPEECH]);
  assert.equal(made.status, 0, String(made.stderr));
  server = await startServer();
  people = await school(server);
  // Chromium loops the file as its microphone.
  speaking = await launch({ args: [`--use-file-for-fake-audio-capture=${wav}`] });
  listening = await launch();
});

after(async () => {
  await speaking?.close();
  await listening?.close();
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The captions of the tiles lit as speaking on `page`. */
const litTiles = (page) =>
  page.evaluate(() => [...document.querySelectorAll(".tile.speaking figcaption")].map((c) => c.textContent));

test("the teacher's tile lights while they speak and goes out when they fall silent", async () => {
  const live = `${server.base}/live.html?lesson=${people.lesson.id}`;
  const teacher = await pageAs(speaking, server.base, people.teacher);
  await teacher.goto(live);
  await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
  await eventually("the teacher's connection", () =>
    teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"),
  );

  const sam = await pageAs(listening, server.base, people.sam);
  await sam.goto(live);
  await eventually("the teacher's tile lit on the student's page", async () => {
    const lit = await litTiles(sam);
    return lit.includes(people.teacher.name) ? lit : null;
  });

  // Silence: the microphone track sends silent frames from now on.
  await teacher.evaluate(() => {
    for (const track of window.classroom.media.localStream.getAudioTracks()) track.enabled = false;
  });
  await eventually("the light going out", async () => !(await litTiles(sam)).includes(people.teacher.name), 10_000);
  await teacher.close();
  await sam.close();
});
