// The one way the page talks to the local API: same-origin fetch with the session cookie,
// JSON in and out, and errors that say which field they are about.

export class ApiError extends Error {
  constructor(status, message, fields) {
    super(message);
    this.status = status;
    /** field name → reason, from a 422's `detail` list (`{field, msg}` items) */
    this.fields = fields;
  }
}

function describe(status, body) {
  const fields = {};
  if (Array.isArray(body.detail)) {
    for (const item of body.detail) {
      const name = item.field || "body";
      if (!(name in fields)) fields[name] = item.msg;
    }
  }
  let message = body.message;
  if (!message) message = typeof body.detail === "string" ? body.detail : `request failed (${status})`;
  return new ApiError(status, message, fields);
}

/** Calls the API; resolves with the parsed body (and the response), rejects with ApiError. */
export async function request(method, path, body, { keepalive = false } = {}) {
  const init = { method, credentials: "same-origin", keepalive, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, "The app's local service is not answering.", {});
  }
  if (response.status === 204) return { data: null, response };
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw describe(response.status, data);
  return { data, response };
}

export const api = {
  get: async (path) => (await request("GET", path)).data,
  post: async (path, body) => (await request("POST", path, body)).data,
  put: async (path, body) => (await request("PUT", path, body)).data,
  patch: async (path, body, options) => (await request("PATCH", path, body, options)).data,
  del: async (path) => (await request("DELETE", path)).data,
  /** A page of a list and the total that matches, from `X-Total-Count`. */
  async list(path, params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== "") query.set(key, String(value));
    }
    const { data, response } = await request("GET", `${path}?${query}`);
    return { rows: data, total: Number(response.headers.get("X-Total-Count") || data.length) };
  },
};

/** Shows an ApiError's messages next to the fields of `form` (`[data-field]` elements) and
 * returns true if some field took one; other messages go to the form's `body` slot. The first
 * field in error takes the focus unless `focus` is false (an autosave while someone types). */
export function showErrors(form, err, rename = {}, { focus = true } = {}) {
  clearErrors(form);
  const fields = err instanceof ApiError ? err.fields : {};
  let placed = false;
  for (const [name, msg] of Object.entries(fields)) {
    const target = rename[name] || name;
    const slot = form.querySelector(`.field-error[data-field="${target}"]`);
    if (slot && target !== "body") {
      slot.textContent = msg;
      const input = document.getElementById(slot.id.replace(/-error$/, ""));
      if (input) input.setAttribute("aria-invalid", "true");
      if (!placed && input && focus) input.focus();
      placed = true;
    }
  }
  if (!placed) {
    const slot = form.querySelector('.field-error[data-field="body"]');
    if (slot) slot.textContent = err.message;
  }
  return placed;
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}
