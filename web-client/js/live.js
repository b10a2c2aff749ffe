// The live classroom page: /live.html?lesson=ID. Gets a join token from the REST API, joins
// the room over signaling and sends and receives media through the SFU. When the WebSocket or
// the peer connection drops, it shows "Reconnecting…" and joins again (with a fresh join
// token when the old one is about to expire): within the server's grace period it gets its
// place back, and it publishes again what it was publishing.
//
// The page is one screen: the stage (the large video, or a note: waiting for the teacher, the
// teacher reconnecting) with the other videos in a strip or a gallery, the side panel (People,
// Chat, Hands; Stream for teachers), and the control bar. Its parts: tiles.js (videos),
// people.js (rows and the hand queue), sidepanel.js (tabs), devicecheck.js (the device check),
// encoder.js and restream.js (teachers' streaming panels), breakout.js (breakout rooms: the
// server moves this page's WebSocket to another room and back; the page follows with a new
// media session, without a reload).

import { Signaling } from "./signaling.js";
import { MediaSession, VOICE } from "./media.js";
import { Tiles } from "./tiles.js";
import { deviceProblem, fillPickers, openDevice, openScreen } from "./devices.js";
import { UNREACHABLE, api, session, signInUrl } from "./api.js";
import { t } from "./i18n.js";
import { $, el, registerOfflinePage, when } from "./page.js";
import { RestreamPanel } from "./restream.js";
import { EncoderPanel } from "./encoder.js";
import { SidePanel } from "./sidepanel.js";
import { DeviceCheck } from "./devicecheck.js";
import { handChime } from "./sound.js";
import { handRow, personRow, qualityMark, removedRow } from "./people.js";
import { ERROR_TEXTS, errorText } from "./errors.js";
import { attachSlides } from "./slides.js";
import { attachBoard, holdsPen } from "./board.js";
import { attachPolls, showOwnQuizAnswers, watchPolls } from "./polls.js";
import { Breakouts, TEXT as BREAKOUT_TEXT } from "./breakout.js";

const lessonId = new URLSearchParams(location.search).get("lesson");
const state = {
  me: null,
  grants: null,
  lesson: null, // the REST lesson: title, starts_at, state, live_at, ended_at
  participants: new Map(),
  // A large room's list is partial (docs/protocol.md, "Large rooms"): students know the
  // teachers, the stage and hands; moderators page in everyone. The head count is the server's.
  partialRoster: false,
  participantCount: 0,
  hands: [],
  speakers: new Set(),
  quality: new Map(), // participant -> excellent | good | poor | lost
  chatLocked: false,
  join: null, // the REST join response: token, expires_at, signaling_path, signaling_url?
  signaling: null,
  media: null,
  localStream: null, // what we publish
  publishing: false,
  micOff: false, // we turned our own microphone off
  cameraOff: false,
  screenTrack: null,
  declinedStage: false,
  reconnecting: false,
  live: false, // the lesson has started (a teacher pressed Go live; the server's "live")
  everRecorded: false,
  stageNotes: new Map(), // participant -> "declined" | "left the stage" (student who left it themselves)
  takenOff: new Set(), // participants this page took off stage
  over: null, // why the page stopped for good: "left", "removed", "revoked", "ended"
  removed: new Map(), // moderators: user id -> name of those removed from the lesson
  handSound: localStorage.getItem("classroom.handSound") !== "off",
  chimes: 0, // raised-hand sounds played (for tests)
};
window.classroom = state; // for tests and debugging: state.media.pc.getStats()

const tiles = new Tiles($("main-tile"), $("tiles"), {
  isTeacher: (id) => state.participants.get(id)?.role === "teacher",
  onSize: (mid, width, height) => {
    // The server may not implement video_size yet: its error is of no consequence.
    state.signaling?.request({ type: "video_size", mid, width, height }).catch(() => {});
  },
  onChange: () => renderStage(),
});
const side = new SidePanel();
const restreamPanel = new RestreamPanel(lessonId, (text) => note(text));
const encoder = new EncoderPanel(lessonId, (text) => note(text));
const check = new DeviceCheck({ onProblem: (text) => banner(text, "", "device"), onReady: () => clearBanner("device") });
registerOfflinePage();
const breakouts = new Breakouts({
  send: (message) => send(message),
  note: (text) => note(text),
  moderator: () => moderator(),
  mayRecord: () => !!state.grants?.record,
  me: () => state.me,
  students: () => [...state.participants.values()].filter((p) => p.role === "student").map(({ id, name }) => ({ id, name })),
});
breakouts.mount($("panel-people"));

