// First run in a real Chromium: a server with no admin prints a setup link; opening it creates
// the school's first admin, who lands signed in on the admin page; the link then works no more.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";

import { startServer } from "./lib/server.mjs";
import { accessibilityProblems, launch, personPage, signIn } from "./lib/browser.mjs";

let server;
let browser;

before(async () => {
  server = await startServer({ withAdmin: false });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("the setup link creates the first admin, once", async () => {
  assert.ok(server.setupLink, "the server printed a setup link");
  assert.match(server.setupLink, /\/setup#[0-9a-f]{32}$/);
  const page = await personPage(browser, { width: 390, height: 844 });
  await page.goto(server.setupLink);
  await page.getByRole("heading", { name: "Set up your school" }).waitFor();
  assert.deepEqual(await accessibilityProblems(page), [], "setup page: no serious axe violations");

  await page.getByLabel("Your name").fill("Hana Head");
  await page.getByLabel("Email").fill("head@school.test");
  await page.getByLabel("Password", { exact: true }).fill("a long admin password");
  await page.getByLabel("Password again").fill("a different password");
  await page.getByRole("button", { name: "Create admin" }).click();
  await page.getByRole("alert").getByText("The two passwords differ.").waitFor();

  await page.getByLabel("Password again").fill("a long admin password");
  await page.getByRole("button", { name: "Create admin" }).click();
  await page.waitForURL(/\/admin\.html$/);
  await page.getByRole("heading", { name: "Users", exact: true }).waitFor();
  await page.getByText("Hana Head").first().waitFor();

  // The link is spent: opened again (another browser), it says the school is set up.
  const again = await personPage(browser);
  await again.goto(server.setupLink);
  await again.getByText("This school is set up already").waitFor();
  assert.equal(await again.locator("#setup").isHidden(), true);

  // The new admin signs in with the password chosen on the page.
  await again.goto(server.base + "/");
  await signIn(again, "head@school.test", "a long admin password");
  await again.getByRole("heading", { name: "My courses" }).waitFor();
});
