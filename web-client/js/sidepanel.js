// The live page's side panel: tabs (People, Chat, Hands, and Stream for teachers) showing one
// panel at a time, badges for what arrived on a tab not in view, and on a phone a drawer
// opened from the header.

import { $ } from "./page.js";

export class SidePanel {
  constructor() {
    this.tabs = [...document.querySelectorAll('#side [role="tab"]')];
    this.current = "chat";
    this.unread = 0;
    for (const tab of this.tabs) {
      tab.addEventListener("click", () => this.select(tab.id.slice(4)));
      tab.addEventListener("keydown", (event) => this.#arrows(event));
    }
    $("panel-toggle").addEventListener("click", () => this.open(!$("side").classList.contains("open")));
    $("panel-close").addEventListener("click", () => this.open(false));
    this.select("chat");
  }

  /** Shows one tab's panel: "people", "chat", "hands" or "stream". */
  select(name) {
    this.current = name;
    for (const tab of this.tabs) {
      const chosen = tab.id === `tab-${name}`;
      tab.setAttribute("aria-selected", String(chosen));
      tab.tabIndex = chosen ? 0 : -1;
      $(tab.getAttribute("aria-controls")).hidden = !chosen;
    }
    if (name === "chat" && this.visible) this.unread = 0;
    this.#badges();
  }

  /** Opens or closes the drawer (phones; on wider screens the panel is always shown). */
  open(open) {
    $("side").classList.toggle("open", open);
    $("panel-toggle").setAttribute("aria-expanded", String(open));
    if (open && this.current === "chat") this.unread = 0;
    this.#badges();
  }

  /** Whether the panel is on screen (always, except a closed drawer on a phone). */
  get visible() {
    return getComputedStyle($("side")).display !== "none";
  }

  /** A chat message arrived: counted until the chat is looked at. */
  chatArrived() {
    if (this.current !== "chat" || !this.visible) this.unread += 1;
    this.#badges();
  }

  /** Raised hands waiting (shown on the Hands tab and the drawer's button). */
  set hands(count) {
    this.handCount = count;
    this.#badges();
  }

  /** Shows or hides the teachers' Stream tab. */
  showStream(show) {
    $("tab-stream").hidden = !show;
    if (!show && this.current === "stream") this.select("chat");
  }

  #badges() {
    const set = (id, count) => {
      $(id).hidden = !count;
      $(id).textContent = count ? String(count) : "";
    };
    set("hands-badge", this.handCount ?? 0);
    set("chat-badge", this.unread);
    set("panel-badge", (this.handCount ?? 0) + this.unread);
  }

  #arrows(event) {
    const shown = this.tabs.filter((t) => !t.hidden);
    const at = shown.indexOf(event.currentTarget);
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step || at < 0) return;
    const next = shown[(at + step + shown.length) % shown.length];
    this.select(next.id.slice(4));
    next.focus();
    event.preventDefault();
  }
}
