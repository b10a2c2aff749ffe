// Every page of the web client runs under the server's Content-Security-Policy without a
// single violation (scripts, styles, the signaling WebSocket, the camera, the stream key
// panel), and the policy refuses a script injected into a page. Chromium's resolver answers
// no name, so nothing leaves the machine.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { school, startServer } from "./lib/server.mjs";
import { eventually, launch, pageAs } from "./lib/browser.mjs";

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

/** A page of `person` that records every CSP violation and console error from its start. */
async function watchedPage(person) {
  const page = await pageAs(browser, server.base, person);
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  });
  const errors = [];
  page.on("console", (message) => {
    if (message.type() === "error" && /Content.Security.Policy|Refused to/i.test(message.text())) errors.push(message.text());
  });
  return { page, errors };
}

async function violations(page) {
  return page.evaluate(() => window.__violations);
}

test("every page runs under the Content-Security-Policy without a violation", async () => {
  const people = await school(server);
  const admin = { ...people.admin, name: "Ada Admin" };
  const visits = [
    [admin, "/", () => "My courses"],
    [admin, "/admin.html", () => "Users"],
    [people.teacher, `/course.html?id=${people.course.id}`, () => "Biology 8a"],
    [people.sam, `/replay.html?lesson=${people.lesson.id}`, () => null],
  ];
  for (const [person, path, heading] of visits) {
    const { page, errors } = await watchedPage(person);
    const response = await page.goto(server.base + path);
    const policy = response.headers()["content-security-policy"] ?? "";
    assert.match(policy, /script-src 'self'/, `${path} is served with the policy`);
    if (heading()) await page.getByRole("heading", { name: heading(), exact: true }).waitFor();
    await page.waitForLoadState("networkidle");
    assert.deepEqual(await violations(page), [], `${path}: no CSP violation`);
    assert.deepEqual(errors, [], `${path}: no CSP error in the console`);
    await page.close();
  }

  // The live page: the signaling WebSocket (connect-src), the camera preview, going live.
  const { page: teacher, errors } = await watchedPage(people.teacher);
  await teacher.goto(`${server.base}/live.html?lesson=${people.lesson.id}`);
  await teacher.getByRole("button", { name: /^(Go live with|Turn on) camera and microphone$/ }).click();
  await eventually("the teacher's connection", () => teacher.evaluate(() => window.classroom.media?.pc.connectionState === "connected"));
  assert.equal(await teacher.evaluate(() => window.classroom.signaling?.socket?.readyState), 1, "the WebSocket is open");
  await teacher.getByRole("tab", { name: "Stream" }).click();
  await teacher.getByRole("button", { name: "Make a key" }).click();
  await teacher.getByRole("button", { name: "Show key" }).waitFor();
  assert.deepEqual(await violations(teacher), [], "live page: no CSP violation");
  assert.deepEqual(errors, [], "live page: no CSP error in the console");

  // The policy is enforced: a script put into the page does not run, and is reported.
  const ran = await teacher.evaluate(async () => {
    const script = document.createElement("script");
    script.textContent = "window.__injected = true";
    document.body.append(script);
    const link = document.createElement("a");
    link.setAttribute("onclick", "window.__injected = true");
    document.body.append(link);
    link.click();
    await new Promise((r) => setTimeout(r, 100));
    return window.__injected === true;
  });
  assert.equal(ran, false, "an injected script does not run");
  const reported = await violations(teacher);
  assert.ok(reported.some((v) => v.startsWith("script-src")), `reported: ${JSON.stringify(reported)}`);
  await teacher.close();
});
