// The Notes section: the list (All, Not done, Done, Conflicts; search), and an editor that saves
// while you type. Saves are debounced, never overlap, and are flushed when the note changes,
// the page hides or the window closes (`flush()`), so no keystroke is lost.

import { api, ApiError, clearErrors, showErrors } from "./api.js";
import * as live from "./live.js";
import { noteRow } from "./render.js";
import { Section } from "./section.js";
import { toast } from "./toast.js";
import { openConflict } from "./conflicts.js";

const ROW_HEIGHT = 56;
const DEBOUNCE_MS = 400;
const MAX_WAIT_MS = 2000;
const $ = (id) => document.getElementById(id);

let section;
let list;

/** The open note: `note` is the last version the API confirmed; `dirty` the fields typed since. */
let open = null;
let saveTimer = 0;
let firstDirtyAt = 0;
let saving = Promise.resolve();

const INPUTS = { title: "note-title", body: "note-body" };

function viewParams(view) {
  if (view === "open") return { completed: false };
  if (view === "done") return { completed: true };
  if (view === "conflicts") return { conflicts: true };
  return {};
}

export function setQuery(text) {
  section.setQuery(text);
}

// -- saving -------------------------------------------------------------------------------------

function setSaveState(text) {
  $("note-save-state").textContent = text;
}

function scheduleSave() {
  const now = Date.now();
  if (!firstDirtyAt) firstDirtyAt = now;
  clearTimeout(saveTimer);
  // While someone types without pause, a save still goes out every couple of seconds.
  const wait = Math.min(DEBOUNCE_MS, Math.max(0, firstDirtyAt + MAX_WAIT_MS - now));
  saveTimer = setTimeout(() => save(), wait);
}

/** Saves what is typed in the open note; saves run one after another. */
function save({ keepalive = false } = {}) {
  clearTimeout(saveTimer);
  firstDirtyAt = 0;
  saving = saving.then(() => saveNow(keepalive));
  return saving;
}

async function saveNow(keepalive) {
  const current = open;
  if (!current || current.dirty.size === 0) return;
  const form = $("note-form");
  const body = {};
  for (const name of current.dirty) body[name] = $(INPUTS[name]).value;
  let titleWaits = false;
  if ("title" in body && !body.title.trim()) {
    // The text still saves; the title waits until it has one.
    delete body.title;
    titleWaits = true;
    // No focus move: this runs while the person types in the text.
    showErrors(form, new ApiError(422, "title: required", { title: "A note needs a title" }), {}, { focus: false });
    setSaveState("Not saved: the note needs a title");
    if (Object.keys(body).length === 0) return;
  }
  current.dirty.clear();
  if (titleWaits) current.dirty.add("title");
  Object.assign(current.sent, body);
  current.inflight += 1;
  setSaveState("Saving…");
  try {
    if (current.deleted) {
      await api.post(`/api/notes/${current.note.id}/restore`);
      current.deleted = false;
      $("note-banner").hidden = true;
    }
    // Chromium refuses keepalive bodies over 64 KiB: a long note goes as a plain request.
    const small = keepalive && JSON.stringify(body).length < 60_000;
    current.note = await api.patch(`/api/notes/${current.note.id}`, body, { keepalive: small });
    if ("title" in body) clearErrors(form);
    if (open === current) {
      setSaveState(titleWaits ? "Title not saved: a note needs one (the text is saved)" : current.dirty.size === 0 ? "Saved" : "Edited");
    }
  } catch (err) {
    // Nothing typed is dropped: the fields stay dirty and the next keystroke or flush retries.
    for (const name of Object.keys(body)) current.dirty.add(name);
    if (open === current) {
      showErrors(form, err, {}, { focus: false });
      setSaveState(err.status === 422 ? "Not saved" : `Not saved: ${err.message}`);
      if (err.status !== 422) saveTimer = setTimeout(() => save(), 2000);
    }
  } finally {
    current.inflight -= 1;
  }
}

/** Saves anything not yet saved; the desktop window calls this before it closes (and waits
 * while `busy()`). */
export function flush() {
  return save();
}

/** The page is going away: what is typed goes at once, not queued behind a save in flight
 * (the page may be gone before that one answers), with keepalive so it outlives the page. */
function saveOnExit() {
  clearTimeout(saveTimer);
  firstDirtyAt = 0;
  saveNow(true);
}

/** True while a save is on its way to the API. */
export function busy() {
  return !!open && open.inflight > 0;
}

// -- the editor ---------------------------------------------------------------------------------

export async function openNote(note, { focusField = "note-body" } = {}) {
  if (open && open.note.id !== note.id) await save();
  open = { note, dirty: new Set(), deleted: false, inflight: 0, sent: {} };
  clearErrors($("note-form"));
  $("note-title").value = note.title;
  $("note-body").value = note.body;
  $("note-done").checked = note.done;
  $("note-banner").hidden = true;
  $("note-resolve").hidden = !note.conflict_of;
  $("note-editor").hidden = false;
  setSaveState("");
  if (focusField) $(focusField).focus();
}

