// The whiteboard in the live room (docs/protocol.md, "Whiteboard"): a canvas over the slide
// shown (or over the blank board), redrawn from the strokes the room holds for that page; a
// toolbar for those who may draw (moderators, and anyone given the pen); the pointer; and, for
// moderators, the blank board's controls. Coordinates on the wire are ten-thousandths of the
// page, so a stroke lands on the same spot of the page on every screen.
//
// live.js calls `attachBoard(signaling, joined, { onPens })` after every join (`joined.board`
// carries the shown page's whole board and who holds the pen), and asks `holdsPen(id)` for the
// People list's "Give pen" / "Take pen".

import { errorText } from "./errors.js";
import { t } from "./i18n.js";
import { el } from "./page.js";

const UNITS = 10_000;
/** Pen and highlighter points go out in chunks this often (the connection allows 20
 * messages a second; one chunk per 50 ms keeps a stroke within 100 ms of the class). */
const CHUNK_MS = 50;
const POINTER_MS = 50;
const POINTER_FADE_MS = 4000;
// Each with its name in the visitor's language (asked when the board is built).
const TOOLS = [
  ["pen", () => t("board.pen")], ["highlighter", () => t("board.highlighter")], ["line", () => t("board.line")],
  ["rectangle", () => t("board.rectangle")], ["ellipse", () => t("board.ellipse")], ["text", () => t("board.text")],
  ["eraser", () => t("board.eraser")], ["pointer", () => t("board.pointer")],
];
const COLOURS = [
  ["#e03131", () => t("board.red")], ["#1971c2", () => t("board.blue")], ["#2f9e44", () => t("board.green")],
  ["#f08c00", () => t("board.orange")], ["#000000", () => t("board.black")], ["#ffffff", () => t("board.white")],
];
const WIDTHS = [["15", () => t("board.thin")], ["35", () => t("board.medium")], ["80", () => t("board.thick")]];

const view = {
  signaling: null,
  me: null,
  moderator: false,
  pens: new Set(),
  onPens: () => {},
  /** The page shown ({document, page}), or null. */
  page: null,
  blankPages: 0,
  /** stroke id -> stroke, for the page shown. */
  strokes: new Map(),
  /** Our strokes sent but not yet confirmed by their `stroke` (which brings their id). */
  unconfirmed: [],
  /** Our pen or highlighter stroke being drawn, with its points not yet sent. */
  drawing: null,
  pending: [],
  /** A shape being dragged out, shown to us only until released. */
  preview: null,
  erased: new Set(),
  /** participant -> {at: [x, y], time} */
  pointers: new Map(),
  lastPointer: 0,
  tool: "pen",
  colour: COLOURS[0][0],
  width: Number(WIDTHS[1][0]),
  ui: null,
  frame: 0,
};

const mayDraw = () => view.moderator || view.pens.has(view.me);

/** Whether participant `id` holds the pen (for the People list). */
export function holdsPen(id) {
  return view.pens.has(id);
}

