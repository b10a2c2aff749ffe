// Debian's Chromium, headless, with fake camera and microphone.

import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ARTIFACTS = resolve(import.meta.dirname, "../../artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

const FLAGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
  "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows", "--autoplay-policy=no-user-gesture-required",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];

/** Launches Chromium; `fakeUi: false` leaves camera permission prompts to the test. */
export async function launch({ fakeUi = true } = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), "classroom-chromium-"));
  return chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [...FLAGS, ...(fakeUi ? ["--use-fake-ui-for-media-stream"] : [])],
  });
}

/** A page signed in as `person` (their session put where the sign-in page keeps it). */
export async function pageAs(context, base, person, viewport) {
  const page = await context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  await page.addInitScript((session) => {
    localStorage.setItem("classroom.session", JSON.stringify(session));
  }, { token: person.token, user: person.user });
  page.on("pageerror", (error) => console.error(`[${person.name}] page error:`, error.message));
  await page.goto(base + "/");
  return page;
}

/** Inbound RTP of the page's peer connection, keyed by mid, with who sends it. */
export async function inbound(page) {
  return page.evaluate(async () => {
    const media = window.classroom?.media;
    if (!media) return [];
    const stats = await media.pc.getStats();
    const rows = [];
    stats.forEach((s) => {
      if (s.type === "inbound-rtp") {
        const owner = media.ownerByMid.get(s.mid);
        rows.push({
          mid: s.mid,
          kind: s.kind,
          participant: owner?.participant ?? null,
          framesDecoded: s.framesDecoded ?? 0,
          packetsReceived: s.packetsReceived ?? 0,
          packetsLost: s.packetsLost ?? 0,
        });
      }
    });
    return rows;
  });
}

/** Polls `check` until it returns a truthy value, or fails after `ms`. */
export async function eventually(what, check, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}
