// The live classroom page: /live.html?lesson=ID. Signs in with the session kept by the
// sign-in page (localStorage "classroom.session"), gets a join token from the REST API,
// joins the room over signaling and sends and receives media through the SFU.

import { Signaling } from "./signaling.js";
import { MediaSession } from "./media.js";
import { api, session } from "./api.js";

const $ = (id) => document.getElementById(id);
const state = {
  me: null,
  grants: null,
  participants: new Map(),
  hands: [],
  chatLocked: false,
  signaling: null,
  media: null,
  publishing: false,
};
window.classroom = state; // for tests and debugging: state.media.pc.getStats()

function banner(text) {
  $("banner").textContent = text;
  $("banner").hidden = !text;
}

function participantName(id) {
  return state.participants.get(id)?.name ?? `participant ${id}`;
}

function render() {
  const moderator = !!state.grants?.moderate;
  $("go-live").hidden = !(state.grants?.publish?.includes("camera")) || state.publishing || !moderator;
  $("hand").hidden = moderator;
  $("mute-all").hidden = !moderator;
  $("lock-chat").hidden = !moderator;
  $("end").hidden = !moderator;
  const raised = state.hands.includes(state.me);
  $("hand").textContent = raised ? "Lower hand" : "Raise hand";
  $("lock-chat").textContent = state.chatLocked ? "Unlock chat" : "Lock chat";
  $("chat-lock").hidden = !state.chatLocked;

  $("hands").replaceChildren(...state.hands.map((id) => {
    const li = document.createElement("li");
    li.textContent = `✋ ${participantName(id)}`;
    return li;
  }));
  $("people").replaceChildren(...[...state.participants.values()].map((p) => {
    const li = document.createElement("li");
    li.dataset.participant = p.id;
    const label = document.createElement("span");
    const flags = [p.role, p.on_stage && p.role === "student" ? "on stage" : "", p.muted ? "muted" : "", p.reconnecting ? "reconnecting" : ""]
      .filter(Boolean).join(", ");
    label.textContent = `${p.name}${p.id === state.me ? " (you)" : ""} — ${flags}`;
    li.append(label);
    if (moderator && p.id !== state.me && p.role === "student") {
      li.append(
        p.on_stage
          ? button("Take off stage", `Take ${p.name} off stage`, () => send({ type: "remove_from_stage", participant: p.id }))
          : button("Bring on stage", `Bring ${p.name} on stage`, () => send({ type: "invite_to_stage", participant: p.id })),
        button("Mute", `Mute ${p.name}`, () => send({ type: "mute", participant: p.id })),
        button("Remove", `Remove ${p.name}`, () => send({ type: "remove_participant", participant: p.id })),
      );
    }
    return li;
  }));
}

function button(text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

async function send(message) {
  try {
    return await state.signaling.request(message);
  } catch (error) {
    banner(error.message);
    throw error;
  }
}

function addChat(message) {
  const li = document.createElement("li");
  li.textContent = `${message.name}: ${message.text}`;
  $("messages").append(li);
}

function tile(key, label) {
  let element = document.querySelector(`[data-tile="${key}"]`);
  if (!element) {
    element = document.createElement("figure");
    element.dataset.tile = key;
    element.className = "tile";
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const caption = document.createElement("figcaption");
    element.append(video, caption);
    $("tiles").append(element);
  }
  element.querySelector("figcaption").textContent = label;
  return element;
}

function showTrack({ participant, track, kind }) {
  const element = tile(`p${participant}`, participantName(participant));
  const video = element.querySelector("video");
  const stream = video.srcObject instanceof MediaStream ? video.srcObject : new MediaStream();
  for (const old of stream.getTracks().filter((t) => t.kind === kind)) stream.removeTrack(old);
  stream.addTrack(track);
  video.srcObject = stream;
  video.play().catch(() => {});
}

async function camera() {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 360 } });
  } catch (error) {
    const reason = error.name === "NotAllowedError"
      ? "Camera and microphone access was denied. Allow it in the browser's site settings and try again."
      : error.name === "NotFoundError"
        ? "No camera or microphone was found. Connect one and try again."
        : `The camera could not be started: ${error.message}`;
    banner(reason);
    throw error;
  }
}

