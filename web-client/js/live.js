// The live classroom page: /live.html?lesson=ID. Gets a join token from the REST API, joins
// the room over signaling and sends and receives media through the SFU. When the WebSocket or
// the peer connection drops, it shows "Reconnecting…" and joins again (with a fresh join
// token when the old one is about to expire): within the server's grace period it gets its
// place back, and it publishes again what it was publishing.

import { Signaling } from "./signaling.js";
import { MediaSession } from "./media.js";
import { Tiles } from "./tiles.js";
import { deviceProblem, fillPickers, openCamera, openDevice, openScreen } from "./devices.js";
import { UNREACHABLE, api, session, signInUrl } from "./api.js";
import { $, el, when } from "./page.js";
import { RestreamPanel } from "./restream.js";
import { ERROR_TEXTS, errorText } from "./errors.js";
import { attachSlides } from "./slides.js";

const lessonId = new URLSearchParams(location.search).get("lesson");
const state = {
  me: null,
  grants: null,
  participants: new Map(),
  hands: [],
  speakers: new Set(),
  quality: new Map(), // participant -> excellent | good | poor | lost
  chatLocked: false,
  join: null, // the REST join response: token, expires_at, signaling_path
  signaling: null,
  media: null,
  preview: null, // camera stream shown in the setup panel, published on "Go live"
  localStream: null, // what we publish
  publishing: false,
  screenTrack: null,
  declinedStage: false,
  reconnecting: false,
  over: null, // why the page stopped for good: "left", "removed", "revoked", "ended"
  removed: new Map(), // moderators: user id -> name of those removed from the lesson
};
window.classroom = state; // for tests and debugging: state.media.pc.getStats()

const tiles = new Tiles($("main-tile"), $("tiles"), {
  isTeacher: (id) => state.participants.get(id)?.role === "teacher",
  onSize: (mid, width, height) => {
    // The server may not implement video_size yet: its error is of no consequence.
    state.signaling?.request({ type: "video_size", mid, width, height }).catch(() => {});
  },
});

const restreamPanel = new RestreamPanel(lessonId, (text) => banner(text));

