// The teacher's encoder in real browsers. The teacher's live page shows the server URL and
// makes the stream key, shown once (hidden until revealed); ffmpeg publishes an OBS-like stream with them (H.264
// without B-frames + AAC, pre-encoded and sent with `-c copy`); a student's page decodes the
// encoder's video, shown large, and receives its audio; the teacher's page says the encoder is
// live, and why a second encoder on the same key is refused. Then the same with B-frames (x264's and OBS's default): the server converts the video
// and the student decodes it at full frame rate, not at the 2 fps B-frames give over WebRTC.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { school, startServer } from "./lib/server.mjs";
import { ARTIFACTS, eventually, inbound, launch, pageAs } from "./lib/browser.mjs";

let server;
let browser;
let clips;

before(async () => {
  server = await startServer();
  browser = await launch();
  clips = mkdtempSync(join(tmpdir(), "classroom-clips-"));
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (clips) rmSync(clips, { recursive: true, force: true });
});

const encoded = new Map();

/** An OBS-like clip, 640x360 at 30 fps with a keyframe every second, AAC; encoded once. */
function clip(bframes) {
  if (!encoded.has(bframes)) encoded.set(bframes, encode(bframes));
  return encoded.get(bframes);
}

function encode(bframes) {
  const path = join(clips, `bf${bframes}.flv`);
  const result = spawnSync("ffmpeg", [
    "-hide_banner", "-loglevel", "error", "-y",
    "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
    "-t", "4", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p",
    "-bf", String(bframes), "-c:a", "aac", "-b:a", "128k", "-f", "flv", path,
  ]);
  if (result.status !== 0) throw new Error(`ffmpeg could not encode a clip: ${result.stderr}`);
  return path;
}

/** ffmpeg as the encoder: the clip in a loop, in real time, with `-c copy`. */
function push(path, url) {
  return spawn("ffmpeg", ["-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", path, "-c", "copy", "-f", "flv", url], { stdio: "ignore" });
}

/** SIGINT: ffmpeg ends the publish cleanly, as OBS's "Stop streaming" does. */
async function stopEncoder(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((ok) => child.on("exit", ok));
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

const fromEncoder = (rows, kind) => rows.filter((r) => r.kind === kind && r.source === "encoder");
const decoded = (rows) => fromEncoder(rows, "video").reduce((n, r) => n + r.framesDecoded, 0);
const audioPackets = (rows) => fromEncoder(rows, "audio").reduce((n, r) => n + r.packetsReceived, 0);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test("an encoder streams into the lesson; B-frames are converted", { timeout: 300_000 }, async () => {
  const people = await school(server);
  const lesson = people.lesson.id;
  const before = await server.request("GET", `/api/v1/lessons/${lesson}/stream-key`, people.teacher.token);
  assert.equal(before.server_url, server.rtmp);
  assert.equal(before.stream_key, null, "no key until the teacher makes one");

  // The teacher makes the key on the page; it is shown (on request) this once.
  const teacher = await pageAs(browser, server.base, people.teacher, { width: 1280, height: 800 });
  await teacher.goto(`${server.base}/live.html?lesson=${lesson}`);
  await teacher.getByRole("tab", { name: "Stream" }).click(); // the teachers' tab of the side panel
  await teacher.getByRole("heading", { name: "Stream from OBS or an encoder" }).waitFor();
  assert.equal(await teacher.locator("#encoder-url").textContent(), server.rtmp);
  await teacher.getByRole("button", { name: "Make a key" }).click();
  await teacher.getByRole("button", { name: "Show key" }).waitFor();
  const hidden = await teacher.locator("#encoder-key").textContent();
  assert.ok(!hidden.includes(`${lesson}-`), "the key is hidden until revealed");
  await teacher.getByRole("button", { name: "Show key" }).click();
  const key = { stream_key: await teacher.locator("#encoder-key").textContent() };
  assert.match(key.stream_key, new RegExp(`^${lesson}-[0-9a-f]{48}$`));
  await teacher.getByRole("button", { name: "Hide key" }).click();
  // Not shown again: the server keeps only its hash.
  const after = await server.request("GET", `/api/v1/lessons/${lesson}/stream-key`, people.teacher.token);
  assert.equal(after.stream_key, null);
  assert.ok(after.created_at, "the key's date is shown instead");

  const student = await pageAs(browser, server.base, people.sam, { width: 1024, height: 700 });
  await student.goto(`${server.base}/live.html?lesson=${lesson}`);
  await eventually("the student's connection", () => student.evaluate(() => window.classroom.media?.pc.connectionState === "connected"));

  // Without B-frames: passed through untouched.
  const plain = push(clip(0), `${server.rtmp}/${key.stream_key}`);
  try {
    const first = await eventually("the student decoding the encoder", async () => {
      const rows = await inbound(student);
      return decoded(rows) > 30 && audioPackets(rows) > 0 ? rows : null;
    }, 30_000);
    await sleep(1000);
    const later = await inbound(student);
    assert.ok(decoded(later) > decoded(first), "frames keep being decoded");
    assert.ok(audioPackets(later) > audioPackets(first), "audio keeps arriving");
    const large = await student.locator("#main-tile figure").getAttribute("data-tile");
    assert.match(large, /:encoder$/, "the encoder's video is the large one");
    await eventually("the teacher seeing the encoder live", async () =>
      /live/.test(await teacher.locator("#encoder-state").textContent()));
    // A second encoder on the key in use is refused; the teacher reads why.
    const second = push(clip(0), `${server.rtmp}/${key.stream_key}`);
    try {
      await eventually("the teacher reading the refusal", async () =>
        /already streaming/.test(await teacher.locator("#encoder-reason").textContent()));
      assert.ok(await teacher.locator("#encoder-reason").isVisible());
    } finally {
      // ffmpeg may not notice the refusal before its input ends.
      await stopEncoder(second);
    }
    await student.screenshot({ path: join(ARTIFACTS, "ingest-student.png") });
    await teacher.screenshot({ path: join(ARTIFACTS, "ingest-teacher.png") });
  } finally {
    await stopEncoder(plain);
  }
  await eventually("the teacher seeing the encoder stop", async () =>
    /No encoder/.test(await teacher.locator("#encoder-state").textContent()));

  // With B-frames: converted by the server; decoded at (nearly) the rate sent.
  const bframes = push(clip(2), `${server.rtmp}/${key.stream_key}`);
  try {
    // The m-line may be the one the first encoder used: wait until frames flow again.
    await eventually("the student decoding the converted stream", async () => {
      const before = decoded(await inbound(student));
      await sleep(1000);
      return decoded(await inbound(student)) - before > 10;
    }, 30_000);
    const start = decoded(await inbound(student));
    const seconds = 4;
    await sleep(seconds * 1000);
    const rate = (decoded(await inbound(student)) - start) / seconds;
    console.log(`the converted B-frame stream decoded at ${rate} frames per second`);
    // 30 fps are sent; B-frames passed through would decode at about 2.
    assert.ok(rate >= 15, `decoded ${rate} frames per second`);
  } finally {
    await stopEncoder(bframes);
  }
  await student.close();
  await teacher.close();
});
