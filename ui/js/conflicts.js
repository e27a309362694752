// Resolving a conflict copy (DESIGN.md sync rule 4): the dialog shows the current version and
// the copy side by side; keep either, or merge the two by hand. Until then both stay.

import { api, clearErrors, showErrors } from "./api.js";
import { versionView } from "./render.js";
import { toast } from "./toast.js";

const $ = (id) => document.getElementById(id);
let pending = null; // {kind, copy, current, onDone}

/** The server names a copy "<title> (conflict copy)"; the kept version gets the plain title. */
const COPY_SUFFIX = " (conflict copy)";
function plainTitle(title) {
  return title.endsWith(COPY_SUFFIX) ? title.slice(0, -COPY_SUFFIX.length) || title : title;
}

function textField(kind) {
  return kind === "task" ? "description" : "body";
}

/** Opens the dialog for a conflict copy; `onDone(record)` gets the version that stays. */
export async function openConflict(kind, copy, onDone = () => {}) {
  let current = null;
  try {
    current = await api.get(`/api/${kind}s/${copy.conflict_of}`);
  } catch (err) {
    if (err.status !== 404) {
      toast(`Could not open the conflict: ${err.message}`);
      return;
    }
  }
  pending = { kind, copy, current, onDone };
  const field = textField(kind);
  $("conflict-current").replaceChildren(versionView(current, field));
  $("conflict-copy").replaceChildren(versionView(copy, field));
  $("merge-text-label").textContent = kind === "task" ? "Description" : "Note";
  $("merge-title").value = plainTitle((current || copy).title);
  $("merge-text").value = (current || copy)[field] || "";
  clearErrors($("conflict-merge"));
  $("conflict-dialog").showModal();
  $("conflict-keep-current").focus();
}

/** Makes `values` the record's content, then removes the copy. */
async function settle(values) {
  const { kind, copy, current, onDone } = pending;
  let kept;
  if (current) {
    kept = await api.patch(`/api/${kind}s/${current.id}`, values);
  } else {
    // The other version was deleted: the content lives on as a record of its own.
    const base = kind === "task" ? { due_date: copy.due_date, completed: copy.completed } : { done: copy.done };
    kept = await api.post(`/api/${kind}s`, { ...base, ...values });
  }
  await api.del(`/api/${kind}s/${copy.id}`).catch((err) => {
    if (err.status !== 404) throw err;
  });
  $("conflict-dialog").close();
  pending = null;
  toast("Conflict resolved");
  onDone(kept);
}

async function keepCurrent() {
  const { kind, copy, current } = pending;
  const field = textField(kind);
  const source = current || copy;
  await run(() => settle({ title: plainTitle(source.title), [field]: source[field] }));
}

async function keepCopy() {
  const { kind, copy } = pending;
  const field = textField(kind);
  await run(() => settle({ title: plainTitle(copy.title), [field]: copy[field] }));
}

async function run(action) {
  try {
    await action();
  } catch (err) {
    showErrors($("conflict-merge"), err, { description: "text", body: "text" });
  }
}

export function initConflicts() {
  $("conflict-keep-current").addEventListener("click", keepCurrent);
  $("conflict-keep-copy").addEventListener("click", keepCopy);
  $("conflict-merge").addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = textField(pending.kind);
    await run(() => settle({ title: $("merge-title").value, [field]: $("merge-text").value }));
  });
}
