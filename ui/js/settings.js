// The Settings dialog (server URL, sync interval, theme) and the theme itself, applied to the
// page as soon as it is chosen.

import { api, clearErrors, showErrors } from "./api.js";
import * as live from "./live.js";

const $ = (id) => document.getElementById(id);
let settings = null;

export function currentSettings() {
  return settings;
}

export function applyTheme(theme) {
  // "system" follows the OS through the CSS's prefers-color-scheme rules.
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

function fill(s) {
  $("settings-url").value = s.server_url || "";
  $("settings-interval").value = String(s.sync_interval_seconds);
  $("settings-theme").value = s.theme;
}

export async function loadSettings() {
  try {
    settings = await api.get("/api/settings");
    applyTheme(settings.theme);
  } catch {
    // defaults stay: system theme
  }
}

function openDialog() {
  const form = $("settings-form");
  clearErrors(form);
  if (settings) fill(settings);
  $("settings-dialog").showModal();
  $("settings-url").focus();
}

async function save(event) {
  event.preventDefault();
  const form = $("settings-form");
  clearErrors(form);
  const interval = $("settings-interval").value.trim();
  const body = {
    server_url: $("settings-url").value.trim() || null,
    // A number when it is one; otherwise the text goes as typed and the API names the field.
    sync_interval_seconds: /^\d+$/.test(interval) ? Number(interval) : interval,
    theme: $("settings-theme").value,
  };
  try {
    settings = await api.put("/api/settings", body);
    applyTheme(settings.theme);
    $("settings-dialog").close();
  } catch (err) {
    showErrors(form, err);
  }
}

export function initSettings() {
  $("open-settings").addEventListener("click", openDialog);
  $("settings-form").addEventListener("submit", save);
  // Trying a theme shows it at once; Cancel puts the saved one back.
  $("settings-theme").addEventListener("change", () => applyTheme($("settings-theme").value));
  $("settings-dialog").addEventListener("close", () => settings && applyTheme(settings.theme));
  live.on("settings.updated", (data) => {
    settings = data;
    applyTheme(data.theme);
  });
  return loadSettings();
}