function ui() {
  if (view.ui) return view.ui;
  if (!document.querySelector('link[href="/css/board.css"]')) {
    document.head.append(el("link", { rel: "stylesheet", href: "/css/board.css" }));
  }
  const canvas = el("canvas", { id: "board-canvas", class: "board-canvas", hidden: true, "aria-label": t("board.whiteboard"), role: "img" });
  const blank = el("div", { id: "board-blank", class: "board-blank", hidden: true });
  const status = el("span", { id: "board-status", class: "board-status", role: "status" });
  const toolButtons = TOOLS.map(([tool, label]) => el("button", {
    type: "button", class: "tool", text: label(), "data-tool": tool, "aria-pressed": String(tool === view.tool),
    onclick: () => chooseTool(tool),
  }));
  const colour = el("select", { id: "board-colour", "aria-label": t("board.colour"), onchange: (e) => { view.colour = e.target.value; } },
    ...COLOURS.map(([value, label]) => el("option", { value, text: label() })));
  const width = el("select", { id: "board-width", "aria-label": t("board.lineWidth"), onchange: (e) => { view.width = Number(e.target.value); } },
    ...WIDTHS.map(([value, label]) => el("option", { value, text: label() })));
  width.value = String(view.width);
  const undo = el("button", { type: "button", class: "tool", text: t("board.undo"), onclick: () => send({ type: "undo" }) });
  const redo = el("button", { type: "button", class: "tool", text: t("board.redo"), onclick: () => send({ type: "redo" }) });
  const clear = el("button", { type: "button", class: "tool", text: t("board.clearPage"), onclick: () => send({ type: "clear_board" }) });
  const prev = el("button", { type: "button", class: "tool", text: t("board.previousPage"), onclick: () => turnBlank(-1) });
  const next = el("button", { type: "button", class: "tool", text: t("board.nextPage"), onclick: () => turnBlank(1) });
  const close = el("button", { type: "button", class: "tool", text: t("board.close"), onclick: () => send({ type: "close_blank_board" }) });
  const blankControls = el("span", { class: "board-blank-controls" }, prev, next, close);
  const tools = el("div", { id: "board-tools", class: "board-tools", role: "toolbar", "aria-label": t("board.tools"), hidden: true },
    ...toolButtons, colour, width, undo, redo, clear, blankControls, status);
  const showBlank = el("button", { id: "board-show-blank", type: "button", text: t("board.showBlank"), onclick: () => send({ type: "show_blank_board", page: 1 }) });
  const opener = el("section", { id: "board-opener", class: "board-opener", "aria-label": t("board.whiteboard"), hidden: true },
    el("h3", { text: t("board.whiteboard") }), showBlank);
  canvas.addEventListener("pointerdown", down);
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  canvas.addEventListener("pointerleave", () => {
    if (view.tool === "pointer") view.signaling?.notify({ type: "pointer", at: null });
  });
  view.ui = { canvas, blank, tools, toolButtons, clear, blankControls, status, opener, observer: new ResizeObserver(() => layout()) };
  view.ui.observer.observe(document.body);
  // A new page image: the page's place on the screen may have changed with it.
  document.addEventListener("load", (event) => { if (event.target?.id === "slide-image") layout(); }, true);
  setInterval(flush, CHUNK_MS);
  return view.ui;
}

function chooseTool(tool) {
  view.tool = tool;
  for (const button of view.ui.toolButtons) button.setAttribute("aria-pressed", String(button.dataset.tool === tool));
  view.ui.canvas.dataset.tool = tool;
}

function send(message) {
  return view.signaling?.request(message).then(() => { view.ui.status.textContent = ""; }, (error) => {
    view.ui.status.textContent = errorText(error);
    throw error;
  }).catch(() => {});
}

function turnBlank(by) {
  const page = Math.min(Math.max((view.page?.page ?? 1) + by, 1), view.blankPages || 1);
  if (page !== view.page?.page) send({ type: "show_blank_board", page });
}

/** Puts the canvas (and the blank board) where they belong and shows what may be used. */
function place() {
  const u = ui();
  const stage = document.querySelector("#stage-content");
  if (stage && u.canvas.parentElement !== stage) {
    // Before the main video: with the same z-index, the small video in the corner stays on top.
    const mainTile = stage.querySelector("#main-tile");
    stage.insertBefore(u.blank, mainTile);
    stage.insertBefore(u.canvas, mainTile);
    u.observer.observe(stage);
  }
  const area = document.querySelector("#stage-area");
  const stageBox = document.querySelector("#stage");
  if (area && stageBox && u.tools.parentElement !== area) stageBox.after(u.tools);
  const streamPanel = document.querySelector("#panel-stream");
  if (streamPanel && u.opener.parentElement !== streamPanel) streamPanel.append(u.opener);
  const blank = view.page && view.page.document === null;
  u.blank.hidden = !blank;
  if (blank) document.querySelector(".stage")?.classList.add("presenting");
  else if (!view.page) u.canvas.hidden = true;
  u.tools.hidden = !view.page || !mayDraw();
  u.clear.hidden = !view.moderator;
  u.blankControls.hidden = !view.moderator || !blank;
  u.opener.hidden = !view.moderator;
  u.canvas.classList.toggle("drawing", !!view.page && mayDraw());
  layout();
}

