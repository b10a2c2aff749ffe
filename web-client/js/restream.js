// The restream panel of the teacher's live page: the lesson's RTMP destinations (third-party
// live services), their states (connecting, live, retrying, failed with the reason), and a
// form to add one. Stream keys are entered once and only ever shown masked by the server.

import { api } from "./api.js";
import { t } from "./i18n.js";
import { $, el } from "./page.js";

const STATE_TEXT = {
  idle: () => t("restream.idle"),
  connecting: () => t("restream.connecting"),
  live: () => t("restream.live"),
  retrying: () => t("restream.retrying"),
  failed: () => t("restream.failed"),
};

export class RestreamPanel {
  constructor(lessonId, onError) {
    this.path = `/api/v1/lessons/${lessonId}/restreams`;
    this.onError = onError;
    this.timer = null;
    $("restream-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.add().catch(() => {});
    });
  }

  /** Shows the panel (to the lesson's teacher) and keeps its states fresh, or hides it. */
  show(visible) {
    $("restream").hidden = !visible;
    if (visible && !this.timer) {
      this.refresh();
      this.timer = setInterval(() => this.refresh(), 3000);
    } else if (!visible && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  async refresh() {
    try {
      this.render(await api(this.path));
    } catch (error) {
      // Not the course's teacher (an assistant): no panel.
      if (error.status === 403) this.show(false);
    }
  }

  render(destinations) {
    const rows = destinations.map((d) => {
      const state = STATE_TEXT[d.state]?.() ?? d.state;
      const detail = d.reason ? t("restream.reason", { reason: d.reason }) : "";
      const restarts = d.restarts ? t("restream.restarts", { count: d.restarts }) : "";
      return el("li", { "data-destination": d.id, "data-state": d.state },
        el("span", { class: "destination-url", text: t("restream.destination", { url: d.url, key: d.stream_key }) }),
        el("span", { class: `restream-state ${d.state}`, text: `${state}${restarts}${detail}` }),
        el("button", {
          type: "button",
          text: t("restream.remove"),
          "aria-label": t("restream.removeLabel", { url: d.url }),
          onclick: () => this.remove(d.id).catch(() => {}),
        }));
    });
    $("restream-list").replaceChildren(...rows);
    $("restream-empty").hidden = destinations.length > 0;
  }

  async add() {
    const url = $("restream-url").value.trim();
    const key = $("restream-key").value.trim();
    try {
      await api(this.path, { method: "POST", body: { url, stream_key: key } });
      $("restream-url").value = "";
      $("restream-key").value = "";
      $("restream-error").textContent = "";
      await this.refresh();
    } catch (error) {
      $("restream-error").textContent = error.message;
      throw error;
    }
  }

  async remove(id) {
    try {
      await api(`${this.path}/${id}`, { method: "DELETE" });
      await this.refresh();
    } catch (error) {
      this.onError(error.message);
      throw error;
    }
  }
}