// The banner says one thing at a time; `cause` names what it is about, so that it clears
// when that ends (clearBanner) and not when something else does.
// A one-off message (an action refused, a key copied) has no cause that ends: it goes after a
// while.
let bannerCause = "";
let bannerTimer = null;
function banner(text, kind = "", cause = "") {
  $("banner").textContent = text;
  $("banner").className = `banner ${kind}`;
  $("banner").hidden = !text;
  bannerCause = text ? cause : "";
  clearTimeout(bannerTimer);
  if (text && cause === "note") bannerTimer = setTimeout(() => clearBanner("note"), 10_000);
}
const note = (text) => banner(text, "", "note");
function clearBanner(cause) {
  if (bannerCause === cause) banner("");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const moderator = () => !!state.grants?.moderate;
const mayPublish = (source) => !!state.grants?.publish?.includes(source);
const participantName = (id) => state.participants.get(id)?.name ?? t("live.participantNumber", { id: String(id) });
const myself = () => state.participants.get(state.me);

// --- Rendering -----------------------------------------------------------------------------

const peopleView = {
  state,
  get moderator() { return moderator(); },
  hasAudio: (id) => tiles.hasAudio(id),
  send: (message) => send(message),
  stageNote: (id) => state.stageNotes.get(id) ?? "",
  holdsPen: (id) => holdsPen(id),
};

function render() {
  const me = myself();
  const over = !!state.over;
  const setupWanted = !over && !state.publishing && mayPublish("camera") && (moderator() || !state.declinedStage);
  showSetup(setupWanted);
  renderControls(me, over);

  const people = [...state.participants.values()];
  const headCount = state.partialRoster ? Math.max(state.participantCount, people.length) : people.length;
  $("people-count").textContent = headCount ? `(${headCount})` : "";
  const unlisted = headCount - people.length;
  $("people-more").hidden = unlisted <= 0;
  $("people-more").textContent = unlisted > 0 ? t("live.othersInLesson", { count: String(unlisted) }) : "";
  // Rows are rebuilt only when what they show changed (speakers change a few times a second):
  // a button being clicked or holding the keyboard focus stays in place.
  const rowOf = (p) => [p, state.speakers.has(p.id), state.quality.get(p.id), state.hands.includes(p.id), state.stageNotes.get(p.id), tiles.hasAudio(p.id), holdsPen(p.id)];
  refresh("people", [moderator(), state.me, ...people.map(rowOf)], () => people.map((p) => personRow(p, peopleView)));
  refresh("hands", [moderator(), state.hands, state.hands.map((id) => participantName(id))],
    () => state.hands.map((id, i) => handRow(id, i + 1, peopleView)));
  $("hands-empty").hidden = state.hands.length > 0;
  side.hands = state.hands.length;
  $("hand-sound").hidden = !moderator();
  $("hand-sound").setAttribute("aria-pressed", String(state.handSound));
  $("removed-section").hidden = !moderator() || state.removed.size === 0 || over;
  $("removed").replaceChildren(...[...state.removed].map(([userId, name]) => removedRow(userId, name, readmit)));
  $("mute-all").hidden = !moderator() || over;

  // The chat: locked for students (input off, with a notice), open to moderators.
  $("lock-chat").hidden = !moderator() || over;
  $("lock-chat").textContent = state.chatLocked ? t("live.unlockChat") : t("live.lockChat");
  $("chat-lock").hidden = !state.chatLocked;
  const silenced = (state.chatLocked && !moderator()) || over || !state.grants?.chat;
  $("chat-text").disabled = silenced;
  $("chat-send").disabled = silenced;
  $("chat-locked-note").hidden = !(state.chatLocked && !moderator()) || over;

  tiles.speaking(state.speakers);
  tiles.quality((id) => qualityMark(state.quality.get(id)));
  breakouts.render();
  restreamPanel.show(me?.role === "teacher" && !over);
  side.showStream(moderator() && !over && (encoder.loaded || me?.role === "teacher"));
  renderStage();
}

/** Replaces the children of `id` with `build()` when `data` differs from the last time. */
function refresh(id, data, build) {
  const signature = JSON.stringify(data);
  if ($(id).dataset.signature === signature) return;
  $(id).dataset.signature = signature;
  $(id).replaceChildren(...build());
}

function renderControls(me, over) {
  const live = !over && !!state.grants;
  const serverMuted = !!me?.muted;
  const micMuted = serverMuted || state.micOff;
  const hasMic = !!state.localStream?.getAudioTracks().length;
  const hasCamera = !!state.localStream?.getVideoTracks().length;
  control("mic", live && state.publishing && hasMic, micMuted ? t("live.unmuteMyMicrophone") : t("live.muteMyMicrophone"), micMuted);
  control("camera", live && state.publishing && hasCamera, state.cameraOff ? t("live.turnCameraOn") : t("live.turnCameraOff"), state.cameraOff);
  control("screen", live && state.publishing && mayPublish("screen"), state.screenTrack ? t("live.stopSharingScreen") : t("live.shareScreen"));
  $("screen").classList.toggle("active", !!state.screenTrack);
  // Students raise a hand, or leave the stage they are on; teachers leave the stage by
  // stopping their camera and microphone (the device check comes back to go live again).
  const student = live && !moderator();
  const handText = me?.on_stage || !student ? t("live.leaveStage") : state.hands.includes(state.me) ? t("live.lowerHand") : t("live.raiseHand");
  control("hand", student || (live && state.publishing), handText);
  $("hand").classList.toggle("active", state.hands.includes(state.me));
  // Everyone sees whether the lesson is recorded; teachers (the `record` grant) run it.
  const recording = state.recording || "off";
  $("recording").hidden = recording === "off" || over;
  $("recording").textContent = recording === "paused" ? t("live.recordingPaused") : t("live.recordingOn");
  const mayRecord = !!state.grants?.record && !over;
  control("record", mayRecord, recording === "off" ? t("live.startRecording") : t("live.stopRecording"));
  $("record").classList.toggle("active", recording !== "off");
  // A breakout room is recorded or not, as the lesson's breakout panel says: no pause there.
  $("record-pause").hidden = !mayRecord || recording === "off" || !!breakouts.place;
  $("record-pause").textContent = recording === "paused" ? t("live.resumeRecording") : t("live.recordPause");
  $("devices").hidden = !state.publishing;
  $("more").hidden = over;
  $("end").hidden = !moderator() || over;
  control("go-live", live && moderator() && !state.live, t("live.goLive"));
  // After the lesson ended the end screen leads back to the course.
  control("leave", state.over !== "ended", over ? t("common.backToCourse") : t("live.leave"));
}

/** A control bar button: shown or not, its label (also its accessible name), pressed or not. */
function control(id, shown, label, pressed) {
  const button = $(id);
  button.hidden = !shown;
  button.querySelector(".label").textContent = label;
  button.title = label;
  if (pressed === undefined) button.removeAttribute("aria-pressed");
  else button.setAttribute("aria-pressed", String(pressed));
}

/** What the stage shows when no video fills it: waiting, reconnecting, or the teacher gone. */
function renderStage() {
  const teachers = [...state.participants.values()].filter((p) => p.role === "teacher");
  const reconnecting = teachers.length > 0 && teachers.every((p) => p.reconnecting);
  let text = "";
  let detail = "";
  if (state.over || !$("setup").hidden) {
    text = "";
  } else if (!state.live && moderator()) {
    text = t("live.notStarted");
    detail = t("live.notStartedDetail");
  } else if (!state.live) {
    text = teachers.length ? t("live.teacherGettingReady") : t("live.waitingForTeacher");
    detail = state.lesson ? t("live.startsAt", { when: when(state.lesson.starts_at) }) : "";
  } else if (breakouts.place && tiles.empty) {
    text = BREAKOUT_TEXT.youAreIn(breakouts.placeName(breakouts.place));
    detail = BREAKOUT_TEXT.stageDetail;
  } else if (reconnecting && !moderator()) {
    text = t("live.teacherReconnecting");
    detail = t("live.stayHereMoment");
  } else if (tiles.empty) {
    if (moderator()) {
      text = t("live.nothingOnStage");
      detail = t("live.nothingOnStageDetail");
    } else if (teachers.length === 0 && !state.live) {
      text = t("live.waitingForTeacher");
      detail = state.lesson ? t("live.startsAt", { when: when(state.lesson.starts_at) }) : "";
    } else if (teachers.length === 0) {
      text = t("live.teacherLeft");
      detail = t("live.stayHereBack");
    } else {
      text = t("live.teacherGettingReady");
      detail = t("live.startsInMoment");
    }
  }
  $("stage-note").hidden = !text;
  $("stage-note-text").textContent = text;
  $("stage-note-detail").textContent = detail;
  $("stage-note").classList.toggle("over-video", !!text && (!tiles.empty || !state.live));
  const gallery = tiles.view === "gallery" && !text && $("setup").hidden;
  $("stage-area").classList.toggle("gallery", gallery);
  $("view").textContent = tiles.view === "gallery" ? t("live.speakerView") : t("live.view");
  $("view").hidden = tiles.empty;
  $("fullscreen").hidden = tiles.empty || !(document.fullscreenEnabled || $("main-tile").querySelector("video")?.webkitEnterFullscreen);
  $("fullscreen").textContent = document.fullscreenElement ? t("live.exitFullscreen") : t("live.fullscreen");
}

/** Moderators: who was removed from this lesson (kept by the server across reconnects). */
async function loadRemovals() {
  try {
    const removals = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}/removals`);
    state.removed = new Map(removals.map((r) => [r.user_id, r.name]));
    render();
  } catch (error) {
    if (!error.redirected) note(t("live.removedListFailed", { error: error.message }));
  }
}

async function readmit(userId, name) {
  try {
    await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}/removals/${encodeURIComponent(userId)}`, { method: "DELETE" });
    note(t("live.canJoinAgain", { name }));
  } catch (error) {
    if (error.redirected) return;
    if (error.status !== 404) return note(t("live.letBackFailed", { name, error: error.message }));
  }
  state.removed.delete(userId);
  render();
}

