// Breakout rooms on the live page (docs/protocol.md, "Breakout rooms"): the teacher's panel
// (open rooms at random, by hand or for students to choose, with a timer; see who is where,
// move, visit, speak to every room, close them) and the student's view (their room, the timer,
// choosing a room, calling the teacher). The panel sits at the top of the People tab.
//
// Moving is the server's: it moves this page's WebSocket and sends `moved`; live.js then
// follows into the new room (a new media session, the room's `joined`) without a reload.
// Participant ids in `breakouts` are the main room's: the names of the main room are kept here
// while the page is away from it.

import { t } from "./i18n.js";
import { el } from "./page.js";

// Every text this panel shows, from the catalogues (web-client/i18n, `breakout.*`).
export const TEXT = {
  get heading() { return t("breakout.heading"); },
  get rooms() { return t("breakout.rooms"); },
  get mode() { return t("breakout.mode"); },
  get random() { return t("breakout.random"); },
  get byHand() { return t("breakout.byHand"); },
  get choose() { return t("breakout.choose"); },
  get minutes() { return t("breakout.minutes"); },
  get open() { return t("breakout.open"); },
  roomName: (index) => t("breakout.roomName", { n: index + 1 }),
  get mainRoom() { return t("breakout.mainRoom"); },
  get nobody() { return t("breakout.nobody"); },
  get visit() { return t("breakout.visit"); },
  get leaveVisit() { return t("breakout.leaveVisit"); },
  moveTo: (name) => t("breakout.moveTo", { name }),
  get broadcastLabel() { return t("breakout.broadcastLabel"); },
  get broadcast() { return t("breakout.broadcast"); },
  get close() { return t("breakout.close"); },
  get closeConfirm() { return t("breakout.closeConfirm"); },
  youAreIn: (room) => t("breakout.youAreIn", { room }),
  visiting: (room) => t("breakout.visiting", { room }),
  get callTeacher() { return t("breakout.callTeacher"); },
  get called() { return t("breakout.called"); },
  join: (room) => t("breakout.join", { room }),
  timeLeft: (text) => t("breakout.timeLeft", { time: text }),
  ending: (seconds) => t("breakout.ending", { seconds }),
  moving: (room) => t("breakout.moving", { room }),
  message: (name, text) => t("breakout.message", { name, text }),
  calledBy: (name, room) => t("breakout.calledBy", { name, room }),
  get assignment() { return t("breakout.assignment"); },
  get unassigned() { return t("breakout.unassigned"); },
  get stageDetail() { return t("breakout.stageDetail"); },
  get speakToAll() { return t("breakout.speakToAll"); },
  get stopSpeaking() { return t("breakout.stopSpeaking"); },
  speakingToAll: (name) => t("breakout.speakingToAll", { name }),
  get voiceTile() { return t("breakout.voiceTile"); },
  speakers: (names) => t("breakout.speakers", { names }),
  get recordAll() { return t("breakout.recordAll"); },
  get recorded() { return t("breakout.recorded"); },
  record: (room) => t("breakout.record", { room }),
  stopRecording: (room) => t("breakout.stopRecording", { room }),
};

