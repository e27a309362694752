// The Tasks section: quick-add, the views (All, Today, Upcoming, Completed, Conflicts), search,
// the windowed list, the detail pane, completion, delete with Undo, and live updates.

import { api, ApiError, clearErrors, showErrors } from "./api.js";
import { addDays, today } from "./dates.js";
import * as live from "./live.js";
import { taskRow } from "./render.js";
import { Section } from "./section.js";
import { toast } from "./toast.js";
import { openConflict } from "./conflicts.js";

const ROW_HEIGHT = 40;
const $ = (id) => document.getElementById(id);

let section;
let list;
let detail = null; // {task, deleted} while the pane is open

function viewParams(view) {
  const now = today();
  if (view === "today") return { completed: false, due_before: addDays(now, 1) };
  if (view === "upcoming") return { completed: false, due_after: now };
  if (view === "completed") return { completed: true };
  if (view === "conflicts") return { conflicts: true };
  return {};
}

function matchesView(task) {
  const now = today();
  if (section.query) {
    const needle = section.query.toLocaleLowerCase();
    if (!`${task.title}\n${task.description}`.toLocaleLowerCase().includes(needle)) return false;
  }
  switch (section.view) {
    case "today": return !task.completed && !!task.due_date && task.due_date <= now;
    case "upcoming": return !task.completed && !!task.due_date && task.due_date > now;
    case "completed": return task.completed;
    case "conflicts": return !!task.conflict_of;
    default: return true;
  }
}

/** Where a task just created sits in the current view: the list is ordered by due date (none
 * last), then by creation, so a new task comes after every task due on or before its date. */
async function positionOfNew(task) {
  const params = { ...section.params(), limit: 1 };
  if (task.due_date) {
    const bound = addDays(task.due_date, 1);
    params.due_before = params.due_before && params.due_before < bound ? params.due_before : bound;
  }
  const { total } = await api.list("/api/tasks", params);
  return total - 1;
}

export function setQuery(text) {
  section.setQuery(text);
}

// -- quick add ----------------------------------------------------------------------------------

async function quickAdd(event) {
  event.preventDefault();
  const form = $("quick-add");
  const title = $("new-title").value;
  const due = $("new-due").value;
  clearErrors(form);
  if (!title.trim()) {
    showErrors(form, new ApiError(422, "title: required", { title: "Type a title first" }));
    return;
  }
  // The field empties at once, so the next task can be typed while this one is saved.
  $("new-title").value = "";
  $("new-due").value = "";
  let task;
  try {
    task = await api.post("/api/tasks", { title, due_date: due || null });
  } catch (err) {
    // Nothing typed is lost: the text comes back unless something new was typed meanwhile.
    if (!$("new-title").value) {
      $("new-title").value = title;
      $("new-due").value = due;
      showErrors(form, err);
    } else {
      toast(`Could not add “${title}”: ${err.message}`);
    }
    return;
  }
  if (!matchesView(task)) {
    toast(`Added “${task.title}” (not in this view)`);
    return;
  }
  // Undated tasks sort last: the row goes on screen at once; the create's live event re-reads.
  if (!task.due_date && list.append(task)) return;
  const index = await positionOfNew(task).catch(() => list.total);
  await list.reveal(index, task.id).catch(section.showLoadError);
}

// -- completion, delete, undo -------------------------------------------------------------------

async function toggle(task) {
  const saved = await section.toggle(task, "completed");
  if (saved && detail && detail.task.id === task.id) $("task-completed").checked = saved.completed;
}

async function remove(task) {
  if ((await section.removeWithUndo(task)) && detail && detail.task.id === task.id) {
    closeDetail({ focusList: true });
  }
}

// -- the detail pane ----------------------------------------------------------------------------

const FIELDS = {
  title: { id: "task-title", read: (el) => el.value, write: (el, v) => { el.value = v; } },
  description: { id: "task-description", read: (el) => el.value, write: (el, v) => { el.value = v; } },
  due_date: { id: "task-due", read: (el) => el.value || null, write: (el, v) => { el.value = v || ""; } },
  completed: { id: "task-completed", read: (el) => el.checked, write: (el, v) => { el.checked = v; } },
};