async function send(message) {
  if (!state.signaling) throw new Error(t("live.notConnected"));
  try {
    return await state.signaling.request(message);
  } catch (error) {
    // A refusal for the locked chat lasts as long as the lock; others go after a while.
    if (error.code === "chat_locked") banner(errorText(error), "", "chat");
    else if (error.code !== "closed") note(errorText(error));
    throw error;
  }
}

/** The name on one's own video tile. */
const ownTileName = () => (myself() ? t("live.ownTile", { name: myself().name }) : t("live.you"));

const chatLine = (m) => el("li", { text: t("live.chatLine", { name: m.name, text: m.text }) });

// --- Camera, microphone, screen ------------------------------------------------------------

function showSetup(show) {
  const invited = !moderator();
  $("invite").hidden = !invited;
  $("decline").hidden = !invited;
  $("publish").textContent = invited || state.live ? t("live.turnOnCameraAndMicrophone") : t("live.publish");
  check.show(show);
}

async function publish() {
  const stream = await check.take();
  if (!stream || !state.media) return;
  state.localStream = stream;
  state.publishing = true;
  state.micOff = false;
  state.cameraOff = false;
  tiles.me = state.me;
  tiles.showLocal(stream, ownTileName());
  render();
  fillPickers($("live-camera-pick"), $("live-microphone-pick"), stream).catch(() => {});
  await state.media.publish(stream).catch((error) => note(t("live.goingLiveFailed", { error: error.message })));
}

