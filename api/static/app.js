// scanrag's web page: upload scans, follow their ingest jobs, ask, and see every cited region
// outlined on its page image. Plain DOM code, no build step; every /v1 call goes through api(),
// which sends the API key, so images are fetched as blobs rather than loaded by <img src>.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "scanrag.apiKey"; // sessionStorage: the key stays in this tab, never on disk
const POLL_MS = 700;

const state = {
  citations: [], // the last answer's citations
  active: null, // the citation being shown
  doc: null, // the document detail being shown (GET /v1/documents/{id})
  page: 1,
  view: 0, // bumped on every navigation, so a slow response cannot overwrite a newer one
};

// --- talking to the API -------------------------------------------------------------------

class ApiError extends Error {}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = sessionStorage.getItem(KEY);
  if (key) headers.set("X-API-Key", key);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (err) {
    throw new ApiError(
      `Cannot reach the scanrag server at ${location.origin}: is it running? (${err.message})`,
    );
  }
  if (!response.ok) throw new ApiError(await describe(response));
  return response;
}

async function describe(response) {
  let detail = response.statusText || "request failed";
  try {
    const body = await response.json();
    if (typeof body.detail === "string") detail = body.detail;
    else if (Array.isArray(body.detail)) detail = body.detail.map((d) => d.msg).join("; ");
  } catch {
    // not JSON (a proxy's error page): the status line is all there is
  }
  if (response.status === 401) {
    $("api-key").focus();
    return `This server needs an API key (401): enter it in the "API key" field above. (${detail})`;
  }
  return `${detail} (HTTP ${response.status})`;
}

const json = async (path, options) => (await api(path, options)).json();

// An image fetched with the key, shown through an object URL (the previous one is freed),
// unless the user has moved on while it was loading.
async function showImage(img, path, current = () => true) {
  const blob = await (await api(path)).blob();
  if (!current()) return;
  if (img.dataset.objectUrl) URL.revokeObjectURL(img.dataset.objectUrl);
  img.dataset.objectUrl = URL.createObjectURL(blob);
  img.src = img.dataset.objectUrl;
}

// --- messages -----------------------------------------------------------------------------

function showMessage(text) {
  const box = $("message");
  box.replaceChildren(el("span", {}, text), dismissButton());
  box.hidden = false;
}

function dismissButton() {
  const button = el("button", { type: "button", class: "small" }, "Dismiss");
  button.addEventListener("click", clearMessage);
  return button;
}

// For work started by a click: its failure becomes the page's message.
const reported = (promise) => promise.catch((err) => showMessage(err.message));

