// Tells the desktop app when the first task list is on screen: its log records the time to
// interactive, and the window tests wait for it. The UI dispatches "ferry:ready" on document
// after its first render. One same-origin POST, nothing else.
"use strict";

document.addEventListener("ferry:ready", () => {
  fetch("/api/app/ready", { method: "POST", credentials: "same-origin" }).catch(() => {});
}, { once: true });
