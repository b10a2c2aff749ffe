// The signaling connection: one WebSocket to /ws speaking docs/protocol.md.
// Requests carry an id and resolve with the server's reply (ok, answer) or reject with its error.

import { t } from "./i18n.js";

export class SignalingError extends Error {
  constructor(code, message, grant) {
    super(message);
    this.code = code;
    this.grant = grant;
  }
}

export class Signaling extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.nextId = 1;
    this.pending = new Map();
    this.socket = null;
    this.received = {}; // message type -> count, for tests and debugging
  }

  /**
   * Opens the socket and joins with `token`; resolves with the `joined` message. A teacher's
   * join starts the lesson unless `goLive` is false (the page then sends `go_live`).
   */
  join(token, { goLive = true } = {}) {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      let joined = null;
      socket.onopen = () => {
        this.request({ type: "join", token, go_live: goLive }).then(() => resolve(joined), reject);
      };
      this.#listen(
        (message) => { joined = message; },
        () => { if (!joined) reject(new SignalingError("closed", t("signaling.serverClosed"))); },
      );
    });
  }

  /**
   * Breakout rooms: after `moved`, the server has put this connection in another room, whose
   * `joined` comes next. A new Signaling takes the socket over (with the requests under way),
   * so that what listened to the room we leave hears nothing more; resolves with it and the
   * new room's `joined`. Call it while handling `moved`, before the next message arrives.
   */
  moveOn() {
    const next = new Signaling(this.url);
    next.socket = this.socket;
    next.nextId = this.nextId;
    next.pending = this.pending;
    next.received = this.received;
    this.pending = new Map();
    this.socket = null; // closing the old one must not close the connection
    return new Promise((resolve, reject) => {
      let done = false;
      next.#listen(
        (joined) => { if (!done) { done = true; resolve({ signaling: next, joined }); } },
        () => { if (!done) reject(new SignalingError("closed", t("signaling.connectionClosed"))); },
      );
    });
  }

  #listen(onJoined, onClose) {
    const socket = this.socket;
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.received[message.type] = (this.received[message.type] ?? 0) + 1;
      if (message.type === "joined") onJoined(message);
      this.#dispatch(message);
    };
    socket.onclose = (event) => {
      for (const { reject: fail } of this.pending.values()) {
        fail(new SignalingError("closed", t("signaling.connectionClosed")));
      }
      this.pending.clear();
      onClose();
      this.dispatchEvent(new CustomEvent("close", { detail: { code: event.code, reason: event.reason } }));
    };
  }

  /** Sends a message with a fresh id; resolves with the reply. */
  request(message) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (!this.socket) return reject(new SignalingError("closed", "this room was left"));
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ v: 1, id, ...message }));
    });
  }

  /** Sends a message without an id: no reply comes (a refusal comes as an `error` event). For
   * streams such as a stroke's points and the pointer, where a reply per message is waste. */
  notify(message) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify({ v: 1, ...message }));
  }

  close() {
    if (this.socket) this.socket.close(1000, "left");
  }

  #dispatch(message) {
    const waiting = message.id !== undefined ? this.pending.get(message.id) : undefined;
    if (waiting && (message.type === "ok" || message.type === "error" || message.type === "answer")) {
      this.pending.delete(message.id);
      if (message.type === "error") waiting.reject(new SignalingError(message.code, message.message, message.grant));
      else waiting.resolve(message);
      return;
    }
    this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
  }
}
