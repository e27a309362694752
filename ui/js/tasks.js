// The Tasks section: quick-add, the views (All, Today, Upcoming, Completed, Conflicts), search,
// the windowed list, the detail pane, completion, delete with Undo, and live updates.

import { api, ApiError, clearErrors, showErrors } from "./api.js";
import { addDays, today } from "./dates.js";
import * as live from "./live.js";
import { taskRow } from "./render.js";
import { toast } from "./toast.js";
import { VirtualList } from "./vlist.js";
import { openConflict } from "./conflicts.js";

const ROW_HEIGHT = 40;
const $ = (id) => document.getElementById(id);

let view = "all";
let query = "";
let list;
let detail = null; // {task, deleted} while the pane is open
let refreshTimer = 0;

function viewParams(name = view) {
  const now = today();
  const params = { q: query || undefined };
  if (name === "today") Object.assign(params, { completed: false, due_before: addDays(now, 1) });
  if (name === "upcoming") Object.assign(params, { completed: false, due_after: now });
  if (name === "completed") params.completed = true;
  if (name === "conflicts") params.conflicts = true;
  return params;
}

function matchesView(task) {
  const now = today();
  if (query) {
    const needle = query.toLocaleLowerCase();
    if (!`${task.title}\n${task.description}`.toLocaleLowerCase().includes(needle)) return false;
  }
  switch (view) {
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
  const params = { ...viewParams(), limit: 1 };
  if (task.due_date) {
    const bound = addDays(task.due_date, 1);
    params.due_before = params.due_before && params.due_before < bound ? params.due_before : bound;
  }
  const { total } = await api.list("/api/tasks", params);
  return total - 1;
}

export function refreshSoon() {
  // Events come in bursts (a sync applies hundreds): one re-read per burst.
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = 0;
    refresh();
  }, 16);
}

export function refresh() {
  refreshConflictCount();
  return list.refresh().catch(showLoadError);
}

function showLoadError(err) {
  toast(`Could not load tasks: ${err.message}`);
}

async function refreshConflictCount() {
  try {
    const { total } = await api.list("/api/tasks", { conflicts: true, limit: 1 });
    const tab = document.querySelector('#tasks-view [data-view="conflicts"]');
    tab.hidden = total === 0 && view !== "conflicts";
    document.querySelector('[data-count="task-conflicts"]').textContent = `(${total})`;
  } catch {
    // the list's own error says the API is down
  }
}

function setView(name) {
  view = name;
  for (const tab of document.querySelectorAll("#tasks-view [role=tab]")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === name));
    tab.tabIndex = tab.dataset.view === name ? 0 : -1;
  }
  refreshConflictCount(); // an emptied Conflicts view hides once left
  list.reset().catch(showLoadError);
}

export function setQuery(text) {
  if (text === query) return;
  query = text;
  list.reset().catch(showLoadError);
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
  // Undated tasks sort last: the row goes on screen at once, and the re-read confirms it.
  if (!task.due_date && list.append(task)) {
    list.reveal(list.active, task.id).catch(showLoadError);
    return;
  }
  const index = await positionOfNew(task).catch(() => list.total);
  await list.reveal(index, task.id).catch(showLoadError);
}

// -- completion, delete, undo -------------------------------------------------------------------

async function toggle(task) {
  const completed = !task.completed;
  list.patchItem(task.id, { completed }); // at once; the event that follows confirms it
  try {
    await api.patch(`/api/tasks/${task.id}`, { completed });
  } catch (err) {
    list.patchItem(task.id, { completed: task.completed });
    toast(`Could not change “${task.title}”: ${err.message}`);
  }
  if (detail && detail.task.id === task.id) $("task-completed").checked = completed;
}

async function remove(task) {
  try {
    await api.del(`/api/tasks/${task.id}`);
  } catch (err) {
    if (err.status !== 404) {
      toast(`Could not delete “${task.title}”: ${err.message}`);
      return;
    }
  }
  if (detail && detail.task.id === task.id) closeDetail({ focusList: true });
  refresh();
  toast(`Deleted “${task.title}”`, {
    undo: async () => {
      try {
        const restored = await api.post(`/api/tasks/${task.id}/restore`);
        // It comes back to the place it left, which is where the list still is.
        await list.refresh();
        const at = list.indexOfId(restored.id);
        if (at >= 0) await list.reveal(at, restored.id);
        list.focusActive();
      } catch (err) {
        toast(`Could not undo: ${err.message}`);
      }
    },
  });
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
  list.setActive(list.active, { focus: true });
}

export function focusQuickAdd() {
  $("new-title").focus();
}

/** Builds the section; resolves once the first page is on screen. */
export async function initTasks() {
  list = new VirtualList({
    container: $("task-list"),
    rowHeight: ROW_HEIGHT,
    fetchPage: (skip, limit) => api.list("/api/tasks", { ...viewParams(), skip, limit }),
    renderRow: taskRow,
    onTotal: (total) => {
      $("task-count").textContent = `${total} ${total === 1 ? "task" : "tasks"}`;
      $("task-empty").hidden = total > 0;
    },
    actions: {
      open: (task, { keyboard }) => openDetail(task, { focusField: keyboard ? "task-title" : null }),
      toggle,
      remove,
    },
  });
  $("quick-add").addEventListener("submit", quickAdd);
  for (const tab of document.querySelectorAll("#tasks-view [role=tab]")) {
    tab.addEventListener("click", () => setView(tab.dataset.view));
  }

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
    refreshSoon();
  });
  live.on("resync", () => refresh());
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh(); // the date may have moved on: Today and overdue change
  });
  await list.reset();
  // After the first page: the count must not hold up the first view.
  refreshConflictCount();
}
