// The sync badge (always in the top bar) and the Sync dialog: connect to a server (or create an
// account there), sign out, sync now. The badge follows `sync.status` events as they come.

import { api, ApiError, clearErrors, showErrors } from "./api.js";
import { clockTime, stamp } from "./dates.js";
import * as live from "./live.js";
import { currentSettings } from "./settings.js";

const $ = (id) => document.getElementById(id);
let status = null;

function describe(s) {
  switch (s.state) {
    case "signed_out": return "Signed out";
    case "offline": return "Offline";
    case "error": return "Sync error";
    case "syncing": {
      const p = s.progress;
      return p && p.total ? `Syncing ${Math.floor((100 * p.done) / p.total)}%` : "Syncing…";
    }
    default: return s.last_synced_at ? `Up to date · ${clockTime(s.last_synced_at)}` : "Up to date";
  }
}

function render(s) {
  status = s;
  const badge = $("sync-badge");
  badge.dataset.state = s.state;
  $("sync-text").textContent = describe(s);
  const pending = $("sync-pending");
  pending.hidden = !(s.pending_changes > 0) || s.state === "signed_out";
  pending.textContent = `${s.pending_changes} waiting`;
  const reason = s.state === "error" || s.state === "offline" ? s.last_error : null;
  badge.title = [describe(s), reason, s.last_synced_at ? `Last synced ${stamp(s.last_synced_at)}` : null]
    .filter(Boolean).join(" — ");
  badge.setAttribute("aria-label", `Sync: ${badge.title}${s.pending_changes ? `, ${s.pending_changes} changes waiting` : ""}`);
  if ($("sync-dialog").open) fillDialog();
}

function fillDialog() {
  const signedIn = status && status.state !== "signed_out";
  $("sync-signed-in").hidden = !signedIn;
  $("connect-form").hidden = signedIn;
  if (!signedIn) return;
  $("sync-server").textContent = status.server_url || "";
  $("sync-user").textContent = status.username || "";
  $("sync-state").textContent = describe(status);
  $("sync-last").textContent = status.last_synced_at ? stamp(status.last_synced_at) : "Not yet";
  $("sync-waiting").textContent = String(status.pending_changes);
  $("sync-error").textContent = status.state === "error" || status.state === "offline" ? status.last_error || "" : "";
}

export async function loadStatus() {
  try {
    render(await api.get("/api/sync/status"));
  } catch {
    // the badge keeps its last state until the next event
  }
}

function openDialog() {
  fillDialog();
  const form = $("connect-form");
  if (!form.hidden) {
    clearErrors(form);
    if (!$("connect-url").value) $("connect-url").value = (currentSettings() || {}).server_url || "";
  }
  $("sync-dialog").showModal();
  (form.hidden ? $("sync-now") : $("connect-url").value ? $("connect-username") : $("connect-url")).focus();
}

async function connect(event) {
  event.preventDefault();
  const form = $("connect-form");
  clearErrors(form);
  let url = $("connect-url").value.trim();
  // A bare host name means HTTPS; a local or test server is typed with its http:// in front.
  if (url && !/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) url = `https://${url}`;
  const body = {
    server_url: url,
    username: $("connect-username").value,
    password: $("connect-password").value,
    register: $("connect-register").checked,
  };
  const button = $("connect-submit");
  button.disabled = true;
  button.textContent = body.register ? "Creating account…" : "Connecting…";
  try {
    render(await api.post("/api/sync/connect", body));
    $("connect-password").value = "";
    fillDialog();
    $("sync-now").focus();
  } catch (err) {
    showErrors(form, explain(err));
  } finally {
    button.disabled = false;
    button.textContent = "Connect";
  }
}

/** Puts the server's answer next to the field it is about. */
function explain(err) {
  const detail = err.message;
  if (err.status === 401) return new ApiError(401, detail, { password: "Wrong username or password" });
  if (err.status === 409) return new ApiError(409, detail, { username: "That username is taken" });
  if (err.status === 502) return new ApiError(502, detail, { server_url: `Could not reach the server: ${detail}` });
  return err;
}

export function initSync() {
  $("sync-badge").addEventListener("click", openDialog);
  $("connect-form").addEventListener("submit", connect);
  $("sync-now").addEventListener("click", async () => {
    try {
      render(await api.post("/api/sync/now"));
    } catch (err) {
      $("sync-error").textContent = err.message;
    }
  });
  $("sync-signout").addEventListener("click", async () => {
    try {
      render(await api.post("/api/sync/disconnect"));
      fillDialog();
      $("connect-username").focus();
    } catch (err) {
      $("sync-error").textContent = err.message;
    }
  });
  live.on("sync.status", render);
  live.on("resync", loadStatus);
  return loadStatus();
}
