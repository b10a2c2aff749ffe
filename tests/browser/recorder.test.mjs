// A recorded lesson, then its replay in a real Chromium: the course records by default, the
// teacher goes live with the fake camera (everyone sees the recording indicator), talks for a
// few seconds and ends the lesson; the replay is made by ffmpeg; a student opens the replay
// page, which plays the HLS natively in <video> (currentTime advances, frames are rendered)
// and shows the chapters, the chat and a poll's shown results as the replay reaches them, and
// the MP4 download; the course page lists the replay with its date, length and size.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";

import { school as makeSchool, startServer } from "./lib/server.mjs";
import { ARTIFACTS, accessibilityProblems, eventually, launch, pageAs } from "./lib/browser.mjs";

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

test("a recorded lesson plays back on the replay page", async () => {
  const school = await makeSchool(server);
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
