// A course's materials on its page: the documents (slides, handouts) with their state, the
// reason when one could not be prepared, and a page viewer for the course's members; its
// teachers upload (PDF, PPTX, ODP, DOCX) and delete. Documents still processing are checked
// again every few seconds until they settle.

import { api } from "./api.js";
import { t } from "./i18n.js";
import { $, banner, el, report } from "./page.js";

const KINDS = ".pdf,.pptx,.odp,.docx,application/pdf";
const POLL_MS = 3000;

let courseId = null;
let teaching = false;
let poll = null;
/** The open document `{doc, page, text}` of the viewer, or null. */
let viewing = null;

function stateLabel(doc) {
  if (doc.state === "ready") return t("materials.pages", { count: doc.pages });
  return doc.state === "processing" ? t("materials.preparing") : t("materials.failed");
}

function row(doc) {
  const item = el("li", { "data-document": doc.id },
    el("span", { class: "grow" },
      doc.state === "ready"
        ? el("button", { type: "button", class: "link", text: doc.title, "aria-label": t("materials.openLabel", { title: doc.title }), onclick: () => open(doc) })
        : el("strong", { text: doc.title }),
      doc.error ? el("br") : null,
      doc.error ? el("span", { class: "muted document-error", text: doc.error }) : null),
    el("span", { class: `pill ${doc.state}`, text: stateLabel(doc) }));
  if (teaching) {
    item.append(el("button", { type: "button", class: "danger", text: t("materials.delete"), "aria-label": t("materials.deleteLabel", { title: doc.title }), onclick: () => remove(doc) }));
  }
  return item;
}

async function remove(doc) {
  if (!confirm(t("materials.confirmDelete", { title: doc.title }))) return;
  try {
    await api(`/api/v1/documents/${doc.id}`, { method: "DELETE" });
    if (viewing?.doc.id === doc.id) close();
    await refresh();
  } catch (error) {
    report(error);
  }
}

/** Lists the documents again; keeps checking while any is being prepared. */
export async function refresh() {
  const list = await api(`/api/v1/courses/${encodeURIComponent(courseId)}/documents`);
  $("documents").replaceChildren(...(list.items.length
    ? list.items.map(row)
    : [el("li", { class: "muted", text: t("materials.none") })]));
  clearTimeout(poll);
  if (list.items.some((d) => d.state === "processing")) {
    poll = setTimeout(() => refresh().catch(report), POLL_MS);
  }
}

async function upload(event) {
  event.preventDefault();
  const input = $("document-file");
  const file = input.files[0];
  if (!file) return;
  const status = $("upload-status");
  status.textContent = t("materials.uploading", { name: file.name });
  try {
    await api(`/api/v1/courses/${encodeURIComponent(courseId)}/documents?name=${encodeURIComponent(file.name)}`, {
      method: "POST",
      body: file,
      contentType: file.type || "application/octet-stream",
    });
    banner("");
    input.value = "";
    status.textContent = t("materials.uploaded", { name: file.name });
    await refresh();
  } catch (error) {
    status.textContent = "";
    report(error);
  }
}

async function open(doc) {
  // A fresh link: the one in an old listing may have expired.
  const fresh = await api(`/api/v1/documents/${doc.id}`).catch((error) => { report(error); return null; });
  if (!fresh?.files_url) return;
  const text = await fetch(`${fresh.files_url}text.json`).then((r) => (r.ok ? r.json() : [])).catch(() => []);
  viewing = { doc: fresh, page: 1, text };
  $("viewer").hidden = false;
  $("viewer-title").textContent = fresh.title;
  show();
  $("viewer-next").focus();
}

function show() {
  const { doc, page, text } = viewing;
  const image = $("viewer-page");
  image.src = `${doc.files_url}page-${page}.png`;
  image.alt = (text[page - 1] || "").trim() || t("materials.pageOfTitle", { page, title: doc.title });
  $("viewer-count").textContent = t("materials.pageOfPages", { page, pages: doc.pages });
  $("viewer-prev").disabled = page <= 1;
  $("viewer-next").disabled = page >= doc.pages;
}

function turn(by) {
  if (!viewing) return;
  const page = Math.min(Math.max(viewing.page + by, 1), viewing.doc.pages);
  if (page !== viewing.page) {
    viewing.page = page;
    show();
  }
}

function close() {
  viewing = null;
  $("viewer").hidden = true;
  $("viewer-page").removeAttribute("src");
}

/** Fills the Materials section of course `id`; `isTeacher` shows the upload and delete. */
export function initMaterials(id, isTeacher) {
  const first = courseId === null;
  courseId = id;
  teaching = isTeacher;
  $("upload").hidden = !isTeacher;
  if (first) {
    $("document-file").accept = KINDS;
    $("upload").addEventListener("submit", upload);
    $("viewer-prev").addEventListener("click", () => turn(-1));
    $("viewer-next").addEventListener("click", () => turn(1));
    $("viewer-close").addEventListener("click", close);
    $("viewer").addEventListener("keydown", (event) => {
      if (event.key === "ArrowLeft" || event.key === "PageUp") turn(-1);
      else if (event.key === "ArrowRight" || event.key === "PageDown") turn(1);
      else if (event.key === "Escape") close();
      else return;
      event.preventDefault();
    });
  }
  return refresh();
}
