// Starts a real classroomd for browser tests: a fresh data directory, a free port, the first
// admin created with `classroomd user add`, and a small REST client.

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";

const ROOT = resolve(import.meta.dirname, "../../..");
export const BIN = process.env.CLASSROOMD_BIN || join(ROOT, "target/debug/classroomd");
const PASSWORD = "correct horse battery";

export async function startServer() {
  const dataDir = mkdtempSync(join(tmpdir(), "classroom-browser-"));
  const env = { PATH: process.env.PATH, RUST_LOG: process.env.RUST_LOG || "warn" };
  const admin = spawnSync(BIN, ["user", "add", "--role", "admin", "--email", "admin@school.test", "--name", "Ada Admin", "--data-dir", dataDir], {
    input: `${PASSWORD}\n`,
    env,
  });
  if (admin.status !== 0) throw new Error(`user add failed: ${admin.stderr}`);
  const child = spawn(BIN, ["--data-dir", dataDir, "--http-addr", "127.0.0.1:0"], {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const base = await new Promise((ok, fail) => {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const match = line.match(/open (http:\/\/127\.0\.0\.1:\d+)\//);
      if (match) ok(match[1]);
    });
    child.on("exit", (code) => fail(new Error(`classroomd exited with ${code}`)));
  });
  const server = {
    base,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((ok) => (child.exitCode !== null ? ok() : child.on("exit", ok)));
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

/** An admin, a teacher, two students, a course with both enrolled, and a lesson. */
export async function school(server) {
  const admin = await server.login("admin@school.test");
  const people = {};
  for (const [key, role, name] of [["teacher", "teacher", "Tess Teacher"], ["sam", "student", "Sam Student"], ["kim", "student", "Kim Student"]]) {
    const email = `${key}@school.test`;
    const user = await server.request("POST", "/api/v1/users", admin.token, { email, name, password: PASSWORD, role });
    people[key] = { ...(await server.login(email)), id: user.id, name };
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
  return { ...people, course, lesson };
}