function clearMessage() {
  $("message").hidden = true;
  $("message").replaceChildren();
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

const basename = (path) => path.split(/[\\/]/).pop();

// Server errors start with the file's full path on the server; the file name reads better.
function fileError(error, path) {
  return path && error.startsWith(path) ? basename(path) + error.slice(path.length) : error;
}

// --- upload and ingest jobs ---------------------------------------------------------------

async function upload(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const job = jobItem(files.map((f) => f.name).join(", "));
  let body;
  try {
    body = await json("/v1/documents", { method: "POST", body: form });
  } catch (err) {
    job.finish("Failed: nothing was indexed", true, err.message);
    showMessage(err.message);
    return;
  }
  clearMessage();
  for (const rejected of body.rejected) job.error(fileError(rejected.error, rejected.path));
  try {
    await followJob(body.job_id, job);
  } catch (err) {
    // The upload was accepted: the files may well be indexed, only the progress was lost.
    job.finish("Uploaded; lost track of indexing (see Documents)", true, err.message);
    showMessage(err.message);
    reported(refreshDocuments());
  }
}

function jobItem(name) {
  const status = el("span", { class: "job-status" }, "Uploading…");
  const progress = el("progress", { max: "1", "aria-label": `Progress of ${name}` });
  const errors = el("ul", { class: "errors" });
  const item = el("li", { class: "job" }, el("strong", {}, name), progress, status, errors);
  $("jobs").prepend(item);
  return {
    item,
    update(text, fraction) {
      status.textContent = text;
      progress.value = fraction;
    },
    error(text) {
      if (![...errors.children].some((li) => li.textContent === text)) {
        errors.append(el("li", {}, text));
      }
    },
    finish(text, failed, error) {
      status.textContent = text;
      progress.value = 1;
      item.classList.add(failed ? "failed" : "done");
      if (error) this.error(error);
    },
  };
}

async function followJob(jobId, job) {
  for (;;) {
    const s = await json(`/v1/jobs/${jobId}`);
    for (const e of s.errors) job.error(fileError(e.error, e.path));
    if (s.status === "done" || s.status === "failed") {
      const indexed = `${s.files_total - s.errors.length} of ${s.files_total} file(s)`;
      const pages = s.report ? `, ${s.report.pages} page(s) read` : "";
      if (s.status === "done") job.finish(`Indexed ${indexed}${pages}`);
      else job.finish("Failed: nothing was indexed", true);
      await refreshDocuments();
      return;
    }
    const pageShare = s.current_pages_total ? s.current_pages_done / s.current_pages_total : 0;
    const text =
      s.status === "queued"
        ? "Waiting for the previous job…"
        : `Reading ${s.current_file || "…"}: page ${s.current_pages_done}` +
          ` of ${s.current_pages_total || "?"} (file ${s.files_done + 1} of ${s.files_total})`;
    job.update(text, (s.files_done + pageShare) / s.files_total);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

// --- documents ----------------------------------------------------------------------------

async function refreshDocuments() {
  let docs;
  try {
    docs = await json("/v1/documents");
  } catch (err) {
    showMessage(err.message);
    return;
  }
  const rows = docs.map((doc) => {
    const name = basename(doc.source);
    let open = el("span", { title: doc.source }, name); // nothing to show until it has pages
    if (doc.pages) {
      open = el("button", { type: "button", class: "link", title: doc.source }, name);
      open.addEventListener("click", () => reported(openPage(doc.doc_id, 1)));
    }
    const status = el("td", { class: `status-${doc.status}` }, doc.status);
    if (doc.error) {
      status.append(el("div", { class: "errors" }, fileError(doc.error, doc.paths[0])));
    }
    return el("tr", {}, el("td", {}, open), el("td", {}, String(doc.pages ?? "–")), status);
  });
  $("docs").tBodies[0].replaceChildren(...rows);
  $("docs-empty").hidden = docs.length > 0;
}

// --- questions and citations --------------------------------------------------------------

async function ask(question) {
  const button = $("ask");
  button.disabled = true;
  $("answer").hidden = false;
  $("answer-text").textContent = "Searching…";
  $("citations").replaceChildren();
  try {
    const body = await json("/v1/query", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question, top_k: 5 }),
    });
    clearMessage();
    renderAnswer(body);
  } catch (err) {
    $("answer-text").textContent = "";
    showMessage(err.message);
  } finally {
    button.disabled = false;
  }
}

function renderAnswer({ answer, citations }) {
  state.citations = citations;
  state.active = null;
  const byNumber = new Map(citations.map((c) => [c.n, c]));
  // "[n]" in the answer becomes a button that shows citation n; the rest stays plain text
  const parts = answer.split(/\[(\d+)\]/).map((part, i) => {
    const citation = i % 2 ? byNumber.get(Number(part)) : null;
    if (!citation) return i % 2 ? `[${part}]` : part;
    return citeButton(citation, `[${citation.n}]`, "ref");
  });
  $("answer-text").replaceChildren(...parts);
  const items = citations.map((c) => {
    const title = `[${c.n}] ${basename(c.source)} · page ${c.page} · ${c.label}`;
    return el("li", {}, citeButton(c, title, "cite"), el("div", { class: "snippet" }, c.text));
  });
  if (!items.length) items.push(el("li", { class: "hint" }, "No citations."));
  $("citations").replaceChildren(...items);
  if (state.doc) drawBoxes();
}

function citeButton(citation, text, kind) {
  const button = el("button", { type: "button", class: kind, "data-n": String(citation.n) }, text);
  button.addEventListener("click", () => reported(showCitation(citation)));
  return button;
}

async function showCitation(citation) {
  state.active = citation;
  for (const b of document.querySelectorAll("button.cite, button.ref")) {
    b.setAttribute("aria-pressed", String(Number(b.dataset.n) === citation.n));
  }
  await openPage(citation.doc_id, citation.page);
  if (state.active !== citation) return;
  const where = `${basename(citation.source)}, page ${citation.page}`;
  $("detail-title").textContent = `[${citation.n}] ${where}`;
  $("detail-label").textContent = citation.label;
  $("detail-score").textContent = citation.score.toFixed(3);
  $("detail-bbox").textContent = citation.bbox.join(", ");
  $("detail-text").textContent = citation.text;
  $("detail-lines").replaceChildren(
    ...citation.lines.map((line) => el("li", {}, line.text)),
  );
  $("detail").hidden = false;
  await showImage($("crop"), citation.crop_url, () => state.active === citation);
}

