// The one renderer: the markup for a task row and a note row is made here, from the API's
// JSON, and nowhere else (the server sends data, never HTML). Text goes in as text nodes, so
// nothing a record holds can become markup.

import { dayLabel, today } from "./dates.js";

function node(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** A task in the list: checkbox, title, due date (overdue marked), conflict tag. */
export function taskRow(task) {
  const row = node("div", "task");
  row.setAttribute("role", "listitem");
  row.dataset.id = task.id;
  row.classList.toggle("completed", task.completed);
  const box = node("input");
  box.type = "checkbox";
  box.checked = task.completed;
  box.tabIndex = -1;
  box.dataset.action = "toggle";
  box.setAttribute("aria-label", `${task.completed ? "Completed" : "Complete"}: ${task.title}`);
  const title = node("span", "title", task.title);
  row.append(box, title);
  if (task.description) row.append(node("span", "more", "¶"));
  if (task.conflict_of) row.append(node("span", "tag conflict", "conflict copy"));
  if (task.due_date) {
    const overdue = !task.completed && task.due_date < today();
    const due = node("time", overdue ? "due overdue" : "due", overdue ? `Overdue · ${dayLabel(task.due_date)}` : dayLabel(task.due_date));
    due.dateTime = task.due_date;
    row.append(due);
    if (overdue) row.classList.add("is-overdue");
  }
  row.setAttribute("aria-label", taskLabel(task));
  return row;
}

function taskLabel(task) {
  const parts = [task.title];
  if (task.completed) parts.push("completed");
  if (task.due_date) parts.push(`${!task.completed && task.due_date < today() ? "overdue, was due" : "due"} ${dayLabel(task.due_date)}`);
  if (task.conflict_of) parts.push("conflict copy");
  return parts.join(", ");
}

/** A note in the list: title, the start of its text, done and conflict tags. */
export function noteRow(note) {
  const row = node("div", "note");
  row.setAttribute("role", "listitem");
  row.dataset.id = note.id;
  row.classList.toggle("completed", note.done);
  const text = node("span", "text");
  text.append(node("span", "title", note.title), node("span", "excerpt", note.body.slice(0, 160).replace(/\s+/g, " ")));
  row.append(text);
  if (note.done) row.append(node("span", "tag", "done"));
  if (note.conflict_of) row.append(node("span", "tag conflict", "conflict copy"));
  row.setAttribute("aria-label", [note.title, note.done ? "done" : "", note.conflict_of ? "conflict copy" : ""].filter(Boolean).join(", "));
  return row;
}

/** One version of a record in the conflict dialog. */
export function versionView(record, textField) {
  const wrap = node("div");
  wrap.append(node("p", "version-title", record ? record.title : "(deleted)"));
  const text = node("pre", "version-text", record ? record[textField] || "" : "");
  wrap.append(text);
  return wrap;
}
