// A short message at the bottom of the window, with an optional Undo, that goes away by itself.

const box = () => document.getElementById("toast");
let timer = 0;
let undoAction = null;

export function toast(message, { undo = null, ms = 6000 } = {}) {
  clearTimeout(timer);
  document.getElementById("toast-text").textContent = message;
  const button = document.getElementById("toast-undo");
  undoAction = undo;
  button.hidden = !undo;
  box().hidden = false;
  timer = setTimeout(dismiss, ms);
}

export function dismiss() {
  clearTimeout(timer);
  undoAction = null;
  box().hidden = true;
}

/** Runs the pending Undo (the button or Ctrl+Z); false if there is none. */
export function undo() {
  const action = undoAction;
  if (!action) return false;
  dismiss();
  action();
  return true;
}

export function initToast() {
  document.getElementById("toast-undo").addEventListener("click", () => undo());
}