function banner(text, kind = "") {
  $("banner").textContent = text;
  $("banner").className = `banner ${kind}`;
  $("banner").hidden = !text;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const moderator = () => !!state.grants?.moderate;
const mayPublish = (source) => !!state.grants?.publish?.includes(source);
const participantName = (id) => state.participants.get(id)?.name ?? `participant ${id}`;

// --- Rendering -----------------------------------------------------------------------------

function render() {
  const me = state.participants.get(state.me);
  const setupWanted = !state.publishing && mayPublish("camera") && (moderator() || !state.declinedStage);
  showSetup(setupWanted && !state.over);
  $("hand").hidden = moderator() || !!state.over;
  $("unmute").hidden = !me?.muted || !state.publishing;
  $("screen").hidden = !(state.publishing && mayPublish("screen"));
  $("devices").hidden = !state.publishing;
  $("screen").textContent = state.screenTrack ? "Stop sharing screen" : "Share screen";
  $("mute-all").hidden = !moderator();
  $("lock-chat").hidden = !moderator();
  $("end").hidden = !moderator();
  $("hand").textContent = state.hands.includes(state.me) ? "Lower hand" : "Raise hand";
  $("lock-chat").textContent = state.chatLocked ? "Unlock chat" : "Lock chat";
  $("chat-lock").hidden = !state.chatLocked;
  // Everyone sees whether the lesson is recorded; teachers (the `record` grant) run it.
  const recording = state.recording || "off";
  $("recording").hidden = recording === "off";
  $("recording").textContent = recording === "paused" ? "Recording paused" : "● Recording";
  const mayRecord = !!state.grants?.record && !state.over;
  $("record").hidden = !mayRecord;
  $("record").textContent = recording === "off" ? "Start recording" : "Stop recording";
  $("record-pause").hidden = !mayRecord || recording === "off";
  $("record-pause").textContent = recording === "paused" ? "Resume recording" : "Pause recording";

  $("hands").replaceChildren(...state.hands.map((id) => el("li", { text: `✋ ${participantName(id)}` })));
  $("people").replaceChildren(...[...state.participants.values()].map(personRow));
  $("removed-section").hidden = !moderator() || state.removed.size === 0 || !!state.over;
  $("removed").replaceChildren(...[...state.removed].map(([userId, name]) => removedRow(userId, name)));
  tiles.speaking(state.speakers);
  restreamPanel.show(me?.role === "teacher" && !state.over);
}

function personRow(p) {
  const flags = [
    p.role,
    p.on_stage && p.role === "student" ? "on stage" : "",
    p.muted ? "muted" : "",
    p.reconnecting ? "reconnecting" : "",
    state.speakers.has(p.id) ? "speaking" : "",
  ].filter(Boolean).join(", ");
  const quality = state.quality.get(p.id);
  const item = el("li", { "data-participant": p.id },
    el("span", { text: `${p.name}${p.id === state.me ? " (you)" : ""} — ${flags}` }),
    quality ? el("span", { class: `quality ${quality}`, text: `connection ${quality}` }) : null);
  if (moderator() && p.id !== state.me && p.role === "student") {
    item.append(
      p.on_stage
        ? action("Take off stage", `Take ${p.name} off stage`, { type: "remove_from_stage", participant: p.id })
        : action("Bring on stage", `Bring ${p.name} on stage`, { type: "invite_to_stage", participant: p.id }),
      action("Mute", `Mute ${p.name}`, { type: "mute", participant: p.id }),
      action("Remove", `Remove ${p.name}`, { type: "remove_participant", participant: p.id }),
    );
  }
  return item;
}

/** A removed user, for moderators: they stay out of the lesson until let back in. */
function removedRow(userId, name) {
  const letBackIn = el("button", {
    type: "button",
    text: "Let back in",
    "aria-label": `Let back in: ${name}`,
    onclick: () => readmit(userId, name),
  });
  return el("li", { "data-removed": userId }, el("span", { text: name }), letBackIn);
}

/** Moderators: who was removed from this lesson (kept by the server across reconnects). */
async function loadRemovals() {
  try {
    const removals = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}/removals`);
    state.removed = new Map(removals.map((r) => [r.user_id, r.name]));
    render();
  } catch (error) {
    if (!error.redirected) banner(`The list of removed participants could not be loaded: ${error.message}`);
  }
}

async function readmit(userId, name) {
  try {
    await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}/removals/${encodeURIComponent(userId)}`, { method: "DELETE" });
    banner(`${name} can join the lesson again.`);
  } catch (error) {
    if (error.redirected) return;
    if (error.status !== 404) return banner(`${name} could not be let back in: ${error.message}`);
  }
  state.removed.delete(userId);
  render();
}

// The visible text starts the accessible name, so voice control users can say what they see.
function action(text, label, message) {
  return el("button", { type: "button", text, "aria-label": label.startsWith(text) ? label : `${text}: ${label}`, onclick: () => send(message).catch(() => {}) });
}

async function send(message) {
  if (!state.signaling) throw new Error("not connected");
  try {
    return await state.signaling.request(message);
  } catch (error) {
    if (error.code !== "closed") banner(errorText(error));
    throw error;
  }
}

function showChat(messages) {
  $("messages").replaceChildren(...messages.map((m) => el("li", { text: `${m.name}: ${m.text}` })));
}

// --- Camera, microphone, screen ------------------------------------------------------------

let previewStarting = null;

function showSetup(show) {
  const wasHidden = $("setup").hidden;
  $("setup").hidden = !show;
  const invited = !moderator();
  $("invite").hidden = !invited;
  $("decline").hidden = !invited;
  $("publish").textContent = invited ? "Turn on camera and microphone" : "Go live with camera and microphone";
  if (show && wasHidden && !state.preview) startPreview().catch(() => {});
}

