// The teacher's encoder panel (OBS, a hardware encoder over RTMP or WHIP): the lesson's server
// URL, WHIP URL and stream key, and the encoder's state as the server reports it (`encoder`
// messages).

import { api } from "./api.js";
import { t } from "./i18n.js";
import { $, when } from "./page.js";

const ENCODER_STATES = {
  live: () => t("encoder.live"),
  interrupted: () => t("encoder.interrupted"),
  stopped: () => t("live.encoderState"),
};

export class EncoderPanel {
  /** `onMessage(text)`: shows a message in the page's banner. */
  constructor(lessonId, onMessage) {
    this.lessonId = lessonId;
    this.say = onMessage;
    // The key is known only in the answer that made it (the server keeps its hash): shown on
    // this page until it is left, never again. A teacher who lost it makes a new one.
    this.key = null;
    this.url = null;
    this.created = null;
    this.shown = false;
    this.loaded = false;
    $("reveal-key").addEventListener("click", () => { this.shown = !this.shown; this.#show(); });
    $("copy-key").addEventListener("click", () => this.#copy(this.key, t("encoder.theStreamKey")));
    $("copy-url").addEventListener("click", () => this.#copy(this.url, t("encoder.theServerUrl")));
    // WHIP is served by this same server (POST /whip), wherever the page came from.
    this.whipUrl = `${location.origin}/whip`;
    $("copy-whip-url").addEventListener("click", () => this.#copy(this.whipUrl, t("encoder.theWhipUrl")));
    $("rotate-key").addEventListener("click", () => {
      if (!this.created || confirm(t("encoder.confirmNewKey"))) this.load("POST");
    });
  }

  /** The lesson's server URL and key (teachers of the course only: others get 403 and see nothing). */
  async load(method = "GET") {
    try {
      const key = await api(`/api/v1/lessons/${encodeURIComponent(this.lessonId)}/stream-key`, { method });
      if (method === "POST") {
        this.key = key.stream_key;
        this.shown = false;
      }
      this.url = key.server_url;
      this.created = key.created_at;
      this.loaded = true;
      $("encoder").hidden = false;
      this.#show();
    } catch (error) {
      if (error.status === 403 || error.status === 404) return;
      if (method === "POST") this.say(t("encoder.noNewKey", { error: error.message }));
    }
  }

  /** An `encoder` message: the state, and why a publish was refused or stopped. */
  update({ state, reason }) {
    if (ENCODER_STATES[state]) $("encoder-state").textContent = ENCODER_STATES[state]();
    $("encoder").dataset.state = state;
    const why = state === "refused" ? t("encoder.refused", { reason }) : state === "stopped" ? reason : "";
    if (state === "live" || why) {
      $("encoder-reason").textContent = why ?? "";
      $("encoder-reason").hidden = !why;
    }
  }

  #show() {
    const known = Boolean(this.key);
    $("encoder-url").textContent = this.url;
    $("encoder-whip-url").textContent = this.whipUrl;
    let text;
    if (known) text = this.shown ? this.key : "••••••••••••";
    else if (this.created) text = t("encoder.keyMade", { when: when(this.created) });
    else text = t("live.encoderKey");
    $("encoder-key").textContent = text;
    $("encoder-key").dataset.hidden = String(known && !this.shown);
    $("key-once").hidden = !known;
    $("reveal-key").hidden = !known;
    $("copy-key").hidden = !known;
    $("reveal-key").textContent = this.shown ? t("encoder.hideKey") : t("live.revealKey");
    $("reveal-key").setAttribute("aria-pressed", String(this.shown));
    $("rotate-key").textContent = this.created ? t("encoder.newKey") : t("live.rotateKey");
  }

  async #copy(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      this.say(t("encoder.copied", { what }));
    } catch {
      this.say(t("encoder.copyFailed", { what }));
    }
  }
}