/** Another camera or microphone while live: the same m-line carries the new device's track. */
async function switchDevice(kind, deviceId) {
  const stream = state.localStream;
  const mediaKind = kind === "audioinput" ? "audio" : "video";
  const old = stream?.getTracks().find((t) => t.kind === mediaKind);
  if (!stream || old?.getSettings().deviceId === deviceId) return;
  let track;
  try {
    track = await openDevice(kind, deviceId);
  } catch (error) {
    note(deviceProblem(error, mediaKind === "audio" ? "microphone" : "camera"));
    await fillPickers($("live-camera-pick"), $("live-microphone-pick"), stream);
    return;
  }
  if (stream !== state.localStream) { track.stop(); return; } // stopped publishing meanwhile
  if (old) {
    track.enabled = old.enabled;
    stream.removeTrack(old);
  }
  stream.addTrack(track);
  await state.media?.replaceLocal(track).catch((error) => note(t("live.switchingFailed", { error: error.message })));
  old?.stop();
  if (mediaKind === "video") tiles.showLocal(stream, ownTileName());
}

/** Starts the lesson for everyone (students get media from now on; the recording starts). */
function goLive() {
  if (state.live) return;
  send({ type: "go_live" }).then(() => { state.live = true; render(); }, () => {});
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
    if (error.name !== "NotAllowedError") note(deviceProblem(error, "screen"));
    return;
  }
  state.screenTrack = track;
  track.addEventListener("ended", () => { if (state.screenTrack === track) toggleScreen(); });
  render();
  await state.media?.shareScreen(track).catch((error) => note(t("live.screenSharingFailed", { error: error.message })));
}

/** Our microphone on or off; after a moderator muted it, on again asks the server too. */
async function toggleMic() {
  const muted = !!myself()?.muted || state.micOff;
  if (muted) {
    if (myself()?.muted) await send({ type: "unmute" }).catch(() => {});
    state.micOff = false;
    clearBanner("muted");
  } else {
    state.micOff = true;
  }
  state.localStream?.getAudioTracks().forEach((t) => { t.enabled = !state.micOff; });
  render();
}

