// Simulcast from the browser: the teacher's Chromium publishes the camera in three encodings
// (180p, 360p, 720p) and the SFU gives each student the one that fits the size of their tile:
// a student on a laptop-sized window decodes the 720p layer, a student on a phone-sized one a
// lower layer, from the same publication at the same time. The SRTP profile the server
// chose is AES-128-GCM.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { school, startServer } from "./lib/server.mjs";
import { eventually, launch, pageAs, videoFrom } from "./lib/browser.mjs";

let server;
let people;
let browser;

before(async () => {
  server = await startServer();
  people = await school(server);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});


test("the camera goes out in three layers and each student gets the one their tile needs", async () => {
  const live = `${server.base}/live.html?lesson=${people.lesson.id}`;
  const teacher = await pageAs(browser, server.base, people.teacher);
  await teacher.goto(live);
  await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
  await eventually("the teacher's connection", () =>
    teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"),
  );
  const teacherId = await teacher.evaluate(() => window.classroom.me);
  // Chromium lists the GCM profiles last; the server picks AES-128-GCM, the cheapest per
  // forwarded copy (vendor/README.md, dimpl).
  const ciphers = await teacher.evaluate(async () => {
    const stats = await window.classroom.media.pc.getStats();
    const found = [];
    stats.forEach((s) => {
      if (s.type === "transport" && s.srtpCipher) found.push(s.srtpCipher);
    });
    return found;
  });
  assert.deepEqual(ciphers, ["SRTP_AEAD_AES_128_GCM"]);
  const layers = await eventually("three encodings going out", async () => {
    const rids = await teacher.evaluate(async () => {
      const stats = await window.classroom.media.pc.getStats();
      const out = [];
      stats.forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video" && (s.framesEncoded ?? 0) > 0) out.push(`${s.rid}:${s.frameWidth}`);
      });
      return out.sort();
    });
    return rids.length === 3 ? rids : null;
  });
  assert.deepEqual(layers, ["f:1280", "h:640", "q:320"]);

  const laptop = await pageAs(browser, server.base, people.sam, { width: 1366, height: 768 });
  const phone = await pageAs(browser, server.base, people.kim, { width: 390, height: 844 });
  for (const page of [laptop, phone]) await page.goto(live);
  // The estimate climbs a layer at a time; the laptop ends on the top layer.
  await eventually("the laptop decoding 720p", async () => (await videoFrom(laptop, teacherId))?.width === 1280, 40_000);
  const onPhone = await eventually("the phone decoding", async () => {
    const now = await videoFrom(phone, teacherId);
    return now?.frames > 30 ? now : null;
  });
  assert.ok(onPhone.width < 1280, `the phone decodes a lower layer: ${JSON.stringify(onPhone)}`);
  // Both keep decoding.
  const [laptopBefore, phoneBefore] = [await videoFrom(laptop, teacherId), await videoFrom(phone, teacherId)];
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok((await videoFrom(laptop, teacherId)).frames > laptopBefore.frames, "the laptop keeps decoding");
  assert.ok((await videoFrom(phone, teacherId)).frames > phoneBefore.frames, "the phone keeps decoding");
  assert.ok((await videoFrom(phone, teacherId)).width < 1280, "the phone stays below the top layer");
});
