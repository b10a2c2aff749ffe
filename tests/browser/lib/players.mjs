// Third-party WHIP and WHEP clients from npm, served to Chromium from an origin of their own
// (another port of 127.0.0.1), as a school's embedding page would be: the server's CORS
// answers are part of what is tested.
//
// `@eyevinn/whip-web-client` ships CommonJS and an ES module that imports bare package names
// ("events", "sdp-transform"); with no bundler here, its CommonJS build and those two
// packages are wrapped in a small module registry and served as one classic script that sets
// `window.EyevinnWHIPClient`. `whip-whep` is plain ES modules, served as they are.

import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const file = (name) => require.resolve(name);

/** The CommonJS modules of the Eyevinn client, by the names they require each other under. */
function eyevinnBundle() {
  const sdp = dirname(file("sdp-transform"));
  const modules = {
    // "events/": the npm package, not Node's own module of that name.
    "events": file("events/"),
    "sdp-transform": join(sdp, "index.js"),
    "./parser": join(sdp, "parser.js"),
    "./writer": join(sdp, "writer.js"),
    "./grammar": join(sdp, "grammar.js"),
    "@eyevinn/whip-web-client": file("@eyevinn/whip-web-client"),
  };
  const definitions = Object.entries(modules)
    .map(([name, path]) => `${JSON.stringify(name)}: function (module, exports, require) {\n${readFileSync(path, "utf8")}\n}`)
    .join(",\n");
  return `(() => {
const definitions = {${definitions}};
const cache = {};
function load(name) {
  if (!(name in definitions)) throw new Error("not bundled: " + name);
  if (!cache[name]) {
    const module = { exports: {} };
    cache[name] = module;
    definitions[name](module, module.exports, load);
  }
  return cache[name].exports;
}
window.EyevinnWHIPClient = load("@eyevinn/whip-web-client").WHIPClient;
})();`;
}

const PAGE = `<!doctype html><meta charset="utf-8"><title>players</title>
<script src="/eyevinn.js"></script><video autoplay muted playsinline></video>`;

/** Serves the clients on 127.0.0.1 (a free port); `url` is its page, `stop()` ends it. */
export async function servePlayers() {
  const routes = {
    "/": ["text/html", PAGE],
    "/eyevinn.js": ["text/javascript", eyevinnBundle()],
    "/whip.js": ["text/javascript", readFileSync(join(dirname(file("whip-whep/whip.js")), "whip.js"), "utf8")],
    "/whep.js": ["text/javascript", readFileSync(join(dirname(file("whip-whep/whep.js")), "whep.js"), "utf8")],
  };
  const server = createServer((request, response) => {
    const route = routes[new URL(request.url, "http://x").pathname];
    if (!route) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": route[0] }).end(route[1]);
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/`,
    stop: () => new Promise((ok) => server.close(ok)),
  };
}
