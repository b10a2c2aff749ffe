// Debian's Chromium, headless, with fake camera and microphone.

import { chromium } from "playwright-core";
import { mkdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createRequire } from "node:module";

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

export const ARTIFACTS = resolve(import.meta.dirname, "../../artifacts");
mkdirSync(ARTIFACTS, { recursive: true });

const FLAGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--allow-loopback-in-peer-connection",
  "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
  "--disable-backgrounding-occluded-windows", "--autoplay-policy=no-user-gesture-required",
  "--disable-features=WebRtcHideLocalIpsWithMdns",
];

/**
 * Launches Chromium; `fakeUi: false` leaves camera permission prompts unanswered (headless
 * Chromium then denies them). `cameras` fake cameras (0: none at all, as on a machine without
 * one; the test machine has no real devices); `args`: more command-line flags. Each person
 * gets their own context (`personPage`): their own storage, so their own session.
 * `executablePath`: another Chromium (a wrapper that runs it in a network namespace).
 */
export async function launch({ fakeUi = true, cameras = 1, args = [], executablePath } = {}) {
  const devices = cameras === 0 ? [] : [`--use-fake-device-for-media-stream${cameras > 1 ? `=device-count=${cameras}` : ""}`];
  return chromium.launch({
    executablePath: executablePath || process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [...FLAGS, ...devices, ...(fakeUi ? ["--use-fake-ui-for-media-stream"] : []), ...args],
  });
}

/** A page in a fresh context (its own localStorage), `confirm()` dialogs accepted. */
export async function personPage(browser, viewport = { width: 1280, height: 800 }, name = "page") {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`[${name}] page error:`, error.message));
  page.on("dialog", (dialog) => dialog.accept());
  page.on("close", () => context.close().catch(() => {}));
  return page;
}

/** A page signed in as `person` (their session put where the sign-in page keeps it). */
export async function pageAs(browser, base, person, viewport) {
  const page = await personPage(browser, viewport, person.name);
  await page.addInitScript((session) => {
    if (!localStorage.getItem("classroom.session")) localStorage.setItem("classroom.session", JSON.stringify(session));
  }, { token: person.token, user: person.user });
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
          source: owner?.source ?? null,
          framesDecoded: s.framesDecoded ?? 0,
          packetsReceived: s.packetsReceived ?? 0,
          packetsLost: s.packetsLost ?? 0,
        });
      }
    });
    return rows;
  });
}

/** The video `participant` sends, as `page` decodes it now: `{width, frames}`, or null. */
export async function videoFrom(page, participant) {
  return page.evaluate(async (sender) => {
    const media = window.classroom?.media;
    if (!media) return null;
    const stats = await media.pc.getStats();
    let found = null;
    stats.forEach((s) => {
      if (s.type !== "inbound-rtp" || s.kind !== "video") return;
      if (media.ownerByMid.get(s.mid)?.participant !== sender) return;
      found = { width: s.frameWidth ?? 0, frames: s.framesDecoded ?? 0 };
    });
    return found;
  }, participant);
}

/** Polls `check` until it returns a truthy value, or fails after `ms`. A check that throws
 * counts as not yet: a page's modules run after its catalogue has loaded, so right after a
 * navigation `window.classroom` may not be there. */
export async function eventually(what, check, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
    } catch (error) {
      last = `threw: ${error.message}`;
      await new Promise((r) => setTimeout(r, 250));
      continue;
    }
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

/** Signs in through the sign-in page (already open) as `email`. */
export async function signIn(page, email, password) {
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/**
 * Runs axe-core on the page; returns the serious and critical violations. Evaluated through
 * the DevTools protocol, not added as a <script>: the pages' Content-Security-Policy refuses
 * inline scripts, as it should.
 */
export async function accessibilityProblems(page) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(readFileSync(AXE, "utf8"));
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ")}`);
}