async function publish() {
  const stream = await camera();
  const preview = tile("me", "You");
  preview.querySelector("video").muted = true;
  preview.querySelector("video").srcObject = stream;
  await state.media.publish(stream);
  state.publishing = true;
  $("invite").hidden = true;
  render();
}

async function main() {
  const lesson = new URLSearchParams(location.search).get("lesson");
  if (!session()?.token) {
    location.href = `/?next=${encodeURIComponent(location.pathname + location.search)}`;
    return;
  }
  let join;
  try {
    const info = await api(`/api/v1/lessons/${encodeURIComponent(lesson)}`);
    $("title").textContent = info.title;
    join = await api(`/api/v1/lessons/${encodeURIComponent(lesson)}/join`, { method: "POST" });
  } catch (error) {
    if (error.status === 401) {
      location.href = `/?next=${encodeURIComponent(location.pathname + location.search)}`;
      return;
    }
    banner(error.message);
    return;
  }
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${join.signaling_path}`;
  const signaling = new Signaling(url);
  state.signaling = signaling;
  wire(signaling);
  const joined = await signaling.join(join.token).catch((error) => {
    banner(error.message);
    throw error;
  });
  state.me = joined.you.id;
  state.grants = joined.grants;
  state.hands = joined.hands;
  state.chatLocked = joined.chat_locked;
  for (const p of joined.participants) state.participants.set(p.id, p);
  joined.chat_history.forEach(addChat);
  $("connection").textContent = "connected";
  state.media = new MediaSession(signaling);
  state.media.addEventListener("track", (event) => showTrack(event.detail));
  state.media.addEventListener("state", (event) => {
    $("connection").textContent = event.detail === "connected" ? "live" : event.detail;
  });
  await state.media.start();
  render();
}

function wire(signaling) {
  const on = (type, handler) => signaling.addEventListener(type, (event) => { handler(event.detail); render(); });
  on("participant_joined", ({ participant }) => state.participants.set(participant.id, participant));
  on("participant_updated", ({ participant }) => state.participants.set(participant.id, participant));
  on("participant_left", ({ participant }) => {
    state.participants.delete(participant);
    document.querySelector(`[data-tile="p${participant}"]`)?.remove();
  });
  on("hands", ({ hands }) => { state.hands = hands; });
  on("chat", ({ message }) => addChat(message));
  on("chat_locked", ({ locked }) => { state.chatLocked = locked; });
  on("grants_changed", async ({ grants }) => {
    const wasAllowed = state.grants?.publish?.includes("camera");
    state.grants = grants;
    const allowed = grants.publish.includes("camera");
    if (allowed && !wasAllowed) $("invite").hidden = false;
    if (!allowed && state.publishing) {
      state.publishing = false;
      document.querySelector('[data-tile="me"]')?.remove();
      await state.media.unpublish();
    }
  });
  on("muted", () => {
    banner("The teacher muted your microphone.");
    state.media?.localStream?.getAudioTracks().forEach((t) => { t.enabled = false; });
  });
  on("removed", () => banner("You were removed from this lesson."));
  on("lesson_ended", () => banner("The lesson has ended."));
  signaling.addEventListener("close", () => { $("connection").textContent = "disconnected"; });
}

$("go-live").addEventListener("click", () => publish());
$("accept-stage").addEventListener("click", () => publish());
$("hand").addEventListener("click", () => send({ type: state.hands.includes(state.me) ? "lower_hand" : "raise_hand" }));
$("mute-all").addEventListener("click", () => send({ type: "mute_all" }));
$("lock-chat").addEventListener("click", () => send({ type: "lock_chat", locked: !state.chatLocked }));
$("end").addEventListener("click", () => send({ type: "end_lesson" }));
$("leave").addEventListener("click", () => { state.signaling?.request({ type: "leave" }).catch(() => {}); location.href = "/"; });
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("chat-text").value.trim();
  if (!text) return;
  send({ type: "chat", text }).then(() => { $("chat-text").value = ""; }, () => {});
});

main();
