// Slides in the live room (docs/protocol.md, "Slides"): the document a teacher shows and its
// page, for everyone; for moderators, a picker of the course's ready documents and the
// controls to open one, turn its pages and close it. The room says which document and page;
// the page images come from the REST API (the document's files link, members only).
//
// live.js calls `attachSlides(signaling, joined)` after every join (a reconnect brings a new
// connection and the current page in `joined`). Everything else lives here: the panel waits
// in the teachers' Stream tab and moves onto the stage while a slide is shown, its stylesheet
// linked, and the stage then gets the `presenting` class (the slide is the main view; the
// main video becomes a small picture in its corner).
//
// When the teacher lets students browse (`allow_browsing`), a student may page through the
// document on their own; the class page stays the teacher's, and "Back to the class page"
// follows it again. The drawing belongs to the class page, so it is hidden on other pages.

import { api } from "./api.js";
import { t } from "./i18n.js";
import { el } from "./page.js";

const lessonId = new URLSearchParams(location.search).get("lesson");

const view = {
  signaling: null,
  moderator: false,
  slide: null,
  /** A student's own page while browsing; null: the class page. */
  own: null,
  /** document id -> {title, pages, files_url} */
  documents: new Map(),
  panel: null,
};

function panel() {
  if (view.panel) return view.panel;
  if (!document.querySelector('link[href="/css/slides.css"]')) {
    document.head.append(el("link", { rel: "stylesheet", href: "/css/slides.css" }));
  }
  const image = el("img", { id: "slide-image", class: "slide-image", alt: "" });
  const caption = el("p", { id: "slide-caption", class: "slide-caption", role: "status" });
  const picker = el("select", { id: "slide-pick", "aria-label": t("slides.documentToShow") });
  const open = el("button", { id: "slide-open", type: "button", class: "primary", text: t("slides.showToClass") });
  const prev = el("button", { id: "slide-prev", type: "button", text: t("common.previousPage") });
  const next = el("button", { id: "slide-next", type: "button", text: t("common.nextPage") });
  const close = el("button", { id: "slide-close", type: "button", text: t("slides.stopShowing") });
  const browse = el("button", { id: "slide-browse", type: "button", "aria-pressed": "false", text: t("slides.studentsMayBrowse") });
  const controls = el("div", { id: "slide-controls", class: "slide-controls", hidden: true },
    picker, open, prev, next, browse, close);
  const ownPrev = el("button", { id: "slide-own-prev", type: "button", text: t("common.previousPage") });
  const ownNext = el("button", { id: "slide-own-next", type: "button", text: t("common.nextPage") });
  const follow = el("button", { id: "slide-follow", type: "button", text: t("slides.backToClassPage") });
  const browsing = el("div", { id: "slide-browsing", class: "slide-controls", hidden: true, "aria-label": t("slides.browseDocument") },
    ownPrev, ownNext, follow);
  const section = el("section", { id: "slides", class: "slides", "aria-label": t("slides.slides"), tabindex: "-1" },
    el("figure", { id: "slide-figure", class: "slide-figure", hidden: true }, image, caption), controls, browsing);
  browse.addEventListener("click", () => send({ type: "allow_browsing", allowed: !view.slide?.browse }));
  ownPrev.addEventListener("click", () => browseBy(-1));
  ownNext.addEventListener("click", () => browseBy(1));
  follow.addEventListener("click", () => { view.own = null; show(view.slide); });
  open.addEventListener("click", () => openSelected());
  prev.addEventListener("click", () => turn(-1));
  next.addEventListener("click", () => turn(1));
  close.addEventListener("click", () => send({ type: "close_document" }));
  section.addEventListener("keydown", (event) => {
    if (!view.slide || (!view.moderator && !view.slide.browse)) return;
    const step = view.moderator ? turn : browseBy;
    if (event.key === "ArrowLeft" || event.key === "PageUp") step(-1);
    else if (event.key === "ArrowRight" || event.key === "PageDown" || event.key === " ") step(1);
    else return;
    event.preventDefault();
  });
  view.panel = {
    section, image, caption, picker, open, prev, next, close, browse, controls,
    browsing, ownPrev, ownNext, follow, figure: section.querySelector("figure"),
  };
  return view.panel;
}

function send(message) {
  return view.signaling?.request(message).catch((error) => {
    view.panel.caption.textContent = error.message;
  });
}

function turn(by) {
  const slide = view.slide;
  if (!slide) return;
  const page = Math.min(Math.max(slide.page + by, 1), slide.pages);
  if (page !== slide.page) send({ type: "turn_page", page });
}