const clock = (seconds) => `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;

export class Breakouts {
  /**
   * `page`: what the panel needs of live.js: `send(message)` (a request; refusals shown there),
   * `note(text)`, `moderator()`, `mayRecord()` (the `record` grant), `students()` (the main
   * room's students, `[{id, name}]`).
   */
  constructor(page) {
    this.page = page;
    this.status = null; // the last `breakouts`
    this.place = null; // where this page is: null (main room) or {index, room}
    this.names = new Map(); // main-room id -> name
    this.endsAt = null; // performance.now() when the timer ends
    this.speakers = new Map(); // moderators: room index -> main-room ids speaking there now
    this.section = el("section", { id: "breakouts", class: "breakouts", "aria-labelledby": "breakouts-heading" });
    this.timer = setInterval(() => this.#tick(), 1000);
  }

  /** Puts the panel into `container` (first). */
  mount(container) {
    container.prepend(this.section);
  }

  /** The main room's people (while the page is there): their names for the panel. */
  rememberNames(participants) {
    if (this.place) return;
    this.me = this.page.me?.() ?? this.me; // our id in the main room
    for (const p of participants) this.names.set(p.id, p.name);
  }

  /** Whether we speak to every room now (the server's last word, `breakouts.voice`). */
  speaking() {
    return !!this.status?.voice?.includes(this.me);
  }

  /** Listens to a room's signaling connection (each room the page is in). */
  wire(signaling, isCurrent) {
    const on = (type, handler) => signaling.addEventListener(type, (event) => {
      if (isCurrent(signaling)) { handler(event.detail); this.render(); }
    });
    on("breakouts", ({ breakouts }) => this.#update(breakouts));
    on("breakout_message", ({ name, text }) => this.page.note(TEXT.message(name, text)));
    on("breakouts_ending", ({ seconds_left }) => this.page.note(TEXT.ending(seconds_left)));
    on("breakout_speakers", ({ room, speakers }) => this.speakers.set(room, speakers));
    on("teacher_called", ({ name, room }) => this.page.note(TEXT.calledBy(name, TEXT.roomName(room))));
  }

  /** `moved`: the page goes to `to` (null: the main room). */
  moved(to) {
    this.place = to ?? null;
    this.render();
  }

  /** The title of where the page is, for the banner while moving. */
  placeName(to) {
    return to ? TEXT.roomName(to.index) : TEXT.mainRoom;
  }

  #update(breakouts) {
    if (breakouts?.round !== this.status?.round) this.speakers.clear();
    this.status = breakouts ?? null;
    this.endsAt = breakouts?.seconds_left != null ? performance.now() + breakouts.seconds_left * 1000 : null;
  }

  #tick() {
    const left = this.section.querySelector(".breakout-timer");
    if (left && this.endsAt) left.textContent = TEXT.timeLeft(clock(this.#secondsLeft()));
  }

  #secondsLeft() {
    return Math.max(0, Math.round((this.endsAt - performance.now()) / 1000));
  }

  render() {
    const moderator = this.page.moderator();
    const parts = [];
    if (this.status || moderator) parts.push(el("h3", { id: "breakouts-heading", text: TEXT.heading }));
    if (this.place) {
      const room = TEXT.roomName(this.place.index);
      parts.push(el("p", { class: "breakout-place", role: "status", text: moderator ? TEXT.visiting(room) : TEXT.youAreIn(room) }));
    }
    if (this.endsAt) parts.push(el("p", { class: "breakout-timer", role: "timer", text: TEXT.timeLeft(clock(this.#secondsLeft())) }));
    for (const id of this.status?.voice ?? []) {
      if (id !== this.me) parts.push(el("p", { class: "breakout-voice", role: "status", text: TEXT.speakingToAll(this.names.get(id) ?? `#${id}`) }));
    }
    if (moderator && !this.status) parts.push(this.#openForm());
    if (this.status) parts.push(this.#roomList(moderator));
    if (this.status && moderator) parts.push(...this.#moderatorTools());
    if (this.status && !moderator && this.place) {
      parts.push(el("button", { type: "button", id: "call-teacher", text: TEXT.callTeacher,
        onclick: () => this.page.send({ type: "call_teacher" }).then(() => this.page.note(TEXT.called), () => {}) }));
    }
    this.section.hidden = parts.length === 0;
    // Rebuilt only when what it shows changed: a field being typed in keeps its text.
    const signature = JSON.stringify([moderator, this.page.mayRecord?.(), this.status?.rooms, this.status?.round, this.status?.voice, [...this.speakers], this.place, !!this.endsAt, moderator && !this.status ? this.page.students() : null]);
    if (this.section.dataset.signature === signature) return;
    this.section.dataset.signature = signature;
    this.section.replaceChildren(...parts);
  }

  #openForm() {
    const count = el("input", { id: "breakout-count", type: "number", min: "1", max: "50", value: "2" });
    const mode = el("select", { id: "breakout-mode" },
      el("option", { value: "random", text: TEXT.random }),
      el("option", { value: "by_hand", text: TEXT.byHand }),
      el("option", { value: "choose", text: TEXT.choose }));
    const minutes = el("input", { id: "breakout-minutes", type: "number", min: "1", max: "240" });
    // Each room becomes a replay of its own, listed with the lesson's (teachers: `record`).
    const record = el("input", { id: "breakout-record", type: "checkbox" });
    const recordRow = this.page.mayRecord?.()
      ? el("label", { class: "breakout-row", for: "breakout-record" }, record, el("span", { text: TEXT.recordAll }))
      : null;
    const assignment = el("fieldset", { id: "breakout-assignment", hidden: true }, el("legend", { text: TEXT.assignment }));
    const fillAssignment = () => {
      const rooms = Math.max(1, Math.min(50, Number(count.value) || 1));
      const rows = this.page.students().map((s) => {
        const pick = el("select", { "data-participant": String(s.id), "aria-label": TEXT.moveTo(s.name) },
          el("option", { value: "", text: TEXT.unassigned }),
          ...Array.from({ length: rooms }, (_, i) => el("option", { value: String(i), text: TEXT.roomName(i) })));
        return el("label", { class: "breakout-row" }, el("span", { text: s.name }), pick);
      });
      assignment.replaceChildren(el("legend", { text: TEXT.assignment }), ...rows);
      assignment.hidden = mode.value !== "by_hand";
    };
    mode.addEventListener("change", fillAssignment);
    count.addEventListener("change", fillAssignment);
    const form = el("form", { id: "breakout-form", class: "breakout-form" },
      el("label", { for: "breakout-count", text: TEXT.rooms }), count,
      el("label", { for: "breakout-mode", text: TEXT.mode }), mode,
      el("label", { for: "breakout-minutes", text: TEXT.minutes }), minutes,
      recordRow,
      assignment,
      el("button", { type: "submit", id: "breakout-open", class: "primary", text: TEXT.open }));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const rooms = Number(count.value);
      const message = { type: "open_breakouts", rooms, mode: mode.value };
      if (minutes.value) message.duration_seconds = Math.round(Number(minutes.value) * 60);
      if (record.checked) message.record = true;
      if (mode.value === "by_hand") {
        const lists = Array.from({ length: rooms }, () => []);
        for (const pick of assignment.querySelectorAll("select")) {
          if (pick.value !== "") lists[Number(pick.value)]?.push(Number(pick.dataset.participant));
        }
        message.assignment = lists;
      }
      this.page.send(message).catch(() => {});
    });
    fillAssignment();
    return form;
  }

  #roomList(moderator) {
    const name = (id) => this.names.get(id) ?? `#${id}`;
    const rooms = this.status.rooms.map((room) => {
      const title = TEXT.roomName(room.index);
      const here = this.place?.index === room.index;
      const actions = [];
      if (moderator && !here) {
        actions.push(el("button", { type: "button", "data-visit": String(room.index), text: `${TEXT.visit} ${title}`,
          onclick: () => this.page.send({ type: "visit_breakout", room: room.index }).catch(() => {}) }));
      }
      if (!moderator && this.status.mode === "choose" && !here) {
        actions.push(el("button", { type: "button", "data-choose": String(room.index), text: TEXT.join(title),
          onclick: () => this.page.send({ type: "choose_breakout", room: room.index }).catch(() => {}) }));
      }
      const members = room.members.map((id) => el("li", {}, el("span", { text: name(id) }),
        moderator ? this.#movePicker(id, name(id), room.index) : null));
      if (moderator && this.page.mayRecord?.()) {
        actions.push(el("button", { type: "button", "data-record": String(room.index), "aria-pressed": String(!!room.recording),
          text: room.recording ? TEXT.stopRecording(title) : TEXT.record(title),
          onclick: () => this.page.send({ type: "record_breakout", room: room.index, on: !room.recording }).catch(() => {}) }));
      }
      const speaking = moderator ? (this.speakers.get(room.index) ?? []) : [];
      if (speaking.length) {
        actions.unshift(el("p", { class: "breakout-speakers", "data-speakers": String(room.index),
          text: TEXT.speakers(speaking.map(name).join(", ")) }));
      }
      return el("li", { class: "breakout-room", "data-room": String(room.index) },
        el("strong", { text: title }),
        room.recording ? el("span", { class: "pill recording", "data-recorded": String(room.index), text: TEXT.recorded }) : null,
        room.members.length ? el("ul", {}, ...members) : el("span", { class: "muted", text: ` (${TEXT.nobody})` }),
        ...actions);
    });
    return el("ul", { id: "breakout-rooms", class: "breakout-rooms", "aria-label": TEXT.rooms }, ...rooms);
  }

  #movePicker(id, who, current) {
    const pick = el("select", { "aria-label": TEXT.moveTo(who) },
      el("option", { value: "main", text: TEXT.mainRoom }),
      ...this.status.rooms.map((r) => el("option", { value: String(r.index), text: TEXT.roomName(r.index), selected: r.index === current })));
    pick.addEventListener("change", () => {
      const room = pick.value === "main" ? null : Number(pick.value);
      this.page.send({ type: "move_to_breakout", participant: id, room }).catch(() => {});
    });
    return pick;
  }

  #moderatorTools() {
    const text = el("input", { id: "breakout-broadcast-text", maxlength: "2000", "aria-label": TEXT.broadcastLabel, placeholder: TEXT.broadcastLabel });
    const broadcast = el("form", { class: "breakout-broadcast" }, text, el("button", { type: "submit", text: TEXT.broadcast }));
    broadcast.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!text.value.trim()) return;
      this.page.send({ type: "broadcast_to_breakouts", text: text.value }).then(() => { text.value = ""; }, () => {});
    });
    const speaking = this.speaking();
    const voice = el("button", { type: "button", id: "breakout-voice", "aria-pressed": String(speaking),
      text: speaking ? TEXT.stopSpeaking : TEXT.speakToAll,
      onclick: () => this.page.send({ type: "speak_to_breakouts", on: !speaking }).catch(() => {}) });
    const tools = [broadcast, voice];
    if (this.place) {
      tools.push(el("button", { type: "button", id: "breakout-back", text: TEXT.leaveVisit,
        onclick: () => this.page.send({ type: "visit_breakout", room: null }).catch(() => {}) }));
    }
    tools.push(el("button", { type: "button", id: "breakout-close", class: "danger", text: TEXT.close,
      onclick: () => { if (confirm(TEXT.closeConfirm)) this.page.send({ type: "close_breakouts" }).catch(() => {}); } }));
    return tools;
  }
}