function toggleCamera() {
  state.cameraOff = !state.cameraOff;
  state.localStream?.getVideoTracks().forEach((t) => { t.enabled = !state.cameraOff; });
  tiles.cameraOff(state.cameraOff);
  render();
}

// --- Connecting and reconnecting -----------------------------------------------------------

/** Joins (again): a join token, the WebSocket, the room, a new media session. */
async function connect() {
  // Reuse the join token while it is valid for a while longer; else ask the API for a fresh one.
  if (!state.join || Date.parse(state.join.expires_at) - Date.now() < 15_000) {
    state.join = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}/join`, { method: "POST" });
  }
  // Several nodes: the lesson's room may be on another node, which the join names.
  const url = state.join.signaling_url
    ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${state.join.signaling_path}`;
  const signaling = new Signaling(url);
  state.signaling = signaling;
  wire(signaling);
  watchPolls(signaling);
  // The lesson starts when the teacher presses Go live; a reload (or a restarted server) of a
  // lesson already live goes on at once.
  const joined = await signaling.join(state.join.token, { goLive: state.live });
  await enterRoom(signaling, joined);
}

/**
 * The room as `joined` shows it, and a new media session with it: after joining, and after
 * the server moved this connection to a breakout room or back (`moved`).
 */
async function enterRoom(signaling, joined) {
  attachSlides(signaling, joined);
  attachBoard(signaling, joined, { onPens: () => render() });
  attachPolls(signaling, joined);
  state.me = joined.you.id;
  tiles.me = state.me;
  state.grants = joined.grants;
  state.hands = joined.hands;
  state.chatLocked = joined.chat_locked;
  state.recording = joined.recording || "off";
  state.everRecorded ||= state.recording !== "off";
  state.participants = new Map(joined.participants.map((p) => [p.id, p]));
  breakouts.rememberNames(joined.participants);
  state.partialRoster = !!joined.partial_roster;
  state.participantCount = joined.participant_count ?? joined.participants.length;
  if (state.partialRoster && moderator()) pageInParticipants(signaling);
  state.live = joined.live;
  state.speakers = new Set();
  state.quality = new Map();
  $("messages").replaceChildren(...joined.chat_history.map(chatLine));
  // After a server restart our place (the stage) may be gone: publish only what we may.
  if (state.publishing && !mayPublish("camera")) await stopPublishing();

  const media = new MediaSession(signaling, state.join.ice_servers ?? []);
  state.media = media;
  media.addEventListener("track", (event) => {
    // A moderator's voice to every breakout room has no participant in this room.
    const voice = event.detail.participant === VOICE;
    tiles.add(event.detail, voice ? BREAKOUT_TEXT.voiceTile : participantName(event.detail.participant));
    render(); // the speaker, quality and "can be muted" of the new tile
  });
  media.addEventListener("trackended", (event) => { tiles.remove(event.detail); render(); });
  media.addEventListener("state", (event) => onMediaState(media, event.detail));
  await media.start(state.publishing ? state.localStream : null, state.publishing ? state.screenTrack : null);
  $("connection").textContent = t("live.stateConnected");
  if (moderator() && !encoder.loaded) encoder.load().then(render);
  if (moderator()) loadRemovals();
  render();
}

/**
 * A moderator in a large room pages in the participants its `joined` left out, a page at a
 * time; joins and leaves meanwhile arrive as events (moderators hear of everyone).
 */
async function pageInParticipants(signaling) {
  let after;
  do {
    state.rosterNext = null;
    try {
      await signaling.request({ type: "list_participants", ...(after ? { after } : {}) });
    } catch {
      return; // the connection went: the next `joined` starts again
    }
    after = state.rosterNext;
  } while (after != null && signaling === state.signaling);
  render();
}

// The peer connection's states (RTCPeerConnectionState) as the status pill shows them.
const CONNECTION_STATES = {
  new: () => t("live.stateConnecting"),
  connecting: () => t("live.stateConnecting"),
  connected: () => t("live.stateLive"),
  disconnected: () => t("live.stateDisconnected"),
  failed: () => t("live.stateFailed"),
  closed: () => t("live.stateClosed"),
};
const connectionText = (connectionState) => CONNECTION_STATES[connectionState]?.() ?? connectionState;

