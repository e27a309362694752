// A minimal shell for the task list: the full window UI is built on top of this.
"use strict";

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    ...options,
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.message || body.detail || response.statusText);
  }
  return response.status === 204 ? null : response.json();
}

function renderTask(task) {
  const li = document.createElement("li");
  li.dataset.id = task.id;
  li.textContent = task.title;
  return li;
}

async function refresh() {
  const tasks = await api("/api/tasks?limit=500");
  document.getElementById("tasks").replaceChildren(...tasks.map(renderTask));
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("quick-add");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = document.getElementById("new-title");
    try {
      await api("/api/tasks", { method: "POST", body: JSON.stringify({ title: input.value }) });
      input.value = "";
      document.getElementById("error").textContent = "";
      await refresh();
    } catch (err) {
      document.getElementById("error").textContent = err.message;
    }
  });
  refresh()
    .catch((err) => { document.getElementById("error").textContent = err.message; })
    .finally(() => document.dispatchEvent(new Event("ferry:ready"))); // see ready.js
});
