// Starts the page: the sections, the dialogs, the live connection, the keys that work anywhere
// (n, /, Esc, Ctrl+Z), and the "ferry:ready" signal once the first task list is on screen.

import * as live from "./live.js";
import * as notes from "./notes.js";
import { initConflicts } from "./conflicts.js";
import { initSettings } from "./settings.js";
import { initSync } from "./sync.js";
import * as tasks from "./tasks.js";
import { initToast, undo } from "./toast.js";

const $ = (id) => document.getElementById(id);
let section = "tasks";
let searchTimer = 0;

function showSection(name) {
  section = name;
  for (const [tab, view] of [["tab-tasks", "tasks-view"], ["tab-notes", "notes-view"]]) {
    const on = view === `${name}-view`;
    $(view).hidden = !on;
    if (on) $(tab).setAttribute("aria-current", "page");
    else $(tab).removeAttribute("aria-current");
  }
  const search = $("search").value.trim();
  (name === "tasks" ? tasks : notes).setQuery(search);
}

function onSearchInput() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    (section === "tasks" ? tasks : notes).setQuery($("search").value.trim());
  }, 80);
}

function typing(target) {
  return target.closest("input, textarea, select, [contenteditable]") || document.querySelector("dialog[open]");
}

function onGlobalKey(event) {
  if (event.key === "z" && (event.ctrlKey || event.metaKey) && !event.target.closest("input, textarea")) {
    if (undo()) event.preventDefault();
    return;
  }
  if (event.target.id === "search") {
    if (event.key === "Escape") {
      $("search").value = "";
      onSearchInput();
      (section === "tasks" ? tasks : notes).focusList();
    } else if (event.key === "Enter" || event.key === "ArrowDown") {
      event.preventDefault();
      (section === "tasks" ? tasks : notes).focusList();
    }
    return;
  }
  if (event.ctrlKey || event.altKey || event.metaKey || typing(event.target)) {
    if (event.key === "Escape" && event.target.closest("#quick-add")) {
      $("new-title").value = "";
      tasks.focusList();
    }
    return;
  }
  if (event.key === "n") {
    event.preventDefault();
    if (section === "tasks") tasks.focusQuickAdd();
    else notes.newNote();
  } else if (event.key === "/") {
    event.preventDefault();
    $("search").focus();
    $("search").select();
  }
}

async function start() {
  initToast();
  initConflicts();
  for (const dialog of document.querySelectorAll("dialog")) {
    for (const button of dialog.querySelectorAll(".close-dialog")) {
      button.addEventListener("click", () => dialog.close());
    }
  }
  $("tab-tasks").addEventListener("click", () => showSection("tasks"));
  $("tab-notes").addEventListener("click", () => showSection("notes"));
  $("search").addEventListener("input", onSearchInput);
  document.addEventListener("keydown", onGlobalKey);
  // The desktop window calls this before it closes, so a note being typed is saved.
  window.ferry = { flush: () => notes.flush(), busy: () => notes.busy() };
  live.connect();
  initSettings();
  initSync();
  try {
    await tasks.initTasks();
  } finally {
    document.dispatchEvent(new Event("ferry:ready")); // see ready.js
  }
  // The hidden Notes section loads once the first view is on screen.
  notes.initNotes().catch(() => {});
  if (!document.activeElement || document.activeElement === document.body) tasks.focusQuickAdd();
}

start();