/** Where the page lies on the screen, in the stage content's coordinates; null if not shown. */
function surface() {
  const host = document.querySelector("#stage-content");
  if (!host || !view.page) return null;
  const hostBox = host.getBoundingClientRect();
  if (view.page.document === null) {
    const margin = 8;
    const width = Math.max(0, Math.min(hostBox.width - 2 * margin, (hostBox.height - 2 * margin) * 16 / 9));
    const height = width * 9 / 16;
    return { left: (hostBox.width - width) / 2, top: (hostBox.height - height) / 2, width, height };
  }
  const image = document.getElementById("slide-image");
  if (!image || !image.complete || !image.naturalWidth || image.closest("[hidden]")) return null;
  if (Number(image.dataset.page) !== view.page.page) return null; // the page's image is on its way
  const box = image.getBoundingClientRect();
  // The image is contained in its box (object-fit: contain): the page is the part it fills.
  const scale = Math.min(box.width / image.naturalWidth, box.height / image.naturalHeight);
  const width = image.naturalWidth * scale;
  const height = image.naturalHeight * scale;
  return { left: box.left - hostBox.left + (box.width - width) / 2, top: box.top - hostBox.top + (box.height - height) / 2, width, height };
}

function layout() {
  if (!view.ui) return;
  const { canvas, blank } = view.ui;
  const rect = surface();
  canvas.hidden = !rect || rect.width < 2;
  if (canvas.hidden) return;
  for (const element of [canvas, blank]) {
    Object.assign(element.style, { left: `${rect.left}px`, top: `${rect.top}px`, width: `${rect.width}px`, height: `${rect.height}px` });
  }
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(rect.width * ratio);
  const height = Math.round(rect.height * ratio);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  redraw();
}

function schedule() {
  if (!view.frame) view.frame = requestAnimationFrame(() => { view.frame = 0; redraw(); });
}

function redraw() {
  const canvas = view.ui?.canvas;
  if (!canvas || canvas.hidden) return;
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const all = [...view.strokes.values()].sort((a, b) => a.id - b.id);
  const mine = view.unconfirmed.filter((s) => !view.strokes.has(s.id));
  // Highlighters lie under the ink.
  const order = [...all, ...mine, ...(view.preview ? [view.preview] : [])];
  for (const stroke of order.filter((s) => s.tool === "highlighter")) paint(context, stroke, canvas);
  for (const stroke of order.filter((s) => s.tool !== "highlighter")) paint(context, stroke, canvas);
  const now = performance.now();
  for (const [by, { at, time }] of view.pointers) {
    if (now - time > POINTER_FADE_MS) {
      view.pointers.delete(by);
      continue;
    }
    const [x, y] = px(at, canvas);
    context.save();
    context.fillStyle = "rgb(255 0 0 / 85%)";
    context.shadowColor = "red";
    context.shadowBlur = 12;
    context.beginPath();
    context.arc(x, y, 6 * (window.devicePixelRatio || 1), 0, 2 * Math.PI);
    context.fill();
    context.restore();
  }
}

const px = ([x, y], canvas) => [x * canvas.width / UNITS, y * canvas.height / UNITS];

function paint(context, stroke, canvas) {
  const points = stroke.points.map((p) => px(p, canvas));
  if (!points.length) return;
  const width = Math.max(1, stroke.width * canvas.width / UNITS);
  context.save();
  context.strokeStyle = context.fillStyle = stroke.colour;
  context.lineWidth = width;
  context.lineCap = context.lineJoin = "round";
  if (stroke.tool === "highlighter") context.globalAlpha = 0.35;
  context.beginPath();
  const [[x0, y0], [x1, y1] = points[0]] = points;
  switch (stroke.tool) {
    case "pen":
    case "highlighter":
      context.moveTo(x0, y0);
      if (points.length === 1) context.lineTo(x0 + 0.01, y0);
      for (const [x, y] of points.slice(1)) context.lineTo(x, y);
      context.stroke();
      break;
    case "line":
      context.moveTo(x0, y0);
      context.lineTo(x1, y1);
      context.stroke();
      break;
    case "rectangle":
      context.strokeRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
      break;
    case "ellipse":
      context.ellipse((x0 + x1) / 2, (y0 + y1) / 2, Math.abs(x1 - x0) / 2, Math.abs(y1 - y0) / 2, 0, 0, 2 * Math.PI);
      context.stroke();
      break;
    case "text":
      context.font = `${width}px system-ui, sans-serif`;
      context.textBaseline = "top";
      context.fillText(stroke.text ?? "", x0, y0);
      break;
  }
  context.restore();
}

