// The replay of a lesson: /replay.html?lesson=ID[&replay=ID]. Built against the replay list;
// a replay that is ready and carries a `url` plays in a <video>, otherwise the page says why.

import { api } from "./api.js";
import { $, el, report, requireSession, when } from "./page.js";

const params = new URLSearchParams(location.search);
const lessonId = params.get("lesson");

function statusOf(replay) {
  if (!replay) return "No replay yet: the lesson's recording has not been kept or is not ready.";
  if (replay.state === "processing") return "This replay is still being prepared. Come back in a few minutes.";
  if (replay.state === "failed") return "This replay could not be prepared.";
  if (!replay.url) return "No replay yet: the recording is not available to play.";
  const length = replay.duration_ms ? ` · ${Math.round(replay.duration_ms / 60000)} min` : "";
  return `${replay.title}${length} · recorded ${when(replay.created_at)}`;
}

async function load() {
  const lesson = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}`);
  $("title").textContent = `Replay: ${lesson.title}`;
  document.title = `Replay: ${lesson.title} · classroom`;
  $("back").href = `/course.html?id=${lesson.course_id}`;
  const replays = (await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}/replays`)).items;
  const wanted = params.get("replay");
  const chosen = replays.find((r) => String(r.id) === wanted)
    ?? replays.find((r) => r.state === "ready") ?? replays[0];
  $("status").textContent = statusOf(chosen);
  const playable = chosen?.state === "ready" && chosen.url;
  $("player").hidden = !playable;
  if (playable) {
    $("player").src = chosen.url;
    $("player").setAttribute("aria-label", `Replay of ${lesson.title}`);
  }
  $("replays").replaceChildren(...(replays.length
    ? replays.map((r) => el("li", {},
      el("a", { href: `?lesson=${lessonId}&replay=${r.id}`, text: `${r.title} (${when(r.created_at)})`, "aria-current": r === chosen ? "true" : "false" }),
      el("span", { class: "pill", text: r.state })))
    : [el("li", { class: "muted", text: "None." })]));
}

if (requireSession()) load().catch(report);
