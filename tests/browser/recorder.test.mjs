// A recorded lesson, then its replay in a real Chromium: the course records by default, the
// teacher goes live with the fake camera (everyone sees the recording indicator), talks for a
// few seconds and ends the lesson; the replay is made by ffmpeg; a student opens the replay
// page, which plays the HLS natively in <video> (currentTime advances, frames are rendered)
// and shows the chapters, the chat and a poll's shown results as the replay reaches them, and
// the MP4 download; the course page lists the replay with its date, length and size.
// Then a lesson given from slides: the teacher shows a PDF's page and draws on it; in the
// replay's video (frames taken by ffmpeg from the MP4) the slide shows from its chapter on,
// the red stroke from when it was drawn, at the spot of the page where it was drawn, and no
// longer once the page is turned.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { school as makeSchool, startServer } from "./lib/server.mjs";
import { ARTIFACTS, accessibilityProblems, eventually, launch, pageAs } from "./lib/browser.mjs";
import { pdf } from "./lib/documents.mjs";

let server;
let browser;
/** The school of this server (its people's emails are fixed: one school per server). */
let theSchool;
const schoolOnce = async () => (theSchool ??= await makeSchool(server));

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a recorded lesson plays back on the replay page", async () => {
  const school = await schoolOnce();
  const { lesson, teacher, sam } = school;
  await server.request("PATCH", `/api/v1/courses/${school.course.id}`, teacher.token, { record_by_default: true });

  const live = await pageAs(browser, server.base, teacher);
  await live.goto(`${server.base}/live.html?lesson=${lesson.id}`);
  await live.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
  await live.getByText("● Recording").waitFor();
  await live.locator("#more > summary").click(); // the control bar's "More" menu
  await live.getByRole("button", { name: "Pause recording" }).waitFor();
  await live.locator("#more > summary").click();
  await new Promise((r) => setTimeout(r, 2500));
  await live.getByRole("textbox", { name: "Message" }).fill("Look at slide two");
  await live.getByRole("textbox", { name: "Message" }).press("Enter");
  // A poll, closed and its results shown to the class: the replay shows them at their time.
  await live.getByRole("tab", { name: "Stream" }).click();
  await live.getByLabel("Question").fill("Which organelle?");
  await live.getByLabel("Kind").selectOption("single_choice");
  await live.getByLabel("Options, one a line").fill("Nucleus\nRibosome");
  await live.getByRole("button", { name: "Ask the class" }).click();
  await live.getByRole("button", { name: "Close the poll" }).click();
  await live.getByRole("button", { name: "Show results to the class" }).click();
  await new Promise((r) => setTimeout(r, 1500));
  await live.getByRole("button", { name: "End lesson" }).click();
  await live.getByText("The lesson has ended.").first().waitFor();

  const replay = await eventually("the replay to be ready", async () => {
    const { items } = await server.request("GET", `/api/v1/lessons/${lesson.id}/replays`, teacher.token);
    if (items[0]?.state === "failed") throw new Error(`the replay failed: ${items[0].error}`);
    return items[0]?.state === "ready" ? items[0] : null;
  }, 120_000);
  assert.ok(replay.duration_ms > 3000, `a replay of ${replay.duration_ms} ms`);

  const page = await pageAs(browser, server.base, sam);
  // The course page lists it with when it was recorded, how long it is and its size.
  await page.goto(`${server.base}/course.html?id=${school.course.id}`);
  const facts = await page.locator(`#replays [data-replay="${replay.id}"] .replay-facts`).textContent({ timeout: 20_000 });
  assert.match(facts, /^recorded .*\d.* · \d{2}:\d{2} · [\d.]+ (KB|MB)$/, `the replay's facts: ${facts}`);

  await page.goto(`${server.base}/replay.html?lesson=${lesson.id}`);
  const video = page.locator("#player");
  await video.waitFor();
  // The chat follows the replay's time: nothing yet at its start.
  await page.locator("#replay-chat").getByText("No messages yet at this point.").waitFor();
  await page.evaluate(() => { const v = document.getElementById("player"); v.muted = true; return v.play(); });
  const played = await eventually("the replay to play", () => page.evaluate(() => {
    const v = document.getElementById("player");
    const frames = v.getVideoPlaybackQuality?.().totalVideoFrames ?? 0;
    return v.currentTime > 1.5 && v.videoWidth > 0 && frames > 0
      ? { currentTime: v.currentTime, width: v.videoWidth, height: v.videoHeight, frames }
      : null;
  }), 60_000);
  assert.equal(played.width * 9, played.height * 16, `a 16:9 picture: ${JSON.stringify(played)}`);
  await page.getByRole("button", { name: /00:00 Lesson/ }).waitFor();
  // The message shows once the replay reaches the time it was sent (2.5 s or more in).
  const shownAt = await eventually("the chat message to show in time", () => page.evaluate(() => {
    const text = document.getElementById("replay-chat").textContent;
    return text.includes("Look at slide two") ? document.getElementById("player").currentTime : null;
  }), 30_000);
  assert.ok(shownAt >= 2.0, `the message showed at ${shownAt} s, before it was sent`);
  // The poll and its results, once the replay reaches them (after the message).
  const polls = page.locator("#replay-polls");
  await polls.getByText("Which organelle?").waitFor({ timeout: 30_000 });
  await polls.getByText(/Results shown at/).waitFor({ timeout: 30_000 });
  assert.match(await polls.textContent(), /0 answered.*Nucleus.*0 \(0%\)/);
  const download = await page.getByRole("link", { name: "Download (MP4)" }).getAttribute("href");
  assert.match(download, /\/api\/v1\/replays\/\d+\/files\/[^/]+\/replay\.mp4$/);
  await page.screenshot({ path: join(ARTIFACTS, "replay-page.png") });
  assert.deepEqual(await accessibilityProblems(page), [], "no serious or critical axe violations");
});