/** Opens the chosen camera and microphone into the preview; reports denied or missing. */
function startPreview() {
  previewStarting ??= (async () => {
    try {
      const picked = { cameraId: $("camera-pick").value, microphoneId: $("microphone-pick").value };
      const stream = await openCamera(picked);
      state.preview?.getTracks().forEach((t) => t.stop());
      state.preview = stream;
      $("preview").srcObject = stream;
      await fillPickers($("camera-pick"), $("microphone-pick"), stream);
      if ($("banner").dataset.device) banner("");
      return stream;
    } catch (error) {
      banner(deviceProblem(error));
      $("banner").dataset.device = "1";
      throw error;
    } finally {
      previewStarting = null;
    }
  })();
  return previewStarting;
}

async function publish() {
  const stream = state.preview ?? await startPreview().catch(() => null);
  if (!stream || !state.media) return;
  state.preview = null;
  $("preview").srcObject = null;
  state.localStream = stream;
  state.publishing = true;
  tiles.showLocal(stream);
  render();
  fillPickers($("live-camera-pick"), $("live-microphone-pick"), stream).catch(() => {});
  await state.media.publish(stream).catch((error) => banner(`Going live failed: ${error.message}`));
}

/**
 * Another camera or microphone chosen while live: the new device's track replaces the old one
 * on the same m-line (no renegotiation, subscribers keep decoding); a microphone the teacher
 * muted stays muted. If the device cannot be opened, the old one keeps going.
 */
async function switchDevice(kind, deviceId) {
  const stream = state.localStream;
  if (!stream || !deviceId) return;
  const mediaKind = kind === "audioinput" ? "audio" : "video";
  const old = stream.getTracks().find((t) => t.kind === mediaKind);
  if (old?.getSettings().deviceId === deviceId) return;
  let track;
  try {
    track = await openDevice(kind, deviceId);
  } catch (error) {
    banner(deviceProblem(error, mediaKind === "audio" ? "microphone" : "camera"));
    await fillPickers($("live-camera-pick"), $("live-microphone-pick"), stream);
    return;
  }
  if (stream !== state.localStream) { track.stop(); return; } // stopped publishing meanwhile
  if (old) {
    track.enabled = old.enabled;
    stream.removeTrack(old);
  }
  stream.addTrack(track);
  await state.media?.replaceLocal(track).catch((error) => banner(`Switching devices failed: ${error.message}`));
  old?.stop();
  if (mediaKind === "video") tiles.showLocal(stream);
}

async function stopPublishing() {
  state.publishing = false;
  state.localStream?.getTracks().forEach((t) => t.stop());
  state.localStream = null;
  state.screenTrack = null;
  tiles.removeLocal();
  await state.media?.unpublish().catch(() => {});
}

async function toggleScreen() {
  if (state.screenTrack) {
    state.screenTrack = null;
    await state.media?.stopScreen().catch(() => {});
    render();
    return;
  }
  let track;
  try {
    track = await openScreen();
  } catch (error) {
    if (error.name !== "NotAllowedError") banner(deviceProblem(error, "screen share"));
    return;
  }
  state.screenTrack = track;
  track.addEventListener("ended", () => { if (state.screenTrack === track) toggleScreen(); });
  render();
  await state.media?.shareScreen(track).catch((error) => banner(`Screen sharing failed: ${error.message}`));
}

// --- The teacher's encoder (OBS, a hardware encoder) over RTMP ----------------------------

const ENCODER_STATES = {
  live: "Your encoder is live: the class sees and hears it.",
  interrupted: "The encoder's connection dropped; waiting for it to come back…",
  stopped: "No encoder is streaming.",
};
// The key is known only in the answer that made it (the server keeps its hash): shown on this
// page until it is left, never again. A teacher who lost it makes a new one.
const encoder = { key: null, url: null, created: null, shown: false, loaded: false };

