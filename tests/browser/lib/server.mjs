// Starts a real classroomd for browser tests: a fresh data directory, free HTTP and media
// (UDP) ports, the first admin created with `classroomd user add`, and a small REST client.
// `restart()` stops it and starts it again on the same HTTP port and data directory.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const ROOT = resolve(import.meta.dirname, "../../..");
export const BIN = process.env.CLASSROOMD_BIN || join(ROOT, "target/debug/classroomd");
export const PASSWORD = "correct horse battery";
export const ADMIN_EMAIL = "admin@school.test";

function environment(extra = {}) {
  return {
    PATH: process.env.PATH,
    RUST_LOG: process.env.RUST_LOG || "warn",
    // Port 0: the SFU takes free UDP and TCP ports, so parallel runs do not collide.
    CLASSROOM_MEDIA__UDP_ADDR: "127.0.0.1:0",
    CLASSROOM_MEDIA__TCP_ADDR: "127.0.0.1:0",
    CLASSROOM_RTMP__ADDR: "127.0.0.1:0",
    // A small replay picture keeps ffmpeg quick on a shared machine.
    CLASSROOM_RECORDER__HEIGHT: "360",
    // The test's own settings win (another media address, TURN, ...).
    ...extra,
  };
}

/**
 * Runs classroomd on `httpAddr` until it prints its URL and where encoders publish; resolves
 * with the child, the URL and the RTMP server URL.
 */
function run(dataDir, httpAddr, env) {
  const child = spawn(BIN, ["--data-dir", dataDir, "--http-addr", httpAddr], {
    env: environment(env),
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((ok, fail) => {
    const lines = createInterface({ input: child.stdout });
    let base = null;
    let setupLink = null;
    lines.on("line", (line) => {
      const match = line.match(/open (http:\/\/\d+\.\d+\.\d+\.\d+:\d+)\//);
      if (match) base = match[1];
      const setup = line.match(/first admin at (http:\/\/\S+)/);
      if (setup) setupLink = setup[1];
      const rtmp = line.match(/encoders publish to (rtmp:\/\/\S+)/);
      if (rtmp && base) ok({ child, base, rtmp: rtmp[1], setupLink });
    });
    child.on("exit", (code) => fail(new Error(`classroomd exited with ${code}`)));
  });
}

/** SIGTERM, then SIGKILL if it has not exited within 5 seconds. */
async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((ok) => child.on("exit", ok));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/**
 * `env`: more CLASSROOM_* settings for this server (`CLASSROOM_MEDIA__ADVERTISE_UDP`, …);
 * `host`: the address to serve HTTP on (a free port of it), 127.0.0.1 unless a test built its
 * own network (lib/netns.mjs).
 */
export async function startServer({ env = {}, host = "127.0.0.1", withAdmin = true } = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), "classroom-browser-"));
  const admin = !withAdmin ? { status: 0 } : spawnSync(BIN, ["user", "add", "--role", "admin", "--email", ADMIN_EMAIL, "--name", "Ada Admin", "--data-dir", dataDir], {
    input: `${PASSWORD}\n`,
    env: environment(),
  });
  if (admin.status !== 0) throw new Error(`user add failed: ${admin.stderr}`);
  let { child, base, rtmp, setupLink } = await run(dataDir, `${host}:0`, env);
  const server = {
    base,
    /** The first-run link the server printed (`withAdmin: false`), else null. */
    setupLink,
    /** Where encoders publish: `${rtmp}/${streamKey}`. */
    rtmp,
    /** Stops the process, keeping the data directory (see `start`). */
    async halt() {
      await stopChild(child);
    },
    /** Starts again on the same HTTP port and data directory. */
    async start() {
      let started;
      ({ child, ...started } = await run(dataDir, new URL(base).host, env));
      server.rtmp = started.rtmp;
    },
    async stop() {
      await stopChild(child);
      rmSync(dataDir, { recursive: true, force: true });
    },
    async login(email, password = PASSWORD) {
      const body = await request(base, "POST", "/api/v1/auth/login", null, { email, password });
      return { token: body.token, user: body.user };
    },
    request: (method, path, token, body) => request(base, method, path, token, body),
  };
  return server;
}

async function request(base, method, path, token, body) {
  const response = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Through the API: a teacher, two students, a course with both enrolled, and a lesson. */
export async function school(server) {
  const admin = await server.login(ADMIN_EMAIL);
  const people = {};
  for (const [key, role, name] of [["teacher", "teacher", "Tess Teacher"], ["sam", "student", "Sam Student"], ["kim", "student", "Kim Student"]]) {
    const email = `${key}@school.test`;
    const user = await server.request("POST", "/api/v1/users", admin.token, { email, name, password: PASSWORD, role });
    people[key] = { ...(await server.login(email)), id: user.id, name, email };
  }
  const course = await server.request("POST", "/api/v1/courses", people.teacher.token, { title: "Biology 8a" });
  for (const student of [people.sam, people.kim]) {
    await server.request("POST", `/api/v1/courses/${course.id}/enrollments`, people.teacher.token, { user_id: student.id });
  }
  const now = new Date();
  const lesson = await server.request("POST", `/api/v1/courses/${course.id}/lessons`, people.teacher.token, {
    title: "Cells, live",
    starts_at: now.toISOString(),
    ends_at: new Date(now.getTime() + 3600_000).toISOString(),
  });
  return { admin, ...people, course, lesson };
}