/** The replay's picture at `seconds`: its size and RGB pixels. */
function frameAt(file, seconds) {
  const probe = spawnSync("ffprobe", ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0", file], { encoding: "utf8" });
  const [width, height] = probe.stdout.trim().split(",").map(Number);
  const out = spawnSync("ffmpeg", ["-hide_banner", "-nostdin", "-loglevel", "error", "-i", file, "-ss", seconds.toFixed(3),
    "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], { maxBuffer: 64 << 20 });
  assert.equal(out.stdout.length, width * height * 3, `a frame at ${seconds} s: ${out.stderr}`);
  return { width, height, data: out.stdout };
}

/** The pixels near `colour` (after H.264) in a frame, and their centre as fractions of it. */
function inkOf({ width, height, data }, [r, g, b]) {
  let count = 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < data.length; i += 3) {
    if (Math.abs(data[i] - r) < 50 && Math.abs(data[i + 1] - g) < 50 && Math.abs(data[i + 2] - b) < 50) {
      count++;
      sx += (i / 3) % width;
      sy += Math.floor(i / 3 / width);
    }
  }
  return { count, x: sx / count / width, y: sy / count / height };
}

test("the replay shows the slide and the stroke drawn on it at their times", async () => {
  const RED = [0xe0, 0x31, 0x31];
  const WHITE = [255, 255, 255];
  const school = await schoolOnce();
  const { teacher, sam } = school;
  await server.request("PATCH", `/api/v1/courses/${school.course.id}`, teacher.token, { record_by_default: true });
  const now = new Date();
  const lesson = await server.request("POST", `/api/v1/courses/${school.course.id}/lessons`, teacher.token, {
    title: "Leaves, drawn", starts_at: now.toISOString(), ends_at: new Date(now.getTime() + 3600_000).toISOString(),
  });

  const live = await pageAs(browser, server.base, teacher);
  await live.goto(`${server.base}/course.html?id=${school.course.id}`);
  await live.getByLabel("Document (PDF, PPTX, ODP or DOCX)").setInputFiles({ name: "Leaves.pdf", mimeType: "application/pdf", buffer: pdf(["Leaves", "Roots"]) });
  await live.getByRole("button", { name: "Upload" }).click();
  await live.getByText("2 pages").waitFor({ timeout: 30_000 });
  await live.goto(`${server.base}/live.html?lesson=${lesson.id}`);
  await live.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click({ timeout: 20_000 });
  await live.getByText("● Recording").waitFor();
  await live.getByRole("tab", { name: "Stream" }).click();
  await eventually("the picker lists the document", async () => (await live.locator("#slide-pick option").allTextContents()).some((t) => t.includes("Leaves")));
  await live.locator("#slide-pick").selectOption({ label: "Leaves (2 pages)" });
  await live.getByRole("button", { name: "Show to the class" }).click();
  await eventually("the canvas lies over the page", () => live.evaluate(() => {
    const image = document.getElementById("slide-image");
    return !!image?.complete && image.naturalWidth > 0 && !document.getElementById("board-canvas").hidden;
  }));
  const shownAt = Date.now();
  await new Promise((r) => setTimeout(r, 1500));
  // The pen, in red (the defaults), thick, across the upper half of the page.
  await live.getByLabel("Line width").selectOption("80");
  const box = await live.locator("#board-canvas").boundingBox();
  await live.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.3);
  await live.mouse.down();
  await live.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.35, { steps: 25 });
  await live.mouse.up();
  const drawnAt = Date.now();
  await new Promise((r) => setTimeout(r, 2000));
  await live.locator("#slide-next").click();
  await new Promise((r) => setTimeout(r, 1500));
  await live.getByRole("button", { name: "End lesson" }).click();
  await live.getByText("The lesson has ended.").first().waitFor();

  const replay = await eventually("the replay to be ready", async () => {
    const { items } = await server.request("GET", `/api/v1/lessons/${lesson.id}/replays`, teacher.token);
    if (items[0]?.state === "failed") throw new Error(`the replay failed: ${items[0].error}`);
    return items[0]?.state === "ready" ? items[0] : null;
  }, 120_000);
  // A chapter per page, titled by its first line.
  const leaves = replay.chapters.find((c) => c.title === "Leaves");
  const roots = replay.chapters.find((c) => c.title === "Roots");
  assert.ok(leaves && roots && roots.at_ms - leaves.at_ms > 3000, `chapters: ${JSON.stringify(replay.chapters)}`);

  const folder = mkdtempSync(join(tmpdir(), "classroom-replay-"));
  try {
    const mp4 = join(folder, "replay.mp4");
    const response = await fetch(new URL(replay.download_url, server.base));
    assert.equal(response.status, 200);
    writeFileSync(mp4, Buffer.from(await response.arrayBuffer()));
    const shown = leaves.at_ms / 1000;
    const drawn = shown + (drawnAt - shownAt) / 1000;
    // Before the stroke: the white page, no red.
    const before = frameAt(mp4, shown + 0.7);
    assert.ok(inkOf(before, WHITE).count > before.width * before.height / 4, "the white page fills the picture's middle");
    assert.equal(inkOf(before, RED).count, 0, "no stroke before it was drawn");
    // After: the stroke where it was drawn. The landscape page (792 x 612) fills the
    // picture's height, centred: its fractions map to the picture's like this.
    const after = frameAt(mp4, drawn + 0.8);
    const pageWidth = after.height * 792 / 612;
    const left = (after.width - pageWidth) / 2;
    const ink = inkOf(after, RED);
    const expected = { x: (left + pageWidth * 0.4) / after.width, y: 0.325 };
    console.log(`the stroke in the replay's frame: ${JSON.stringify(ink)}, expected at ${JSON.stringify(expected)}`);
    assert.ok(ink.count > 200, `the stroke is drawn: ${JSON.stringify(ink)}`);
    assert.ok(Math.abs(ink.x - expected.x) < 0.03 && Math.abs(ink.y - expected.y) < 0.03,
      `at the spot it was drawn: ${JSON.stringify(ink)}, expected ${JSON.stringify(expected)}`);
    const turned = frameAt(mp4, roots.at_ms / 1000 + 0.7);
    assert.equal(inkOf(turned, RED).count, 0, "page 2 has no stroke");
    assert.ok(inkOf(turned, WHITE).count > turned.width * turned.height / 4, "page 2 shows");
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
  // The replay page lists the slides' chapters.
  const page = await pageAs(browser, server.base, sam);
  await page.goto(`${server.base}/replay.html?lesson=${lesson.id}`);
  await page.getByRole("button", { name: /\d\d:\d\d Leaves$/ }).waitFor();
  await page.getByRole("button", { name: /\d\d:\d\d Roots$/ }).waitFor();
  await Promise.all([live, page].map((p) => p.close()));
});