/** A student pages through the document on their own (while the teacher allows it). */
function browseBy(by) {
  const slide = view.slide;
  if (!slide?.browse) return;
  const page = Math.min(Math.max((view.own ?? slide.page) + by, 1), slide.pages);
  view.own = page === slide.page ? null : page;
  show(slide);
}

function openSelected() {
  const doc = view.documents.get(Number(view.panel.picker.value));
  if (doc) send({ type: "open_document", document: doc.id, pages: doc.pages, page: 1 });
}

/** The document's files link, fetched once (members only: the API refuses others). */
async function documentOf(id) {
  const known = view.documents.get(id);
  if (known?.files_url) return known;
  const fresh = await api(`/api/v1/documents/${id}`);
  view.documents.set(id, fresh);
  return fresh;
}

/**
 * Where the panel goes: while a slide is shown, the stage's content box, which it fills (the
 * main video becomes a small picture in its corner, css/slides.css); otherwise the teachers'
 * Stream tab, where the picker waits without covering any video.
 */
function place(p, presenting) {
  const stage = document.querySelector("#stage-content") ?? document.querySelector(".stage");
  const home = presenting ? stage : (document.querySelector("#panel-stream") ?? stage);
  if (home && p.section.parentElement !== home) {
    if (presenting) home.prepend(p.section);
    else home.append(p.section);
  }
}

async function show(slide) {
  view.slide = slide;
  const p = panel();
  place(p, !!slide);
  document.querySelector(".stage")?.classList.toggle("presenting", !!slide);
  p.figure.hidden = !slide;
  p.prev.disabled = !slide || slide.page <= 1;
  p.next.disabled = !slide || slide.page >= slide.pages;
  p.close.disabled = !slide;
  p.browse.disabled = !slide;
  p.browse.setAttribute("aria-pressed", String(!!slide?.browse));
  // A student's own page, while browsing is allowed and they left the class page.
  if (!slide?.browse || view.moderator || view.own > slide.pages || view.own === slide.page) view.own = null;
  const page = view.own ?? slide?.page;
  p.browsing.hidden = view.moderator || !slide?.browse;
  p.ownPrev.disabled = !slide || page <= 1;
  p.ownNext.disabled = !slide || page >= slide.pages;
  p.follow.disabled = view.own === null;
  document.querySelector(".stage")?.classList.toggle("browsing-own", view.own !== null);
  if (!slide) {
    p.image.removeAttribute("src");
    p.caption.textContent = "";
    return;
  }
  let doc;
  try {
    doc = await documentOf(slide.document);
  } catch (error) {
    p.caption.textContent = t("slides.cannotShow", { error: error.message });
    return;
  }
  if (view.slide !== slide || (view.own ?? slide.page) !== page || !doc.files_url) return; // turned again meanwhile
  p.image.src = `${doc.files_url}page-${page}.png`;
  p.image.alt = t("materials.pageOfTitle", { page, title: doc.title });
  p.image.dataset.page = String(page);
  p.caption.textContent = page === slide.page
    ? t("slides.caption", { title: doc.title, page, pages: slide.pages })
    : t("slides.captionOwn", { title: doc.title, page, pages: slide.pages, classPage: slide.page });
  // The next page is usually next: fetch it now so that the turn shows at once.
  if (page < slide.pages) new Image().src = `${doc.files_url}page-${page + 1}.png`;
}

async function loadDocuments() {
  const lesson = await api(`/api/v1/lessons/${encodeURIComponent(lessonId)}`);
  const list = await api(`/api/v1/courses/${lesson.course_id}/documents`);
  const ready = list.items.filter((d) => d.state === "ready");
  for (const doc of ready) view.documents.set(doc.id, doc);
  const p = panel();
  p.picker.replaceChildren(...(ready.length
    ? ready.map((d) => el("option", { value: String(d.id), text: t("slides.option", { title: d.title, count: d.pages }) }))
    : [el("option", { value: "", text: t("slides.noDocuments") })]));
  p.open.disabled = !ready.length;
}

/** After a join: follow the room's slide; moderators get the controls. */
export function attachSlides(signaling, joined) {
  view.signaling = signaling;
  view.moderator = !!joined.grants?.moderate;
  const p = panel();
  p.controls.hidden = !view.moderator;
  signaling.addEventListener("slide", (event) => show(event.detail.slide ?? null));
  show(joined.slide ?? null);
  if (view.moderator) loadDocuments().catch((error) => { p.caption.textContent = error.message; });
}
