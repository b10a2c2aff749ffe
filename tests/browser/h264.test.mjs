// H.264 where the teacher's browser lacks VP8 encoding: the web client publishes the camera in
// H.264 simulcast (constrained baseline 42e01f, packetization mode 1) and students decode it.
// The teacher's Chromium is made to look like such a browser by an init script that hides VP8
// from `RTCRtpSender.getCapabilities` (Debian's Chromium encodes H.264 with OpenH264, so the
// fallback is real: the SFU forwards H.264 layers, not VP8). A student's layer still switches:
// up to the 720p layer in a laptop window as the estimate grows, down to a lower one when the
// same window shrinks to a phone's. (Climbing back up after a while on a lower layer waits for
// the bandwidth estimate to grow again, whatever the codec; `capped.test.mjs` covers it.)

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { videoCodecPreferences } from "../../web-client/js/media.js";
import { school, startServer } from "./lib/server.mjs";
import { eventually, launch, pageAs } from "./lib/browser.mjs";

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

const codec = (mimeType, sdpFmtpLine) => ({ mimeType, clockRate: 90000, ...(sdpFmtpLine ? { sdpFmtpLine } : {}) });
const H264 = (mode, profile) => codec("video/H264", `level-asymmetry-allowed=1;packetization-mode=${mode};profile-level-id=${profile}`);

test("the client keeps the browser's order where VP8 encodes and picks constrained baseline H.264 where it does not", () => {
  const rtx = codec("video/rtx");
  assert.equal(videoCodecPreferences([codec("video/VP8"), rtx, H264(1, "42e01f")]), null);
  assert.deepEqual(
    videoCodecPreferences([rtx, H264(1, "42001f"), H264(0, "42e01f"), H264(1, "42e01f"), H264(1, "4d001f"), codec("video/AV1")]),
    [H264(1, "42e01f"), rtx],
  );
  // No constrained baseline: another H.264 profile in mode 1 rather than none.
  assert.deepEqual(videoCodecPreferences([H264(0, "42001f"), H264(1, "4d001f")]), [H264(1, "4d001f")]);
  // Neither VP8 nor H.264 in mode 1: the browser decides.
  assert.equal(videoCodecPreferences([codec("video/VP9"), H264(0, "42e01f")]), null);
});

/** The video `participant` sends as `page` decodes it: `{width, frames, mimeType}`, or null. */
function decoded(page, participant) {
  return page.evaluate(async (sender) => {
    const media = window.classroom?.media;
    if (!media) return null;
    const stats = await media.pc.getStats();
    let found = null;
    stats.forEach((s) => {
      if (s.type !== "inbound-rtp" || s.kind !== "video") return;
      if (media.ownerByMid.get(s.mid)?.participant !== sender) return;
      found = { width: s.frameWidth ?? 0, frames: s.framesDecoded ?? 0, mimeType: stats.get(s.codecId)?.mimeType ?? null };
    });
    return found;
  }, participant);
}

async function keepsDecoding(page, participant, what) {
  const before = await decoded(page, participant);
  await new Promise((r) => setTimeout(r, 1000));
  const after = await decoded(page, participant);
  assert.ok(after.frames > before.frames, `${what} keeps decoding: ${JSON.stringify([before, after])}`);
  return after;
}

test("a teacher without VP8 publishes H.264 simulcast and a student decodes it, switching layers up and down", async () => {
  const live = `${server.base}/live.html?lesson=${people.lesson.id}`;
  const teacher = await pageAs(browser, server.base, people.teacher);
  await teacher.addInitScript(() => {
    const original = RTCRtpSender.getCapabilities.bind(RTCRtpSender);
    RTCRtpSender.getCapabilities = (kind) => {
      const capabilities = original(kind);
      if (capabilities) capabilities.codecs = capabilities.codecs.filter((c) => c.mimeType.toLowerCase() !== "video/vp8");
      return capabilities;
    };
  });
  await teacher.goto(live);
  await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
  await eventually("the teacher's connection", () =>
    teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"),
  );
  const teacherId = await teacher.evaluate(() => window.classroom.me);
  const layers = await eventually("three H.264 encodings going out", async () => {
    const out = await teacher.evaluate(async () => {
      const stats = await window.classroom.media.pc.getStats();
      const rows = [];
      stats.forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "video" && (s.framesEncoded ?? 0) > 0) {
          const codec = stats.get(s.codecId);
          rows.push(`${s.rid}:${s.frameWidth}:${codec?.mimeType}:${codec?.sdpFmtpLine}`);
        }
      });
      return rows.sort();
    });
    return out.length === 3 ? out : null;
  });
  for (const [layer, width] of [["f", 1280], ["h", 640], ["q", 320]]) {
    const row = layers.find((l) => l.startsWith(`${layer}:`));
    assert.match(row ?? "", new RegExp(`^${layer}:${width}:video/H264:.*packetization-mode=1`), JSON.stringify(layers));
    assert.match(row, /profile-level-id=42e01f/);
  }

  const student = await pageAs(browser, server.base, people.sam, { width: 1366, height: 768 });
  await student.goto(live);
  // A subscriber starts on the lowest layer and climbs as its estimate grows: reaching 720p
  // is a switch up (or two) on H.264 keyframes.
  const top = await eventually("the student decoding 720p", async () => {
    const now = await decoded(student, teacherId);
    return now?.width === 1280 && now.frames > 0 ? now : null;
  }, 40_000);
  assert.equal(top.mimeType, "video/H264");
  await keepsDecoding(student, teacherId, "the student on the top layer");

  // A phone-sized window: the tile shrinks, the student is switched to a lower layer.
  await student.setViewportSize({ width: 390, height: 844 });
  await eventually("a lower layer on the small tile", async () => {
    const now = await decoded(student, teacherId);
    return now && now.width < 1280 && now.width > 0;
  }, 20_000);
  const low = await keepsDecoding(student, teacherId, "the student on a lower layer");
  assert.ok(low.width < 1280 && low.mimeType === "video/H264", JSON.stringify(low));
});