function onMediaState(media, connectionState) {
  if (media !== state.media) return;
  $("connection").textContent = connectionText(connectionState);
  if (connectionState === "failed") dropped();
  if (connectionState === "disconnected") {
    // Often recovers by itself within a few seconds; if not, start over.
    setTimeout(() => { if (media === state.media && media.pc.connectionState === "disconnected") dropped(); }, 5000);
  }
}

/** The connection was lost: tear down and join again until it works or the lesson is over
 * (`at_once`: the server sent us elsewhere, so the first try does not wait). */
function dropped({ at_once = false } = {}) {
  if (state.reconnecting || state.over) return;
  state.reconnecting = true;
  const old = state.signaling;
  state.signaling = null;
  old?.close();
  state.media?.close();
  state.media = null;
  tiles.clearRemote();
  banner(t("live.connectionLost"), "reconnecting", "connection");
  $("connection").textContent = t("live.stateReconnecting");
  render();
  joinUntilConnected(false, { atOnce: at_once });
}

// Why the server refused or closed our place for good, by error code (the codes of
// ERROR_TEXTS that end it); the WebSocket close codes 4001-4005 name the same reasons
// (docs/protocol.md).
const FINAL = Object.fromEntries(
  Object.entries(ERROR_TEXTS).filter(([, { ends }]) => ends).map(([code, { ends, text }]) => [code, [ends, text()]]),
);
const DRAINING = 1012;
const CLOSE_CODES = {
  4001: "removed_from_lesson",
  4002: "account_disabled",
  4003: "not_a_member",
  4004: "lesson_ended",
  4005: "lesson_cancelled",
};

/** `first`: the page's first join (its banner says "Connecting"); `atOnce`: try without
 * waiting first (the first join, or the server sent us to join again). */
async function joinUntilConnected(first, { atOnce = first } = {}) {
  for (let attempt = 0; !state.over; attempt++) {
    if (!atOnce || attempt > 0) await sleep(Math.min(1000 * 2 ** attempt, 5000));
    try {
      await connect();
      state.reconnecting = false;
      clearBanner("connection");
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
      // A fresh join: the token expired, or the room moved to another node.
      if (["invalid_token", "wrong_node", "server_draining"].includes(error.code)) state.join = null;
      const why = error.status === 0 || error.code === "closed" ? UNREACHABLE : `(${errorText(error)})`;
      banner(first ? t("live.connectingWhy", { why }) : t("live.reconnectingWhy", { why }), "reconnecting", "connection");
    }
  }
}

/** Our place in the lesson is over: the end screen (lesson ended) or why, in the banner. */
function finish(reason, message) {
  state.over = reason;
  state.reconnecting = false;
  $("connection").textContent = reason === "ended" ? t("live.stateEnded") : t("live.stateDisconnected");
  state.media?.close();
  state.media = null;
  state.signaling?.close();
  tiles.clearRemote();
  check.stop();
  state.localStream?.getTracks().forEach((t) => t.stop());
  state.screenTrack?.stop();
  tiles.removeLocal();
  if (reason === "ended") {
    banner("");
    showEnded(message);
  } else {
    banner(message);
  }
  render();
}