/** The lesson's server URL and key (teachers of the course only: others get 403 and see nothing). */
async function loadStreamKey(method = "GET") {
  try {
    const key = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}/stream-key`, { method });
    if (method === "POST") {
      encoder.key = key.stream_key;
      encoder.shown = false;
    }
    encoder.url = key.server_url;
    encoder.created = key.created_at;
    encoder.loaded = true;
    $("encoder").hidden = false;
    showStreamKey();
  } catch (error) {
    if (error.status === 403 || error.status === 404) return;
    if (method === "POST") banner(`No new stream key: ${error.message}`);
  }
}

function showStreamKey() {
  const known = Boolean(encoder.key);
  $("encoder-url").textContent = encoder.url;
  let text;
  if (known) text = encoder.shown ? encoder.key : "••••••••••••";
  else if (encoder.created) text = `made ${when(encoder.created)}; shown only when made`;
  else text = "none yet";
  $("encoder-key").textContent = text;
  $("encoder-key").dataset.hidden = String(known && !encoder.shown);
  $("key-once").hidden = !known;
  $("reveal-key").hidden = !known;
  $("copy-key").hidden = !known;
  $("reveal-key").textContent = encoder.shown ? "Hide key" : "Show key";
  $("reveal-key").setAttribute("aria-pressed", String(encoder.shown));
  $("rotate-key").textContent = encoder.created ? "New key" : "Make a key";
}

/** An `encoder` message: the state, and why a publish was refused or stopped. */
function showEncoder({ state, reason }) {
  if (ENCODER_STATES[state]) $("encoder-state").textContent = ENCODER_STATES[state];
  $("encoder").dataset.state = state;
  const why = state === "refused" ? `The encoder was refused: ${reason}` : state === "stopped" ? reason : "";
  if (state === "live" || why) {
    $("encoder-reason").textContent = why ?? "";
    $("encoder-reason").hidden = !why;
  }
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    banner(`${what} copied.`);
  } catch {
    banner(`${what} could not be copied: select it and copy it by hand.`);
  }
}

// --- Connecting and reconnecting -----------------------------------------------------------

/** Joins (again): a join token, the WebSocket, the room, a new media session. */
async function connect() {
  // Reuse the join token while it is valid for a while longer; else ask the API for a fresh one.
  if (!state.join || Date.parse(state.join.expires_at) - Date.now() < 15_000) {
    state.join = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}/join`, { method: "POST" });
  }
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${state.join.signaling_path}`;
  const signaling = new Signaling(url);
  state.signaling = signaling;
  wire(signaling);
  const joined = await signaling.join(state.join.token);
  attachSlides(signaling, joined);
  state.me = joined.you.id;
  state.grants = joined.grants;
  state.hands = joined.hands;
  state.chatLocked = joined.chat_locked;
  state.recording = joined.recording || "off";
  state.participants = new Map(joined.participants.map((p) => [p.id, p]));
  state.speakers = new Set();
  state.quality = new Map();
  showChat(joined.chat_history);
  // After a server restart our place (the stage) may be gone: publish only what we may.
  if (state.publishing && !mayPublish("camera")) await stopPublishing();

  const media = new MediaSession(signaling, state.join.ice_servers ?? []);
  state.media = media;
  media.addEventListener("track", (event) => {
    tiles.add(event.detail, participantName(event.detail.participant));
    tiles.speaking(state.speakers); // the speaker may have been named before their tile came
  });
  media.addEventListener("trackended", (event) => tiles.remove(event.detail));
  media.addEventListener("state", (event) => onMediaState(media, event.detail));
  await media.start(state.publishing ? state.localStream : null, state.publishing ? state.screenTrack : null);
  $("connection").textContent = "connected";
  if (moderator() && !encoder.loaded) loadStreamKey();
  if (moderator()) loadRemovals();
  render();
}

function onMediaState(media, connectionState) {
  if (media !== state.media) return;
  $("connection").textContent = connectionState === "connected" ? "live" : connectionState;
  if (connectionState === "failed") dropped();
  if (connectionState === "disconnected") {
    // Often recovers by itself within a few seconds; if not, start over.
    setTimeout(() => { if (media === state.media && media.pc.connectionState === "disconnected") dropped(); }, 5000);
  }
}

/** The connection was lost: tear down and join again until it works or the lesson is over. */
function dropped() {
  if (state.reconnecting || state.over) return;
  state.reconnecting = true;
  const old = state.signaling;
  state.signaling = null;
  old?.close();
  state.media?.close();
  state.media = null;
  tiles.clearRemote();
  banner("Reconnecting… The connection to the classroom was lost; trying again.", "reconnecting");
  $("connection").textContent = "reconnecting…";
  render();
  joinUntilConnected(false);
}

// Why the server refused or closed our place for good, by error code (the codes of
// ERROR_TEXTS that end it); the WebSocket close codes 4001-4005 name the same reasons
// (docs/protocol.md).
const FINAL = Object.fromEntries(
  Object.entries(ERROR_TEXTS).filter(([, { ends }]) => ends).map(([code, { ends, text }]) => [code, [ends, text]]),
);
const CLOSE_CODES = {
  4001: "removed_from_lesson",
  4002: "account_disabled",
  4003: "not_a_member",
  4004: "lesson_ended",
  4005: "lesson_cancelled",
};

async function joinUntilConnected(first) {
  for (let attempt = 0; !state.over; attempt++) {
    if (!first || attempt > 0) await sleep(Math.min(1000 * 2 ** attempt, 5000));
    try {
      await connect();
      state.reconnecting = false;
      banner("");
      return;
    } catch (error) {
      const failed = state.signaling;
      state.signaling = null;
      failed?.close();
      state.media?.close();
      state.media = null;
      if (error.redirected) return; // the session ended: on the way to sign in
      if (FINAL[error.code]) return finish(...FINAL[error.code]);
      if (error.status === 403 || error.status === 404 || error.status === 409) return finish("ended", error.message);
      if (error.code === "invalid_token") state.join = null; // ask for a fresh one
      const why = error.status === 0 || error.code === "closed" ? UNREACHABLE : `(${errorText(error)})`;
      banner(`${first ? "Connecting…" : "Reconnecting…"} ${why}`, "reconnecting");
    }
  }
}

function finish(reason, message) {
  state.over = reason;
  state.reconnecting = false;
  banner(message);
  $("connection").textContent = reason === "ended" ? "ended" : "disconnected";
  state.media?.close();
  state.media = null;
  tiles.clearRemote();
  state.preview?.getTracks().forEach((t) => t.stop());
  state.localStream?.getTracks().forEach((t) => t.stop());
  tiles.removeLocal();
  render();
}

function wire(signaling) {
  const on = (type, handler) => signaling.addEventListener(type, (event) => {
    if (signaling !== state.signaling) return; // a connection we already gave up
    handler(event.detail);
    render();
  });
  on("participant_joined", ({ participant }) => state.participants.set(participant.id, participant));
  on("participant_updated", ({ participant }) => {
    state.participants.set(participant.id, participant);
    tiles.rename(participant.id, participant.name);
  });
  on("participant_left", ({ participant, reason }) => {
    const who = state.participants.get(participant);
    if (reason === "removed" && who) state.removed.set(who.user_id, who.name);
    state.participants.delete(participant);
    state.quality.delete(participant);
    tiles.dropParticipant(participant);
  });
  on("hands", ({ hands }) => { state.hands = hands; });
  on("chat", ({ message }) => $("messages").append(el("li", { text: `${message.name}: ${message.text}` })));
  on("chat_locked", ({ locked }) => { state.chatLocked = locked; });
  on("recording", ({ state: recording }) => { state.recording = recording; });
  on("speakers", ({ speakers }) => { state.speakers = new Set(speakers); });
  on("connection_quality", ({ updates }) => {
    for (const { participant, quality } of updates) state.quality.set(participant, quality);
  });
  on("grants_changed", ({ grants }) => {
    const wasAllowed = mayPublish("camera");
    state.grants = grants;
    if (mayPublish("camera") && !wasAllowed) state.declinedStage = false;
    if (!mayPublish("camera") && state.publishing) stopPublishing().then(render);
  });
  on("muted", () => {
    banner("The teacher muted your microphone.");
    state.localStream?.getAudioTracks().forEach((t) => { t.enabled = false; });
  });
  on("encoder", showEncoder);
  on("removed", () => finish(...FINAL.removed_from_lesson));
  on("lesson_ended", () => finish(...FINAL.lesson_ended));
  signaling.addEventListener("close", (event) => {
    if (signaling !== state.signaling || state.over) return;
    // Closed for a reason the server holds (an account disabled, a cancelled lesson...):
    // joining again would be refused, so say why instead of reconnecting.
    const final = FINAL[CLOSE_CODES[event.detail.code]];
    if (final) finish(...final);
    else dropped();
  });
}

// --- Controls ------------------------------------------------------------------------------

$("publish").addEventListener("click", () => publish());
$("decline").addEventListener("click", () => { state.declinedStage = true; render(); });
for (const pick of ["camera-pick", "microphone-pick"]) {
  $(pick).addEventListener("change", () => startPreview().catch(() => {}));
}
$("live-camera-pick").addEventListener("change", (event) => switchDevice("videoinput", event.target.value));
$("live-microphone-pick").addEventListener("change", (event) => switchDevice("audioinput", event.target.value));
$("screen").addEventListener("click", () => toggleScreen());
$("hand").addEventListener("click", () => send({ type: state.hands.includes(state.me) ? "lower_hand" : "raise_hand" }).catch(() => {}));
$("unmute").addEventListener("click", async () => {
  await send({ type: "unmute" }).catch(() => {});
  state.localStream?.getAudioTracks().forEach((t) => { t.enabled = true; });
  banner("");
});
$("reveal-key").addEventListener("click", () => { encoder.shown = !encoder.shown; showStreamKey(); });
$("copy-key").addEventListener("click", () => copy(encoder.key, "The stream key"));
$("copy-url").addEventListener("click", () => copy(encoder.url, "The server URL"));
$("rotate-key").addEventListener("click", () => {
  if (!encoder.created || confirm("Make a new stream key? The old one stops working: update your encoder.")) loadStreamKey("POST");
});
$("mute-all").addEventListener("click", () => send({ type: "mute_all" }).catch(() => {}));
$("lock-chat").addEventListener("click", () => send({ type: "lock_chat", locked: !state.chatLocked }).catch(() => {}));
$("record").addEventListener("click", () => send({ type: state.recording === "off" || !state.recording ? "start_recording" : "stop_recording" }).catch(() => {}));
$("record-pause").addEventListener("click", () => send({ type: state.recording === "paused" ? "resume_recording" : "pause_recording" }).catch(() => {}));
$("end").addEventListener("click", () => {
  if (confirm("End the lesson for everyone?")) send({ type: "end_lesson" }).catch(() => {});
});
$("leave").addEventListener("click", () => {
  state.over = "left";
  state.signaling?.request({ type: "leave" }).catch(() => {});
  location.href = state.courseId ? `/course.html?id=${state.courseId}` : "/";
});
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("chat-text").value.trim();
  if (!text) return;
  send({ type: "chat", text }).then(() => { $("chat-text").value = ""; }, () => {});
});

async function main() {
  if (!session()?.token) {
    location.replace(signInUrl());
    return;
  }
  for (let attempt = 0; ; attempt++) {
    try {
      const lesson = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}`);
      $("title").textContent = lesson.title;
      document.title = `${lesson.title} · classroom`;
      state.courseId = lesson.course_id;
      $("home-link").href = `/course.html?id=${lesson.course_id}`;
      if (lesson.state === "ended" || lesson.state === "cancelled") {
        finish(...(lesson.state === "ended" ? FINAL.lesson_ended : FINAL.lesson_cancelled));
        return;
      }
      break;
    } catch (error) {
      if (error.redirected) return;
      banner(error.message);
      if (error.status !== 0) return;
      await sleep(Math.min(1000 * 2 ** attempt, 5000)); // unreachable: keep trying
    }
  }
  state.reconnecting = true;
  await joinUntilConnected(true);
}

main();