function formValues() {
  const values = {};
  for (const [name, f] of Object.entries(FIELDS)) values[name] = f.read($(f.id));
  return values;
}

function dirtyFields() {
  const values = formValues();
  return Object.keys(FIELDS).filter((name) => values[name] !== detail.task[name]);
}

function fill(task, keep = []) {
  for (const [name, f] of Object.entries(FIELDS)) if (!keep.includes(name)) f.write($(f.id), task[name]);
}

export function openDetail(task, { focusField = "task-title" } = {}) {
  if (detail && detail.task.id !== task.id && dirtyFields().length) {
    // Switching tasks keeps what was typed: it is saved first.
    saveDetail({ stay: true });
  }
  detail = { task, deleted: false };
  clearErrors($("task-form"));
  fill(task);
  $("task-detail-banner").hidden = true;
  $("task-resolve").hidden = !task.conflict_of;
  $("task-detail").hidden = false;
  if (focusField) $(focusField).focus();
}

export function closeDetail({ focusList = false } = {}) {
  detail = null;
  $("task-detail").hidden = true;
  if (focusList) list.focusActive();
}

async function saveDetail({ stay = false } = {}) {
  if (!detail) return;
  const current = detail;
  const form = $("task-form");
  const changed = dirtyFields();
  const values = formValues();
  clearErrors(form);
  try {
    if (current.deleted) {
      await api.post(`/api/tasks/${current.task.id}/restore`);
      current.deleted = false;
    }
    let saved = current.task;
    if (changed.length) {
      const body = Object.fromEntries(changed.map((name) => [name, values[name]]));
      saved = await api.patch(`/api/tasks/${current.task.id}`, body);
    }
    if (detail === current) {
      current.task = saved;
      $("task-detail-banner").hidden = true;
      if (!stay) closeDetail({ focusList: true });
    }
  } catch (err) {
    if (detail === current) showErrors(form, err);
    else toast(`Could not save “${current.task.title}”: ${err.message}`);
  }
}

function cancelDetail() {
  if (!detail) return;
  fill(detail.task);
  clearErrors($("task-form"));
  closeDetail({ focusList: true });
}

/** A live event about the open task: fields the person has not touched take the new values. */
function updateDetail(type, data) {
  if (!detail || data.id !== detail.task.id) return;
  const banner = $("task-detail-banner");
  if (type === "task.deleted") {
    detail.deleted = true;
    if (!dirtyFields().length) {
      closeDetail();
      return;
    }
    banner.textContent = "This task was deleted elsewhere. Save to keep your version.";
    banner.hidden = false;
    return;
  }
  const dirty = dirtyFields();
  detail.task = data;
  detail.deleted = false;
  fill(data, dirty);
  if (dirty.some((name) => data[name] !== formValues()[name])) {
    banner.textContent = "This task changed elsewhere. Your edits are kept; Save to apply them.";
    banner.hidden = false;
  }
  $("task-resolve").hidden = !data.conflict_of;
}

export function focusList() {
  section.focusList();
}

export function focusQuickAdd() {
  $("new-title").focus();
}

/** Builds the section; resolves once the first page is on screen. */
export async function initTasks() {
  section = new Section({
    kind: "task",
    plural: "tasks",
    rowHeight: ROW_HEIGHT,
    renderRow: taskRow,
    viewParams,
    actions: {
      open: (task, { keyboard }) => openDetail(task, { focusField: keyboard ? "task-title" : null }),
      toggle,
      remove,
    },
  });
  list = section.list;
  $("quick-add").addEventListener("submit", quickAdd);

  const form = $("task-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveDetail();
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      cancelDetail();
    } else if (event.key === "Enter" && event.target.id === "task-description" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      saveDetail();
    }
  });
  $("task-cancel").addEventListener("click", cancelDetail);
  $("task-delete").addEventListener("click", () => detail && remove(detail.task));
  $("task-resolve").addEventListener("click", () => detail && openConflict("task", detail.task, (kept) => openDetail(kept)));

  live.on("task.*", (data, type) => {
    updateDetail(type, data);
    section.refreshSoon();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) section.refresh(); // the date may have moved on: Today and overdue change
  });
  await section.start();
}