// --- Drawing --------------------------------------------------------------------------------

/** The event's point on the page, in page units (clamped to the page). */
function unitsOf(event) {
  const box = view.ui.canvas.getBoundingClientRect();
  const clamp = (v) => Math.min(UNITS, Math.max(0, Math.round(v)));
  return [clamp((event.clientX - box.left) / box.width * UNITS), clamp((event.clientY - box.top) / box.height * UNITS)];
}

function down(event) {
  if (!mayDraw() || !view.page || event.button > 0) return;
  const at = unitsOf(event);
  view.ui.canvas.setPointerCapture?.(event.pointerId);
  const base = { id: null, by: view.me, tool: view.tool, colour: view.colour, width: view.tool === "highlighter" ? view.width * 4 : view.width };
  if (view.tool === "pen" || view.tool === "highlighter") {
    view.drawing = { ...base, points: [at] };
    view.pending = [];
    begin(view.drawing);
  } else if (["line", "rectangle", "ellipse"].includes(view.tool)) {
    view.preview = { ...base, points: [at, at] };
  } else if (view.tool === "text") {
    writeAt(at, event);
  } else if (view.tool === "eraser") {
    view.erased = new Set();
    eraseAt(event);
  }
  schedule();
}

function move(event) {
  if (view.tool === "pointer" && mayDraw() && view.page) {
    const now = performance.now();
    if (now - view.lastPointer >= POINTER_MS) {
      view.lastPointer = now;
      view.signaling?.notify({ type: "pointer", at: unitsOf(event) });
    }
    return;
  }
  if (view.drawing) {
    const at = unitsOf(event);
    const last = view.drawing.points.at(-1);
    if (Math.abs(at[0] - last[0]) + Math.abs(at[1] - last[1]) < 8) return; // under a pixel or so
    view.drawing.points.push(at);
    view.pending.push(at);
    schedule();
  } else if (view.preview) {
    view.preview.points[1] = unitsOf(event);
    schedule();
  } else if (view.tool === "eraser" && event.buttons) {
    eraseAt(event);
  }
}

function up() {
  if (view.drawing) {
    flush();
    view.signaling?.notify({ type: "draw_end" });
    view.drawing = null;
  } else if (view.preview) {
    const stroke = view.preview;
    view.preview = null;
    const [[x0, y0], [x1, y1]] = stroke.points;
    if (Math.abs(x1 - x0) + Math.abs(y1 - y0) > 20) begin(stroke);
    schedule();
  }
}

/** Sends a stroke's beginning; it is ours to show until the room confirms it with its id. */
function begin(stroke) {
  view.unconfirmed.push(stroke);
  const message = { type: "draw", tool: stroke.tool, colour: stroke.colour, width: stroke.width, points: stroke.points.slice(0, 500) };
  if (stroke.text) message.text = stroke.text;
  view.signaling?.request(message).then(() => { view.ui.status.textContent = ""; }, (error) => {
    view.unconfirmed = view.unconfirmed.filter((s) => s !== stroke);
    if (view.drawing === stroke) view.drawing = null;
    view.ui.status.textContent = errorText(error);
    schedule();
  });
}

/** Sends the points drawn since the last chunk. */
function flush() {
  if (!view.drawing || !view.pending.length) return;
  const points = view.pending.splice(0, 500);
  view.signaling?.notify({ type: "draw_more", points });
}

function writeAt(at, event) {
  const host = document.querySelector("#stage-content");
  const hostBox = host.getBoundingClientRect();
  const input = el("input", { type: "text", class: "board-text-input", "aria-label": t("board.textInput"), maxlength: "500" });
  Object.assign(input.style, { left: `${event.clientX - hostBox.left}px`, top: `${event.clientY - hostBox.top}px` });
  const done = (keep) => {
    const text = input.value.trim();
    input.remove();
    if (keep && text) begin({ id: null, by: view.me, tool: "text", colour: view.colour, width: view.width * 8, points: [at], text });
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") done(true);
    else if (e.key === "Escape") done(false);
  });
  input.addEventListener("blur", () => { if (input.isConnected) done(true); });
  host.append(input);
  setTimeout(() => input.focus(), 0);
}