/** The end screen: how long the lesson lasted, where its replay will be. */
async function showEnded(message) {
  $("ended-heading").textContent = message;
  $("ended").hidden = false;
  $("live").classList.add("over");
  $("stage-area").hidden = true;
  $("side").hidden = true;
  $("panel-toggle").hidden = true;
  $("controls").hidden = true;
  $("ended-replay").textContent = state.everRecorded
    ? t("live.replayWillAppear")
    : t("live.notRecorded");
  showOwnQuizAnswers($("ended"));
  // The end as the server recorded it; just now, when it has not yet written it down.
  const heardAt = new Date().toISOString();
  try {
    const lesson = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}`);
    const ended = lesson.ended_at ?? heardAt;
    if (lesson.live_at) {
      const minutes = Math.max(1, Math.round((Date.parse(ended) - Date.parse(lesson.live_at)) / 60_000));
      $("ended-duration").textContent = t("live.lasted", { count: minutes, from: when(lesson.live_at), to: when(ended) });
    }
  } catch {
    // The duration is a nicety: the screen stands without it.
  }
}

function wire(signaling) {
  const on = (type, handler) => signaling.addEventListener(type, (event) => {
    if (signaling !== state.signaling) return; // a connection we already gave up
    handler(event.detail);
    render();
  });
  on("participant_joined", ({ participant }) => {
    state.participants.set(participant.id, participant);
    breakouts.rememberNames([participant]);
  });
  on("moved", ({ to }) => moveTo(to));
  // Sent only once the room is large: from then on the list is partial (a `joined` before
  // the room grew was whole, and the joins after it are not all told).
  on("participant_count", ({ count }) => {
    state.participantCount = count;
    state.partialRoster = true;
  });
  on("participants_page", ({ participants, next }) => {
    for (const p of participants) state.participants.set(p.id, p);
    breakouts.rememberNames(participants);
    state.rosterNext = next ?? null;
  });
  on("lesson_live", () => {
    state.live = true;
    clearBanner("live");
  });
  on("participant_updated", ({ participant }) => {
    const before = state.participants.get(participant.id);
    state.participants.set(participant.id, participant);
    tiles.rename(participant.id, participant.name);
    noteStage(before, participant);
    if (participant.id === state.me && !participant.muted) clearBanner("muted");
  });
  on("participant_left", ({ participant, reason }) => {
    const who = state.participants.get(participant);
    if (reason === "removed" && who) state.removed.set(who.user_id, who.name);
    state.participants.delete(participant);
    state.quality.delete(participant);
    state.stageNotes.delete(participant);
    tiles.dropParticipant(participant);
  });
  on("hands", ({ hands }) => {
    const raised = hands.some((id) => !state.hands.includes(id) && id !== state.me);
    state.hands = hands;
    if (raised && moderator() && state.handSound) {
      state.chimes += 1;
      handChime(tiles.sinkId).catch(() => {});
    }
  });
  on("chat", ({ message }) => {
    $("messages").append(chatLine(message));
    $("messages").lastElementChild.scrollIntoView({ block: "nearest" });
    if (message.from !== state.me) side.chatArrived();
  });
  on("chat_locked", ({ locked }) => {
    state.chatLocked = locked;
    if (!locked) clearBanner("chat");
  });
  on("recording", ({ state: recording }) => {
    state.recording = recording;
    state.everRecorded ||= recording !== "off";
  });
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
    banner(t("live.teacherMutedYou"), "", "muted");
    state.localStream?.getAudioTracks().forEach((t) => { t.enabled = false; });
  });
  on("encoder", (news) => encoder.update(news));
  breakouts.wire(signaling, (s) => s === state.signaling);
  on("removed", () => finish(...FINAL.removed_from_lesson));
  on("lesson_ended", () => finish(...FINAL.lesson_ended));
  signaling.addEventListener("close", (event) => {
    if (signaling !== state.signaling || state.over) return;
    // Closed for a reason the server holds (an account disabled, a cancelled lesson...):
    // joining again would be refused, so say why instead of reconnecting.
    const final = FINAL[CLOSE_CODES[event.detail.code]];
    if (final) finish(...final);
    // 1012: the server drains before a restart; a fresh REST join names where to go, at once.
    else if (event.detail.code === DRAINING) {
      state.join = null;
      dropped({ at_once: true });
    } else dropped();
  });
}

/**
 * Breakout rooms: the server moved this connection to room `to` (null: the main room). The
 * media session of the room we leave goes; the new room's `joined` comes next on the same
 * WebSocket, and a new media session starts there (what we publish goes along when we may).
 */
function moveTo(to) {
  const old = state.signaling;
  if (!old) return;
  const moving = old.moveOn(); // now, before the next message arrives
  state.signaling = null;
  breakouts.moved(to);
  state.media?.close();
  state.media = null;
  tiles.clearRemote();
  banner(BREAKOUT_TEXT.moving(breakouts.placeName(to)), "", "moving");
  moving.then(async ({ signaling, joined }) => {
    state.signaling = signaling;
    wire(signaling);
    watchPolls(signaling);
    await enterRoom(signaling, joined);
    clearBanner("moving");
  }).catch(() => dropped());
}

/** A student who goes off stage without being taken off: declined (never sent), or left. */
function noteStage(before, after) {
  if (after.on_stage) {
    state.stageNotes.delete(after.id);
    state.takenOff.delete(after.id);
  } else if (before?.on_stage && after.role === "student") {
    if (state.takenOff.delete(after.id)) state.stageNotes.delete(after.id);
    else state.stageNotes.set(after.id, tiles.hasAudio(after.id) || after.id === state.me && state.publishing ? t("live.leftTheStage") : t("live.declinedTheStage"));
  }
}

// --- Controls ------------------------------------------------------------------------------

$("publish").addEventListener("click", async () => {
  const start = moderator() && !state.live;
  await publish();
  // Without a camera (denied, none) the teacher may still start with Go live in the bar.
  if (start && state.publishing) goLive();
});
$("go-live").addEventListener("click", () => goLive());
$("decline").addEventListener("click", () => {
  state.declinedStage = true;
  send({ type: "leave_stage" }).catch(() => {});
  render();
});
check.onSpeaker = (sinkId) => tiles.setSink(sinkId);
check.wire();
$("live-camera-pick").addEventListener("change", (event) => switchDevice("videoinput", event.target.value));
$("live-microphone-pick").addEventListener("change", (event) => switchDevice("audioinput", event.target.value));
$("live-speaker-pick").addEventListener("change", (event) => check.chooseSpeaker(event.target.value));
$("screen").addEventListener("click", () => toggleScreen());
$("mic").addEventListener("click", () => toggleMic());
$("camera").addEventListener("click", () => toggleCamera());
$("hand").addEventListener("click", () => {
  if (moderator()) {
    stopPublishing().then(render);
  } else if (myself()?.on_stage) {
    state.declinedStage = true;
    send({ type: "leave_stage" }).catch(() => {});
  } else {
    send({ type: state.hands.includes(state.me) ? "lower_hand" : "raise_hand" }).catch(() => {});
  }
});
$("hand-sound").addEventListener("click", () => {
  state.handSound = !state.handSound;
  localStorage.setItem("classroom.handSound", state.handSound ? "on" : "off");
  render();
});
$("mute-all").addEventListener("click", () => send({ type: "mute_all" }).catch(() => {}));
$("lock-chat").addEventListener("click", () => send({ type: "lock_chat", locked: !state.chatLocked }).catch(() => {}));
$("record").addEventListener("click", () => {
  const start = state.recording === "off" || !state.recording;
  // In a breakout room, the room's recording is the main room's to run (`record_breakout`).
  const message = breakouts.place
    ? { type: "record_breakout", room: breakouts.place.index, on: start }
    : { type: start ? "start_recording" : "stop_recording" };
  send(message).catch(() => {});
});
$("record-pause").addEventListener("click", () => send({ type: state.recording === "paused" ? "resume_recording" : "pause_recording" }).catch(() => {}));
$("end").addEventListener("click", () => {
  if (confirm(t("live.confirmEnd"))) send({ type: "end_lesson" }).catch(() => {});
});
$("leave").addEventListener("click", () => {
  if (!state.over) state.signaling?.request({ type: "leave" }).catch(() => {});
  state.over ||= "left";
  location.href = state.lesson ? `/course.html?id=${state.lesson.course_id}` : "/";
});
$("view").addEventListener("click", () => tiles.setView(tiles.view === "gallery" ? "speaker" : "gallery"));
$("fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) return document.exitFullscreen().catch(() => {});
  const target = tiles.view === "gallery" ? $("stage-area") : $("stage");
  if (document.fullscreenEnabled) return target.requestFullscreen().catch(() => {});
  // iPhones: only a video goes fullscreen (the shared screen, or whoever is large).
  $("main-tile").querySelector("video")?.webkitEnterFullscreen?.();
});
document.addEventListener("fullscreenchange", () => renderStage());
$("chat-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("chat-text").value.trim();
  if (!text) return;
  send({ type: "chat", text }).then(() => { $("chat-text").value = ""; }, () => {});
});
// The More menu closes when something else is clicked.
document.addEventListener("click", (event) => {
  if ($("more").open && !$("more").contains(event.target)) $("more").open = false;
});
// A panel with the keyboard: Escape closes the More menu and the phone's drawer.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  $("more").open = false;
  side.open(false);
});

async function main() {
  if (!session()?.token) {
    location.replace(signInUrl());
    return;
  }
  for (let attempt = 0; ; attempt++) {
    try {
      const lesson = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}`);
      state.lesson = lesson;
      state.live = lesson.state === "live";
      $("title").textContent = lesson.title;
      document.title = t("course.documentTitle", { title: lesson.title });
      $("home-link").href = `/course.html?id=${lesson.course_id}`;
      $("ended-back").href = `/course.html?id=${lesson.course_id}`;
      if (lesson.state === "ended" || lesson.state === "cancelled") {
        finish(...(lesson.state === "ended" ? FINAL.lesson_ended : FINAL.lesson_cancelled));
        return;
      }
      break;
    } catch (error) {
      if (error.redirected) return;
      banner(error.message, "", "connection");
      if (error.status !== 0) return;
      await sleep(Math.min(1000 * 2 ** attempt, 5000)); // unreachable: keep trying
    }
  }
  render();
  state.reconnecting = true;
  await joinUntilConnected(true);
}

main();
