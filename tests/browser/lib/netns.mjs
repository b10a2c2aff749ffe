// A small network of the test's own, for real kernel shaping: a bridge in this namespace
// (the server's side, 10.231.N.1) and one network namespace per student host, each joined to
// the bridge by a veth pair (10.231.N.2, .3, ...). `tc` on a host's bridge-side veth shapes
// that host's downlink. Everything is torn down by `destroy()`; nothing leaves the machine.
// Needs root (ip netns, tc), as the benchmark does.

import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ip = (...args) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
const tc = (...args) => execFileSync("tc", args, { stdio: ["ignore", "ignore", "pipe"] });

export function canMakeNetworks() {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync("tc", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** A bridge and `hosts` namespaces on a /24 chosen from this process's id. */
export function makeNetwork(hosts) {
  const tag = String(process.pid % 100_000);
  const subnet = `10.231.${process.pid % 250}`;
  const bridge = `clb${tag}`;
  const dir = mkdtempSync(join(tmpdir(), "classroom-netns-"));
  const made = { namespaces: [], links: [] };
  const network = {
    serverIp: `${subnet}.1`,
    hosts: [],
    /** Caps what reaches host `i` (its downlink) at `rate` (tc syntax: "300kbit"). */
    cap(i, rate) {
      tc("qdisc", "replace", "dev", network.hosts[i].hostSide, "root", "tbf", "rate", rate, "burst", "16kbit", "latency", "100ms");
    },
    uncap(i) {
      tc("qdisc", "del", "dev", network.hosts[i].hostSide, "root");
    },
    destroy() {
      for (const ns of made.namespaces) {
        try { ip("netns", "del", ns); } catch {}
      }
      for (const link of made.links) {
        try { ip("link", "del", link); } catch {}
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    ip("link", "add", bridge, "type", "bridge");
    made.links.push(bridge);
    ip("addr", "add", `${network.serverIp}/24`, "dev", bridge);
    ip("link", "set", bridge, "up");
    for (let i = 0; i < hosts; i++) {
      const ns = `cln${tag}h${i}`;
      const hostSide = `clv${tag}h${i}`;
      const inside = `clv${tag}n${i}`;
      ip("netns", "add", ns);
      made.namespaces.push(ns);
      ip("link", "add", hostSide, "type", "veth", "peer", "name", inside);
      made.links.push(hostSide);
      ip("link", "set", inside, "netns", ns);
      ip("link", "set", hostSide, "master", bridge);
      ip("link", "set", hostSide, "up");
      const address = `${subnet}.${i + 2}`;
      ip("-n", ns, "addr", "add", `${address}/24`, "dev", inside);
      ip("-n", ns, "link", "set", inside, "up");
      ip("-n", ns, "link", "set", "lo", "up");
      // Chromium, run inside the namespace by this wrapper (playwright talks to it over pipes).
      const chromium = join(dir, `chromium-${i}`);
      writeFileSync(chromium, `#!/bin/sh\nexec ip netns exec ${ns} ${process.env.CHROMIUM || "/usr/bin/chromium"} "$@"\n`);
      chmodSync(chromium, 0o755);
      network.hosts.push({ ns, address, hostSide, chromium });
    }
  } catch (error) {
    network.destroy();
    throw error;
  }
  return network;
}
