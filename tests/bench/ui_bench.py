"""Benchmark of the window's UI with a long task list, in Debian's Chromium (not a pytest test).

    .venv/bin/python tests/bench/ui_bench.py [--tasks 10000] [--runs 5] [--adds 2] [--profile] [--keep-dir]

The app is the real one: `ferry --headless --data-dir DIR` in a subprocess (its URL and token
from DIR/runtime.json; it is stopped by its PID at the end), seeded with `--tasks` tasks through
its own API (POST /api/tasks from several threads: due dates past, today, future and none, one in
seven completed). Chromium (headless, Playwright's sync API, a 1100x720 viewport) opens
`/?token=...` once for the session cookie, then measures, `--runs` times each:

- first_view_ms: from navigation start (`performance.timeOrigin`) of a navigation to `/` to the
  page's `ferry:ready` event (main.js dispatches it once the first page of rows is on screen);
  first_view_paint_ms: to the end of the next frame after it (a requestAnimationFrame, then a
  message: the frame with the rows has been produced). Goal: first view <= 300 ms.
- quick_add_ms: with the list at the top, `#new-title` filled and Enter pressed, from the Enter
  keydown (an in-page capture listener) to the new row (`.row[data-id]` whose `.title` is the
  text) being added to `#task-list` (a MutationObserver); a task without a due date sorts last,
  so the list scrolls to the end (vlist `reveal`) to show it. quick_add_paint_ms: to the end of
  the next frame; quick_add_visible_ms: to the first frame where the row is inside the list's
  visible box (an IntersectionObserver; null if it never is within 3 s). Goal: visible <= 50 ms.
  `--adds` adds per run. Then, for comparison, one add per run of a task due 2000-01-01, which
  sorts first and so appears where the list already is (quick_add_dated_visible_ms).
- scroll: from the top to the bottom of the whole list, `--step` px per frame set on
  `#task-list.scrollTop` from requestAnimationFrame (the main thread does the work, as when the
  list is dragged); the rAF timestamps give the frame times: frames, frames over 50 ms, the
  longest, p50/p99, total time; also how many frames showed placeholder rows (pages not yet
  fetched) inside the visible box, whether any were visible on reaching the bottom, and the
  time from reaching the bottom until the last row is on screen with its title. Goal: no frame
  over 50 ms.

Output: JSON lines, one for the machine and the seeding, then one per metric with the median,
max and each run's value (`{"bench": "ui", "metric": ..., "median": ..., "max": ..., "runs":
[...], "tasks": 10000, "goal": ...}`), then a summary. With `--profile`, unmeasured rounds follow:
each phase under V8's sampling profiler (the functions with the most self time), then under
Chromium's tracing (the renderer main thread's busy and CPU time, its tasks over 50 ms with their
wall and CPU time -- on a busy machine a long frame may be a wait for a core, not work -- and the
trace events with the most self time). The page's CSP forbids eval, so everything in the page runs
through an init script and `page.evaluate` with functions (CDP), never `wait_for_function` with a
string.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("FERRY_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1100, "height": 720}
ROW_HEIGHT = 40  # ui/js/tasks.js ROW_HEIGHT, ui/app.css `#task-list .row`
GOALS = {"first_view_ms": 300, "quick_add_visible_ms": 50, "scroll_frames_over_50ms": 0}

# Runs in every document before the page's own scripts (CDP, so the CSP does not apply).
INIT_JS = r"""
(() => {
  if (window.top !== window || window.__ferryBench) return;
  const b = window.__ferryBench = {
    ready: null, readyRows: 0, readyFrame: null, readyPaint: null,
    qaArmed: false, qa: null, qaDone: null, longtasks: [],
  };
  // Promises that Python awaits (one page.evaluate), so that no polling runs in the page.
  b.whenReady = new Promise((resolve) => { b.readyDone = resolve; });
  b.within = (promise, ms) => Promise.race([promise, new Promise((r) => setTimeout(r, ms))]);
  try { performance.setResourceTimingBufferSize(100000); } catch (e) {}
  // After the next frame: its rAF timestamp, and the time once its rendering is done.
  b.afterNextFrame = (cb) => requestAnimationFrame((ts) => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => cb(ts, performance.now());
    ch.port2.postMessage(0);
  });
  document.addEventListener("ferry:ready", () => {
    b.ready = performance.now();
    b.readyRows = document.querySelectorAll("#task-list .row[data-id]").length;
    b.afterNextFrame((ts, t) => { b.readyFrame = ts; b.readyPaint = t; b.readyDone(); });
  }, { once: true });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) b.longtasks.push([e.startTime, e.duration]);
    }).observe({ type: "longtask", buffered: true });
  } catch (e) {}
  // Quick-add: the Enter keydown in #new-title (capture, so before the form's submit)...
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && b.qaArmed && event.target && event.target.id === "new-title") {
      b.qaArmed = false;
      b.qa = { title: event.target.value, start: performance.now(), seen: null, index: null,
               inViewWhenSeen: null, frame: null, paint: null, visible: null };
    }
  }, true);
  const inView = (list, row) => {
    const a = list.getBoundingClientRect(), r = row.getBoundingClientRect();
    return r.height > 0 && r.top >= a.top - 1 && r.bottom <= a.bottom + 1;
  };
  // ...and the row with its title being added to the list (a MutationObserver, installed only
  // while a quick-add is measured); then, with an IntersectionObserver (no per-frame polling),
  // the first rendering update in which it is wholly inside the list's box.
  const watch = (row) => {
    if (!b.watcher) {
      b.watcher = new IntersectionObserver((entries) => {
        const current = b.qa;
        if (!current || current.visible !== null) return;
        for (const e of entries) {
          if (e.isIntersecting && e.intersectionRatio > 0.99 && e.target.dataset.id === current.id) {
            current.visible = e.time;
            b.qaResolve();
            return;
          }
        }
      }, { root: document.getElementById("task-list"), threshold: [0, 1] });
    }
    b.watcher.observe(row);
  };
  b.armQuickAdd = () => {
    const list = document.getElementById("task-list");
    b.stopQuickAdd();
    b.qa = null;
    b.qaArmed = true;
    b.qaDone = new Promise((resolve) => { b.qaResolve = resolve; });
    b.mutations = new MutationObserver((records) => {
      const qa = b.qa;
      if (!qa) return;
      for (const record of records) {
        for (const node of record.addedNodes) {
          if (node.nodeType !== 1 || !node.matches(".row[data-id]")) continue;
          if (qa.seen !== null) {
            // The row may be rendered again (a refresh): the new element is watched too.
            if (qa.visible === null && node.dataset.id === qa.id) watch(node);
            continue;
          }
          const title = node.querySelector(".title");
          if (!title || title.textContent !== qa.title) continue;
          qa.seen = performance.now();
          qa.id = node.dataset.id;
          qa.index = Number(node.dataset.index);
          qa.inViewWhenSeen = inView(list, node);
          b.afterNextFrame((ts, t) => { qa.frame = ts; qa.paint = t; });
          watch(node);
          const resolve = b.qaResolve;  // this add's, not a later one's
          setTimeout(() => resolve(), 3000);  // never visible: give up after 3 s
        }
      }
    });
    b.mutations.observe(list, { childList: true, subtree: true });
  };
  b.stopQuickAdd = () => {
    if (b.mutations) b.mutations.disconnect();
    if (b.watcher) b.watcher.disconnect();
    b.mutations = b.watcher = null;
    b.qaArmed = false;
  };
})();
"""

FIRST_VIEW_JS = """async (timeoutMs) => {
  const b = window.__ferryBench;
  await b.within(b.whenReady, timeoutMs);
  const nav = performance.getEntriesByType("navigation")[0];
  const pages = performance.getEntriesByType("resource").filter((e) => e.name.includes("/api/tasks?"));
  const firstPage = pages.find((e) => /[?&]skip=0(&|$)/.test(e.name));
  const scripts = performance.getEntriesByType("resource").filter((e) => e.name.includes("/static/js/"));
  const round = (x) => (x == null ? null : Math.round(x * 10) / 10);
  return {
    ready: round(b.ready), paint: round(b.readyPaint), frame: round(b.readyFrame), rows: b.readyRows,
    html_response_end: round(nav && nav.responseEnd),
    dom_content_loaded: round(nav && nav.domContentLoadedEventEnd),
    scripts_loaded: round(scripts.length ? Math.max(...scripts.map((e) => e.responseEnd)) : null),
    scripts: scripts.length,
    first_page_fetch_start: round(firstPage && firstPage.startTime),
    first_page_fetch_end: round(firstPage && firstPage.responseEnd),
    longtasks: b.longtasks.map(([s, d]) => [round(s), round(d)]),
    requests: performance.getEntriesByType("resource").filter((e) => e.startTime <= b.ready)
      .map((e) => [new URL(e.name).pathname + new URL(e.name).search, round(e.startTime), round(e.responseEnd)]),
  };
}"""

SETTLE_JS = """async ({ top, timeoutMs }) => {
  // Scrolls the list to `top` and waits until no placeholder is in view and the list is idle.
  const list = document.getElementById("task-list");
  list.scrollTop = top;
  const started = performance.now();
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  while (performance.now() - started < timeoutMs) {
    await frame();
    const a = list.getBoundingClientRect();
    const rows = [...list.querySelectorAll(".row")].filter((r) => {
      const x = r.getBoundingClientRect();
      return x.bottom > a.top && x.top < a.bottom;
    });
    const waiting = rows.some((r) => r.classList.contains("placeholder"));
    if (rows.length && !waiting && list.getAttribute("aria-busy") === "false") {
      return { ok: true, ms: performance.now() - started };
    }
  }
  return { ok: false, ms: performance.now() - started };
}"""

ARM_QUICK_ADD_JS = """() => {
  const b = window.__ferryBench;
  b.armQuickAdd();
  b.qaResources = performance.getEntriesByType("resource").length;
  return document.activeElement && document.activeElement.id;
}"""

QUICK_ADD_RESULT_JS = """async (timeoutMs) => {
  const b = window.__ferryBench;
  await b.within(b.qaDone, timeoutMs);
  await new Promise((resolve) => b.afterNextFrame(resolve));  // the frame after the row, measured
  b.stopQuickAdd();
  const qa = b.qa;
  if (!qa) return null;
  const round = (x) => (x == null ? null : Math.round(x * 10) / 10);
  const rel = (x) => (x == null ? null : round(x - qa.start));
  const api = performance.getEntriesByType("resource").slice(b.qaResources)
    .filter((e) => e.name.includes("/api/"));
  const requests = api.filter((e) => qa.seen === null || e.startTime <= qa.seen)
    .map((e) => [new URL(e.name).pathname + new URL(e.name).search, rel(e.startTime), rel(e.responseEnd)]);
  return {
    title: qa.title, seen: rel(qa.seen), paint: rel(qa.paint), visible: rel(qa.visible),
    index: qa.index, in_view_when_seen: qa.inViewWhenSeen,
    requests, api_requests_after: api.length - requests.length,
    // Where the row is at the end, relative to the bottom of the list's box (> -40: not wholly shown).
    row_top_below_view_bottom_px: (() => {
      const list = document.getElementById("task-list");
      const row = qa.id && list.querySelector(`.row[data-id="${qa.id}"]`);
      return row ? round(row.getBoundingClientRect().top - list.getBoundingClientRect().bottom) : null;
    })(),
    waited: rel(performance.now()),
    total: Number(document.querySelector("#task-list .row")?.getAttribute("aria-setsize")),
  };
}"""

SCROLL_JS = """async ({ step, rowHeight, timeoutMs }) => {
  const b = window.__ferryBench;
  const list = document.getElementById("task-list");
  const longtasksBefore = b.longtasks.length;
  const visiblePlaceholders = () => {
    const top = list.scrollTop, bottom = top + list.clientHeight;
    let n = 0;
    for (const r of list.querySelectorAll(".row.placeholder")) {
      const i = Number(r.dataset.index);
      if ((i + 1) * rowHeight > top && i * rowHeight < bottom) n += 1;
    }
    return n;
  };
  const frames = [];
  let placeholderFrames = 0, maxPlaceholders = 0, timedOut = false;
  const started = performance.now();
  await new Promise((resolve) => {
    const tick = (ts) => {
      frames.push(ts);
      const n = visiblePlaceholders();
      if (n) placeholderFrames += 1;
      maxPlaceholders = Math.max(maxPlaceholders, n);
      const max = list.scrollHeight - list.clientHeight;
      if (list.scrollTop >= max - 1) return resolve();
      if (performance.now() - started > timeoutMs) { timedOut = true; return resolve(); }
      list.scrollTop = Math.min(max, list.scrollTop + step);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const bottomAt = performance.now();
  const placeholdersAtBottom = visiblePlaceholders();
  // Then until the last row is on screen with its title (and nothing in view is a placeholder).
  const lastReal = () => {
    const rows = list.querySelectorAll(".row");
    let last = null;
    for (const r of rows) if (!last || Number(r.dataset.index) > Number(last.dataset.index)) last = r;
    if (!last || Number(last.dataset.index) !== Number(last.getAttribute("aria-setsize")) - 1) return false;
    const title = last.querySelector(".title");
    return !!(last.dataset.id && title && title.textContent);
  };
  let settled = null;
  while (performance.now() - bottomAt < 10000) {
    if (lastReal() && visiblePlaceholders() === 0) { settled = performance.now() - bottomAt; break; }
    await new Promise((r) => requestAnimationFrame(r));
  }
  const last = list.querySelector(".row[aria-setsize]");
  return {
    frames, placeholderFrames, maxPlaceholders, placeholdersAtBottom, settled, timedOut,
    scrollTop: list.scrollTop, scrollHeight: list.scrollHeight,
    total: last ? Number(last.getAttribute("aria-setsize")) : null,
    longtasks: b.longtasks.slice(longtasksBefore).map(([s, d]) => Math.round(d)),
  };
}"""


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def figure(metric: str, values: list[float | None], tasks: int, **extra: Any) -> dict:
    present = [v for v in values if v is not None]
    out: dict[str, Any] = {
        "bench": "ui",
        "metric": metric,
        "median": round(statistics.median(present), 1) if present else None,
        "max": round(max(present), 1) if present else None,
        "runs": [None if v is None else round(v, 1) for v in values],
        "tasks": tasks,
    }
    if metric in GOALS:
        out["goal"] = GOALS[metric]
    out.update(extra)
    emit(**out)
    return out


# -- the app ------------------------------------------------------------------------------------


@contextmanager
def ferry_headless(data_dir: Path, timeout: float = 60) -> Iterator[dict]:
    """`ferry --headless --data-dir DIR`; yields its runtime.json, stops it by PID afterwards."""
    ferry = Path(sys.executable).with_name("ferry")
    command = [str(ferry)] if ferry.exists() else [sys.executable, "-m", "desktop"]
    log = open(data_dir.parent / f"{data_dir.name}-stdout.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [*command, "--headless", "--data-dir", str(data_dir)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        runtime = data_dir / "runtime.json"
        deadline = time.monotonic() + timeout
        info = None
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ferry --headless exited with {proc.returncode}; see {log.name}")
            try:
                info = json.loads(runtime.read_text())
                if info.get("pid") == proc.pid:
                    httpx.get(f"{info['url']}/api/health", timeout=2).raise_for_status()
                    break
            except (OSError, ValueError, httpx.HTTPError):
                pass
            info = None
            time.sleep(0.05)
        if info is None:
            raise TimeoutError(f"ferry --headless did not write {runtime} within {timeout} s")
        yield info
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(5)
        log.close()


def seed(url: str, token: str, count: int, threads: int = 6) -> float:
    """`count` tasks through POST /api/tasks from `threads` threads; seconds taken."""
    today = dt.date.today()
    rng = random.Random(1)
    bodies = []
    for i in range(count):
        kind = i % 10
        if kind < 3:
            due: str | None = None
        elif kind < 6:
            due = (today - dt.timedelta(days=rng.randint(1, 400))).isoformat()  # overdue unless completed
        elif kind == 6:
            due = today.isoformat()
        else:
            due = (today + dt.timedelta(days=rng.randint(1, 400))).isoformat()
        bodies.append({
            "title": f"task {i}: " + " ".join(rng.choice(("call", "fix", "buy", "write", "plan", "read", "ship"))
                                            for _ in range(rng.randint(1, 8))),
            "description": "some words " * rng.randint(0, 20),
            "due_date": due,
            "completed": i % 7 == 0,
        })  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=threads, max_keepalive_connections=threads)
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def post(body: dict) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=url, headers=headers, timeout=30, limits=limits)
            with lock:
                clients.append(client)
        response = client.post("/api/tasks", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"seeding: {response.status_code} {response.text[:300]}")

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(threads) as pool:
            for _ in pool.map(post, bodies):
                pass
    finally:
        for client in clients:
            client.close()
    elapsed = time.perf_counter() - started
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        total = int(client.get("/api/tasks", params={"limit": 1}).headers["x-total-count"])
    if total < count:
        raise RuntimeError(f"seeded {count} tasks but the API lists {total}")
    return elapsed


# -- the page -----------------------------------------------------------------------------------


def settle(page: Any, top: int = 0) -> None:
    result = page.evaluate(SETTLE_JS, {"top": top, "timeoutMs": 15_000})
    if not result["ok"]:
        raise RuntimeError("the list did not settle (placeholders still in view after 15 s)")


def first_view(page: Any, target: str) -> dict:
    page.goto(target, wait_until="commit", timeout=30_000)
    result = page.evaluate(FIRST_VIEW_JS, 30_000)
    if result["ready"] is None:
        raise RuntimeError("ferry:ready was not dispatched within 30 s")
    if not result["rows"]:
        raise RuntimeError("ferry:ready came with no task rows on screen")
    return result


def quick_add(page: Any, title: str, due: str = "") -> dict:
    settle(page, 0)
    page.locator("#new-due").fill(due)
    title_field = page.locator("#new-title")
    title_field.click()
    title_field.fill(title)
    page.evaluate(ARM_QUICK_ADD_JS)
    page.keyboard.press("Enter")
    result = page.evaluate(QUICK_ADD_RESULT_JS, 15_000)
    if not result or result["seen"] is None:
        raise RuntimeError(f"the quick-added row {title!r} did not appear within 15 s")
    page.wait_for_timeout(300)  # the live event's refresh; then the next add
    return result


def scroll(page: Any, step: int) -> dict:
    settle(page, 0)
    result = page.evaluate(SCROLL_JS, {"step": step, "rowHeight": ROW_HEIGHT, "timeoutMs": 180_000})
    ts = result.pop("frames")
    deltas = sorted(b - a for a, b in itertools.pairwise(ts))
    result.update(
        frame_count=len(deltas),
        over_50=sum(d > 50 for d in deltas),
        over_33=sum(d > 33.4 for d in deltas),
        longest=deltas[-1] if deltas else None,
        p50=percentile(deltas, 0.5) if deltas else None,
        p99=percentile(deltas, 0.99) if deltas else None,
        total_ms=ts[-1] - ts[0] if len(ts) > 1 else 0.0,
    )
    return result


# -- profiling ----------------------------------------------------------------------------------


@contextmanager
def profiled(page: Any, phase: str, top: int = 12) -> Iterator[None]:
    """V8's sampling profiler around a phase; prints the functions with the most self time."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 100})
    cdp.send("Profiler.start")
    try:
        yield
    finally:
        profile = cdp.send("Profiler.stop")["profile"]
        cdp.send("Profiler.disable")
        cdp.detach()
    nodes = {node["id"]: node for node in profile["nodes"]}
    self_ms: dict[str, float] = {}
    for node_id, delta in zip(profile.get("samples", []), profile.get("timeDeltas", []), strict=False):
        frame = nodes[node_id]["callFrame"]
        name = frame["functionName"] or "(anonymous)"
        where = frame["url"].rsplit("/", 1)[-1]
        key = f"{name} {where}:{frame['lineNumber'] + 1}" if where else name
        self_ms[key] = self_ms.get(key, 0.0) + delta / 1000
    busy = {k: v for k, v in self_ms.items() if k not in ("(idle)",)}
    ranked = sorted(busy.items(), key=lambda kv: -kv[1])[:top]
    emit(bench="ui", what="profile", phase=phase, busy_ms=round(sum(busy.values()), 1),
         idle_ms=round(self_ms.get("(idle)", 0.0), 1),
         top_self_ms=[[k, round(v, 1)] for k, v in ranked])  # fmt: skip


TRACE_CATEGORIES = ["toplevel", "devtools.timeline", "disabled-by-default-devtools.timeline", "blink", "v8"]


@contextmanager
def traced(browser: Any, page: Any, phase: str, top: int = 12) -> Iterator[None]:
    """Chromium's trace around a phase: the renderer main thread's tasks over 50 ms, each with
    its wall time and its thread CPU time (wall much above CPU: the thread was waiting for a
    core), and the trace events with the most self time on that thread."""
    browser.start_tracing(page=page, categories=TRACE_CATEGORIES)
    try:
        yield
    finally:
        raw = browser.stop_tracing()
    trace = json.loads(raw)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    mains = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
    }
    by_thread: dict[tuple[int, int], list[dict]] = {key: [] for key in mains}
    for e in events:
        key = (e.get("pid"), e.get("tid"))
        if key in by_thread and e.get("ph") == "X" and "dur" in e:
            by_thread[key].append(e)
    if not by_thread:
        return
    xs = sorted(max(by_thread.values(), key=len), key=lambda e: (e["ts"], -e["dur"]))
    self_us: dict[str, float] = {}
    stack: list[dict] = []
    long_tasks = []
    wall_us = cpu_us = 0.0
    for e in xs:
        while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
            stack.pop()
        if stack:
            self_us[stack[-1]["name"]] = self_us.get(stack[-1]["name"], 0.0) - e["dur"]
        else:  # a top-level task
            wall_us += e["dur"]
            cpu_us += e.get("tdur", e["dur"])
            if e["dur"] > 50_000:
                long_tasks.append([round(e["dur"] / 1000, 1), round(e.get("tdur", 0) / 1000, 1)])
        self_us[e["name"]] = self_us.get(e["name"], 0.0) + e["dur"]
        stack.append(e)
    ranked = sorted(self_us.items(), key=lambda kv: -kv[1])[:top]
    emit(bench="ui", what="trace", phase=phase, main_thread_busy_ms=round(wall_us / 1000, 1),
         main_thread_cpu_ms=round(cpu_us / 1000, 1),
         tasks_over_50ms_wall_cpu_ms=long_tasks, tasks_over_50ms_cpu=sum(c > 50 for _, c in long_tasks),
         top_self_ms=[[k, round(v / 1000, 1)] for k, v in ranked])  # fmt: skip


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks to seed (default 10000)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (default 5)")
    parser.add_argument("--adds", type=int, default=2, help="quick-adds per run (default 2, so 10 in all)")
    parser.add_argument("--step", type=int, default=300, help="scroll step, px per frame (default 300)")
    parser.add_argument("--threads", type=int, default=6, help="seeding threads (default 6)")
    parser.add_argument("--profile", action="store_true", help="one more round under the JS profiler")
    parser.add_argument("--headed", action="store_true", help="show the browser (needs a display)")
    parser.add_argument("--keep-dir", action="store_true", help="keep the data directory (its path is printed)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"Chromium not found at {CHROMIUM} (set FERRY_CHROMIUM)")

    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="ferry-ui-bench-"))
    data_dir = tmp / "data"
    data_dir.mkdir()
    emit(bench="ui", what="machine", cpus=os.cpu_count(), load_avg=[round(x, 2) for x in os.getloadavg()],
         platform=platform.platform(), python=platform.python_version(), chromium=CHROMIUM,
         data_dir=str(data_dir) if args.keep_dir else None)  # fmt: skip
    try:
        with ferry_headless(data_dir) as info:
            url, token = info["url"], info["token"]
            seconds = seed(url, token, args.tasks, args.threads)
            emit(bench="ui", what="seed", tasks=args.tasks, seconds=round(seconds, 1), via="POST /api/tasks",
                 threads=args.threads)  # fmt: skip
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=not args.headed, args=["--no-sandbox"])
                try:
                    context = browser.new_context(viewport=VIEWPORT)
                    context.add_init_script(INIT_JS)
                    page = context.new_page()
                    page.set_default_timeout(15_000)
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                    run_rounds(page, url, token, args)
                    if args.profile:
                        profile_round(browser, page, url, args)
                    if errors:
                        emit(bench="ui", what="page errors", errors=errors[:20])
                finally:
                    browser.close()
    finally:
        if args.keep_dir:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def run_rounds(page: Any, url: str, token: str, args: argparse.Namespace) -> None:
    # The first open: /?token= sets the cookie and redirects to / (timed from the first request).
    cold = first_view(page, f"{url}/?token={token}")
    cold_view = cold["ready"]

    views = [first_view(page, f"{url}/") for _ in range(args.runs)]
    figure("first_view_ms", [v["ready"] for v in views], args.tasks, cold_first_open=cold_view,
           rows_at_ready=[v["rows"] for v in views])  # fmt: skip
    figure("first_view_paint_ms", [v["paint"] for v in views], args.tasks)
    keys = ("html_response_end", "dom_content_loaded", "scripts_loaded", "first_page_fetch_start",
            "first_page_fetch_end", "ready", "paint")  # fmt: skip
    emit(bench="ui", what="first view breakdown (median ms from navigation start)",
         **{k: round(statistics.median(v[k] for v in views if v[k] is not None), 1) for k in keys},
         longtasks=[v["longtasks"] for v in views],
         requests_finished_by_paint_last_run=views[-1]["requests"])  # fmt: skip

    adds = []
    for run in range(args.runs):
        for i in range(args.adds):
            adds.append(quick_add(page, f"bench quick add {run}.{i} {time.time_ns()}"))
    figure("quick_add_ms", [a["seen"] for a in adds], args.tasks, what="Enter keydown to the row in the DOM")
    figure("quick_add_paint_ms", [a["paint"] for a in adds], args.tasks, what="to the end of the next frame")
    figure("quick_add_visible_ms", [a["visible"] for a in adds], args.tasks,
           what="to the first frame with the row inside the list's visible box (null: never, within 3 s)",
           in_view_when_added=[a["in_view_when_seen"] for a in adds], index=[a["index"] for a in adds],
           row_top_below_view_bottom_px=[a["row_top_below_view_bottom_px"] for a in adds],
           list_total=[a["total"] for a in adds])  # fmt: skip
    emit(bench="ui", what="quick-add: API requests until the row was added (path, start, end: ms from Enter), last add",
         requests=adds[-1]["requests"],
         api_requests_after=[[a["api_requests_after"], a["waited"]] for a in adds],
         note="api_requests_after: [requests the list made after the row was added, in the ms waited]")  # fmt: skip
    # For comparison (and as a check of the measurement): a task due 2000-01-01 sorts first, so
    # it appears at the top of the list, where the list already is.
    dated = [quick_add(page, f"bench dated add {run} {time.time_ns()}", "2000-01-01") for run in range(args.runs)]
    figure("quick_add_dated_visible_ms", [a["visible"] for a in dated], args.tasks,
           what="a task due 2000-01-01 (first in the list): Enter to the row visible",
           added_ms=[a["seen"] for a in dated], index=[a["index"] for a in dated],
           requests=dated[-1]["requests"])  # fmt: skip

    scrolls = [scroll(page, args.step) for _ in range(args.runs)]
    tasks_now = scrolls[-1]["total"]
    figure("scroll_frames_over_50ms", [s["over_50"] for s in scrolls], args.tasks, list_total=tasks_now,
           step_px=args.step, frames=[s["frame_count"] for s in scrolls],
           timed_out=any(s["timedOut"] for s in scrolls))  # fmt: skip
    figure("scroll_longest_frame_ms", [s["longest"] for s in scrolls], args.tasks)
    figure("scroll_frame_p50_ms", [s["p50"] for s in scrolls], args.tasks)
    figure("scroll_frame_p99_ms", [s["p99"] for s in scrolls], args.tasks)
    figure("scroll_frames_over_33ms", [s["over_33"] for s in scrolls], args.tasks)
    figure("scroll_total_ms", [s["total_ms"] for s in scrolls], args.tasks)
    figure("scroll_frames_with_placeholders", [s["placeholderFrames"] for s in scrolls], args.tasks,
           max_in_view=[s["maxPlaceholders"] for s in scrolls],
           placeholders_in_view_at_bottom=[s["placeholdersAtBottom"] for s in scrolls])  # fmt: skip
    figure("scroll_bottom_to_last_row_ms", [s["settled"] for s in scrolls], args.tasks,
           what="from reaching the bottom to the last row shown with its title (null: not within 10 s)")  # fmt: skip
    emit(bench="ui", what="scroll long tasks (ms)", runs=[s["longtasks"] for s in scrolls])

    first_ok = statistics.median(v["ready"] for v in views) <= GOALS["first_view_ms"]
    visible = [a["visible"] for a in adds]
    add_ok = all(v is not None for v in visible) and max(visible) <= GOALS["quick_add_visible_ms"]  # type: ignore[type-var]
    scroll_ok = all(s["over_50"] == 0 for s in scrolls)
    emit(bench="ui", what="summary", tasks=args.tasks,
         goals={"first_view_le_300ms": first_ok, "quick_add_visible_le_50ms": add_ok,
                "no_scroll_frame_over_50ms": scroll_ok},
         load_avg=[round(x, 2) for x in os.getloadavg()])  # fmt: skip


def profile_round(browser: Any, page: Any, url: str, args: argparse.Namespace) -> None:
    """Unmeasured: each phase once under the JS profiler, then once traced."""
    with profiled(page, "first view"):
        first_view(page, f"{url}/")
    with traced(browser, page, "first view"):
        first_view(page, f"{url}/")
    settle(page, 0)
    with profiled(page, "quick-add"):
        quick_add(page, f"bench profiled add {time.time_ns()}")
    settle(page, 0)
    with traced(browser, page, "quick-add"):
        quick_add(page, f"bench traced add {time.time_ns()}")
    with profiled(page, "scroll"):
        scroll(page, args.step)
    with traced(browser, page, "scroll"):
        scroll(page, args.step)


if __name__ == "__main__":
    raise SystemExit(main())