async function closeNote({ focusList = false } = {}) {
  await save();
  open = null;
  $("note-editor").hidden = true;
  if (focusList) list.focusActive();
}

function onInput(event) {
  if (!open) return;
  const name = event.target.name;
  if (!(name in INPUTS)) return;
  open.dirty.add(name);
  setSaveState("Edited");
  scheduleSave();
}

/** Sets a field's text without moving the caret further than the text moved. */
function setText(el, text) {
  if (el.value === text) return;
  const focused = document.activeElement === el;
  const { selectionStart, selectionEnd } = el;
  el.value = text;
  if (focused) el.setSelectionRange(Math.min(selectionStart, text.length), Math.min(selectionEnd, text.length));
}

/** A live event about the open note: text the person has not touched takes the new version. */
function updateOpen(type, data) {
  if (!open || data.id !== open.note.id) return;
  if (type === "note.deleted") {
    open.deleted = true;
    if (open.dirty.size === 0) {
      open = null;
      $("note-editor").hidden = true;
      toast("The open note was deleted elsewhere");
      return;
    }
    $("note-banner").textContent = "This note was deleted elsewhere. Keep typing to keep it.";
    $("note-banner").hidden = false;
    return;
  }
  open.deleted = false;
  const kept = [];
  for (const [name, id] of Object.entries(INPUTS)) {
    const busy = open.dirty.has(name) || open.inflight > 0;
    if (!busy) {
      setText($(id), data[name]);
      continue;
    }
    const theirs = data[name];
    // Our own save coming back, or nothing new: no conflict.
    if (theirs === $(id).value || theirs === open.sent[name] || theirs === open.note[name]) continue;
    kept.push(name);
  }
  if (kept.length) keepTheirs(data);
  if (!open.dirty.size) open.note = data;
  $("note-done").checked = data.done;
  $("note-resolve").hidden = !data.conflict_of;
}

/** Another device or window changed the text being typed: what the person types stays in place
 * and the other version is kept as a note of its own, so neither is lost (sync rule 4). */
async function keepTheirs(data) {
  try {
    const copy = await api.post("/api/notes", { title: `${data.title} (other version)`.slice(0, 200), body: data.body });
    $("note-banner").textContent = `This note changed elsewhere while you typed. That version is kept as “${copy.title}”.`;
    $("note-banner").hidden = false;
  } catch (err) {
    toast(`Could not keep the other version: ${err.message}`);
  }
}

async function newNote() {
  try {
    const note = await api.post("/api/notes", { title: "Untitled", body: "" });
    if (section.view !== "all" && section.view !== "open") section.setView("all");
    await list.refresh();
    const index = list.indexOfId(note.id);
    if (index >= 0) list.setActive(index);
    await openNote(note, { focusField: "note-title" });
    $("note-title").select();
  } catch (err) {
    toast(`Could not create a note: ${err.message}`);
  }
}

async function toggleDone(note) {
  const saved = await section.toggle(note, "done");
  if (saved && open && open.note.id === note.id) $("note-done").checked = saved.done;
}

async function remove(note) {
  if (open && open.note.id === note.id) {
    await save();
    open = null;
    $("note-editor").hidden = true;
  }
  if (await section.removeWithUndo(note)) list.focusActive();
}

export function focusList() {
  section.focusList();
}

export { newNote };

export async function initNotes() {
  section = new Section({
    kind: "note",
    plural: "notes",
    rowHeight: ROW_HEIGHT,
    renderRow: noteRow,
    viewParams,
    actions: {
      open: (note, { keyboard }) => openNote(note, { focusField: keyboard ? "note-body" : null }),
      toggle: toggleDone,
      remove,
    },
  });
  list = section.list;
  $("new-note").addEventListener("click", newNote);
  const form = $("note-form");
  form.addEventListener("input", onInput);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    save();
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      closeNote({ focusList: true });
    } else if (event.key === "Enter" && event.target.id === "note-title") {
      event.preventDefault();
      save();
      $("note-body").focus();
    } else if (event.key === "s" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      save();
    }
  });
  $("note-done").addEventListener("change", () => open && toggleDone({ ...open.note, done: !$("note-done").checked }));
  $("note-delete").addEventListener("click", () => open && remove(open.note));
  $("note-resolve").addEventListener("click", async () => {
    if (!open) return;
    await save();
    openConflict("note", open.note, (kept) => openNote(kept));
  });
  // Leaving the page (or the window hiding) sends what is typed at once.
  window.addEventListener("pagehide", saveOnExit);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) flush();
  });
  live.on("note.*", (data, type) => {
    updateOpen(type, data);
    section.refreshSoon();
  });
  await section.start();
}