/** Erases the topmost stroke under the pointer that we may erase. */
function eraseAt(event) {
  const canvas = view.ui.canvas;
  const box = canvas.getBoundingClientRect();
  const ratio = canvas.width / box.width;
  const x = (event.clientX - box.left) * ratio;
  const y = (event.clientY - box.top) * ratio;
  const reach = 8 * ratio;
  const candidates = [...view.strokes.values()].sort((a, b) => b.id - a.id);
  const hit = candidates.find((s) => (view.moderator || s.by === view.me) && !view.erased.has(s.id) && touches(s, x, y, reach, canvas));
  if (hit) {
    view.erased.add(hit.id);
    send({ type: "erase", stroke: hit.id });
  }
}

function touches(stroke, x, y, reach, canvas) {
  const points = stroke.points.map((p) => px(p, canvas));
  const near = reach + stroke.width * canvas.width / UNITS / 2;
  const [x0, y0] = points[0];
  const [x1, y1] = points[1] ?? points[0];
  const inBox = (pad) => x >= Math.min(x0, x1) - pad && x <= Math.max(x0, x1) + pad && y >= Math.min(y0, y1) - pad && y <= Math.max(y0, y1) + pad;
  switch (stroke.tool) {
    case "rectangle":
    case "ellipse":
      return inBox(near);
    case "text":
      return x >= x0 - near && y >= y0 - near && x <= x0 + (stroke.text?.length ?? 1) * near * 2 && y <= y0 + near * 3;
    default:
      for (let i = 0; i < points.length; i++) {
        const [ax, ay] = points[i];
        const [bx, by] = points[i + 1] ?? points[i];
        if (distance(x, y, ax, ay, bx, by) <= near) return true;
      }
      return false;
  }
}

function distance(x, y, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const length = dx * dx + dy * dy;
  const t = length ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / length)) : 0;
  return Math.hypot(x - (ax + t * dx), y - (ay + t * dy));
}

// --- The room's messages --------------------------------------------------------------------

function showBoard(board) {
  view.page = board?.page ?? null;
  view.blankPages = board?.blank_pages ?? 0;
  view.strokes = new Map((board?.strokes ?? []).map((s) => [s.id, s]));
  view.pens = new Set(board?.pens ?? []);
  view.unconfirmed = [];
  view.drawing = null;
  view.preview = null;
  view.pointers.clear();
  if (!view.page) document.querySelector(".stage")?.classList.toggle("presenting", !!document.querySelector("#slide-figure:not([hidden])"));
  place();
  view.onPens();
}

function onStroke(stroke) {
  // Our own stroke's confirmation: keep our copy (it has the points drawn since) under its id.
  const index = stroke.by === view.me ? view.unconfirmed.findIndex((s) => s.id === null) : -1;
  if (index >= 0 && !view.strokes.has(stroke.id)) {
    const [ours] = view.unconfirmed.splice(index, 1);
    ours.id = stroke.id;
    view.strokes.set(stroke.id, ours);
  } else {
    view.strokes.set(stroke.id, stroke);
  }
  schedule();
}

/** After a join: follow the room's board; those who may draw get the tools. */
export function attachBoard(signaling, joined, { onPens } = {}) {
  view.signaling = signaling;
  view.me = joined.you.id;
  view.moderator = !!joined.grants?.moderate;
  if (onPens) view.onPens = onPens;
  const on = (type, handler) => signaling.addEventListener(type, (event) => {
    if (view.signaling === signaling) handler(event.detail);
  });
  on("board", ({ board }) => showBoard(board));
  on("stroke", ({ stroke }) => onStroke(stroke));
  on("stroke_points", ({ id, points }) => {
    view.strokes.get(id)?.points.push(...points);
    schedule();
  });
  on("stroke_erased", ({ id }) => {
    view.strokes.delete(id);
    schedule();
  });
  on("pointer", ({ by, at }) => {
    if (at) view.pointers.set(by, { at, time: performance.now() });
    else view.pointers.delete(by);
    schedule();
  });
  on("pens", ({ holders }) => {
    view.pens = new Set(holders);
    if (!mayDraw()) view.drawing = null;
    place();
    view.onPens();
  });
  // A new page image: the page's place on the screen may have changed with it.
  on("slide", () => setTimeout(layout, 0));
  ui();
  chooseTool(view.tool);
  showBoard(joined.board);
}