// --- the page viewer ----------------------------------------------------------------------

async function openPage(docId, number) {
  const view = ++state.view;
  $("detail").hidden = !(state.active?.doc_id === docId && state.active.page === number);
  const doc = state.doc?.doc_id === docId ? state.doc : await json(`/v1/documents/${docId}`);
  if (view !== state.view) return;
  const page = doc.page_list.find((p) => p.number === number);
  if (!page) throw new ApiError(`${basename(doc.source)} has no page ${number}`);
  const img = $("page-image");
  const same = state.doc?.doc_id === docId && state.page === number && img.src;
  state.doc = doc;
  state.page = number;
  $("viewer").hidden = false;
  $("viewer-title").textContent = basename(doc.source);
  $("page-label").textContent = `Page ${number} of ${doc.page_list.length}`;
  $("prev").disabled = number <= 1;
  $("next").disabled = number >= doc.page_list.length;
  // The frame takes the page's proportions; the image fills it and the boxes are placed in
  // percentages of it, so they follow the displayed size whenever the window resizes.
  $("page").style.aspectRatio = `${page.width} / ${page.height}`;
  img.alt = `Page ${number} of ${basename(doc.source)}`;
  drawBoxes();
  if (!same) {
    img.removeAttribute("src");
    await showImage(img, page.image_url, () => view === state.view);
  }
}

function drawBoxes() {
  const boxes = [];
  const cited = new Map(); // region id → citations of it on this page
  for (const c of state.citations) {
    if (c.doc_id !== state.doc.doc_id || c.page !== state.page) continue;
    cited.set(c.region_id, [...(cited.get(c.region_id) || []), c]);
  }
  for (const [regionId, citations] of cited) {
    const c = citations[0];
    const active = citations.some((x) => x === state.active);
    const numbers = citations.map((x) => x.n).join(",");
    const box = el(
      "button",
      {
        type: "button",
        class: active ? "box active" : "box",
        "data-region": regionId,
        "aria-label": `Citation ${numbers}: ${c.label} region`,
      },
      el("span", { class: "tag" }, numbers),
    );
    place(box, c.bbox, c.page_width, c.page_height);
    box.addEventListener("click", () => reported(showCitation(c)));
    boxes.push(box);
    if (active) {
      for (const line of state.active.lines) {
        const mark = el("div", { class: "line-mark" });
        place(mark, line.bbox, c.page_width, c.page_height);
        boxes.push(mark);
      }
    }
  }
  $("boxes").replaceChildren(...boxes);
}

function place(node, [x0, y0, x1, y1], width, height) {
  node.style.left = `${(100 * x0) / width}%`;
  node.style.top = `${(100 * y0) / height}%`;
  node.style.width = `${(100 * (x1 - x0)) / width}%`;
  node.style.height = `${(100 * (y1 - y0)) / height}%`;
}

function turnPage(step) {
  if (!state.doc) return;
  const number = state.page + step;
  if (number < 1 || number > state.doc.page_list.length) return;
  reported(openPage(state.doc.doc_id, number));
}

// --- wiring -------------------------------------------------------------------------------

function start() {
  $("api-key").value = sessionStorage.getItem(KEY) || "";
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY, key);
    else sessionStorage.removeItem(KEY);
    clearMessage();
    refreshDocuments();
  });

  $("files").addEventListener("change", (event) => {
    upload([...event.target.files]);
    event.target.value = ""; // choosing the same file again still uploads it
  });
  const drop = $("drop");
  // A file dropped anywhere but the drop zone must not replace the page with the file.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
  drop.addEventListener("dragover", () => drop.classList.add("over"));
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    drop.classList.remove("over");
    upload([...event.dataTransfer.files]);
  });

  $("refresh").addEventListener("click", refreshDocuments);
  $("ask-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("question").value.trim();
    if (question) ask(question);
  });
  $("prev").addEventListener("click", () => turnPage(-1));
  $("next").addEventListener("click", () => turnPage(1));
  $("viewer").addEventListener("keydown", (event) => {
    if (event.key === "ArrowLeft") turnPage(-1);
    if (event.key === "ArrowRight") turnPage(1);
  });

  refreshDocuments();
}

start();
