// A sign-in link whose `?next=` leads to another site, in a real Chromium: after signing in,
// the browser lands on our own page and never even asks for the other host.
//
// No traffic leaves the machine: every request to a host other than the test server is
// aborted by the test before it is sent (and recorded), and Chromium's resolver answers no
// name at all, so not even a DNS query goes out.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { ADMIN_EMAIL, PASSWORD, startServer } from "./lib/server.mjs";
import { eventually, launch, personPage, signIn } from "./lib/browser.mjs";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch({ args: ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"] });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Aborts, and records, every request of the page's context to a host other than ours. */
async function guard(page) {
  const ours = new URL(server.base).host;
  const attempts = [];
  await page.context().route((url) => url.host !== ours, (route) => {
    attempts.push(route.request().url());
    return route.abort("blockedbyclient");
  });
  return attempts;
}

// `next` values that leave the site: as the browser parses them, `\` is `/` and tabs and
// newlines vanish, so the first two pass a "starts with one slash" check.
const LEAVING = [
  "/\\evil.example/x",
  "/\t/evil.example",
  "/\\/evil.example",
  "//evil.example",
  " //evil.example",
  "https://evil.example/",
  "javascript:window.__hijacked=1",
];

test("a sign-in link cannot send the browser to another site", async () => {
  for (const next of LEAVING) {
    const page = await personPage(browser, undefined, "visitor");
    const attempts = await guard(page);
    await page.goto(`${server.base}/?next=${encodeURIComponent(next)}`);
    await signIn(page, ADMIN_EMAIL, PASSWORD);
    // Either the courses (we stayed) or the request to the other host (we left).
    await eventually(`where ${JSON.stringify(next)} leads`, async () =>
      attempts.length > 0 || (await page.getByRole("heading", { name: "My courses" }).isVisible()));
    assert.deepEqual(attempts, [], `next=${JSON.stringify(next)} must not leave the site`);
    assert.equal(page.url(), `${server.base}/`, `next=${JSON.stringify(next)}`);
    assert.equal(await page.evaluate(() => window.__hijacked), undefined);
    await page.close();
  }

  // A page of our own is where sign-in returns.
  const page = await personPage(browser, undefined, "visitor");
  const attempts = await guard(page);
  await page.goto(`${server.base}/?next=${encodeURIComponent("/admin.html?tab=users#top")}`);
  await signIn(page, ADMIN_EMAIL, PASSWORD);
  await page.waitForURL(`${server.base}/admin.html?tab=users#top`);
  assert.deepEqual(attempts, []);
  await page.close();
});

