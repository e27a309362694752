"""Start-up benchmark of the desktop app under Xvfb; prints JSON lines (not a pytest test).

    .venv/bin/python tests/bench/startup_bench.py                # builds, then measures
    .venv/bin/python tests/bench/startup_bench.py --app dist/ferry/ferry   # an existing build

Time to interactive is from process start (just before `exec`) to the page's first task list
on screen (the page's `POST /api/app/ready`, whose time the app logs), with 1,000 tasks; the
rows also give the time to the window on screen (showing its splash page):
- built app, cold: the first launch after the build;
- built app, warm: the median of `--runs` launches;
- a bare pywebview window showing a static page (to its `loaded` event), same Python and Qt,
  interleaved with the warm launches so that both see the same machine load;
- from source (`python -m desktop`), for comparison.
Exit: from SIGTERM, or from the window's close request (WM_DELETE_WINDOW), to the end of the
process, and whether any helper process outlived it. Memory: the resident set of the app's
process (Python, with Qt WebEngine's browser side in it) with 10,000 tasks, after the first
render, also as PSS and USS and split by mapping (anonymous memory, then the biggest shared
libraries); Chromium's renderer and GPU helper processes are reported apart. The same
figures for the bare window's process (drawn in software, as Ferry's is) give the floor that
any window in the process starts from.

Goals: warm ≤ 1.5 s and ≤ 1.3 x the bare window; exit ≤ 2 s; ≤ 150 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from server.app import create_app  # noqa: E402
from server.records import TASKS  # noqa: E402
from server.settings import Settings  # noqa: E402
from tests.desktop_harness import (  # noqa: E402
    SOURCE_COMMAND,
    App,
    alive,
    app_env,
    close_window,
    descendants,
    find_window,
    rss_mb,
    stop_process,
    wait_gone,
    xvfb,
)

BARE = textwrap.dedent(
    """
    import os, sys, time
    hold = sys.argv[1:] == ["hold"]
    if hold:  # drawn as Ferry draws its window (software on Linux), for its memory
        from desktop.window import prepare_qt_environment
        prepare_qt_environment()
    elif hasattr(os, "geteuid") and os.geteuid() == 0:
        os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = "--no-sandbox"
    import webview

    page = "<!doctype html><title>bare</title><ul>" + "".join(f"<li>task {i}</li>" for i in range(1000)) + "</ul>"
    window = webview.create_window("bare", html=page, width=1100, height=760)

    def measure():
        window.events.loaded.wait(60)
        print(f"loaded at {time.time():.3f}", flush=True)
        if hold:
            sys.stdin.read()  # until the benchmark has measured it
        window.destroy()

    webview.start(measure, gui="qt" if sys.platform.startswith("linux") else None)
    """
)


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def seed(data_dir: Path, count: int) -> None:
    """`count` tasks through `server.records`, as the API writes them (synchronous=NORMAL, to
    seed quickly; the app itself opens the file with its own settings)."""
    app = create_app(Settings(mode="local", data_dir=data_dir, local_token="x" * 32, sqlite_synchronous="NORMAL"))
    records = app.state.ferry.records
    rng = random.Random(1)
    for i in range(count):
        values = {
            "title": f"task {i}: " + "word " * rng.randint(1, 8),
            "description": "some words " * rng.randint(0, 20),
            "due_date": f"2031-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" if i % 3 else None,
            "completed": i % 7 == 0,
        }
        assert records.create(TASKS, "", values, None) is not None
    app.state.ferry.db.dispose()


def memory(pid: int) -> dict[str, float]:
    """Resident memory of one process in MB: total, anonymous, file-backed (code of the shared
    libraries it touched, shared with other processes), proportional (shared pages split) and
    unique (pages no other process maps: what ending it would give back)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()

    def field(text: str, name: str) -> float:
        return round(int(text.split(f"\n{name}:", 1)[1].split()[0]) / 1024, 1)

    return {
        "rss_mb": field(status, "VmRSS"),
        "anon_mb": field(status, "RssAnon"),
        "file_mb": field(status, "RssFile"),
        "pss_mb": field("\n" + rollup, "Pss"),
        "uss_mb": round(field("\n" + rollup, "Private_Clean") + field("\n" + rollup, "Private_Dirty"), 1),
    }


def memory_parts(pid: int, top: int = 6) -> dict[str, float]:
    """The resident set of one process by mapping, in MB: anonymous memory (Python's heap and
    Qt's/Chromium's together), then the files it maps that hold the most (shared libraries)."""
    parts: dict[str, int] = {}
    name = "anonymous"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:
            path = head[5] if len(head) > 5 else ""
            name = Path(path).name if path.startswith("/") else "anonymous"
        elif line.startswith("Rss:"):
            parts[name] = parts.get(name, 0) + int(line.split()[1])
    anonymous = parts.pop("anonymous", 0)
    biggest = sorted(parts.items(), key=lambda item: -item[1])[:top]
    return {"anonymous": round(anonymous / 1024, 1), **{k: round(v / 1024, 1) for k, v in biggest}}


def headless_rss(command: list[str], data_dir: Path) -> float:
    """The same process without the window: the Python side alone, after listing 500 tasks."""
    app = App([*command, "--headless"], data_dir, None).start()
    try:
        app.wait_log("local API at", 60)
        with app.api() as api:
            assert len(api.get("/api/tasks", params={"limit": 500}).json()) == 500
        assert app.proc is not None
        return rss_mb(app.proc.pid)
    finally:
        app.stop()


def build(out: Path) -> tuple[Path, float]:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
         "--distpath", str(out / "dist"), "--workpath", str(out / "build"), "build.spec"],
        cwd=ROOT, check=True, timeout=1800,
    )  # fmt: skip
    return out / "dist" / "ferry", time.monotonic() - started


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def launch(command: list[str], data_dir: Path, display: str, close: str | None = "SIGTERM") -> dict:
    """One launch to interactive, then closed `close` ("SIGTERM" or "window"); its figures."""
    app = App(command, data_dir, display).start()
    try:
        ready = app.wait_ready(120)
        result: dict = {"window_s": round(app.shown_after(), 3), "tti_s": round(ready, 3)}
        if close is None:
            result["app"] = app
            return result
        assert app.proc is not None
        time.sleep(0.3)
        helpers = descendants(app.proc.pid)
        started = time.monotonic()
        if close == "window":
            close_window(display, find_window(display, "Ferry").id)
        else:
            app.proc.send_signal(signal.SIGTERM)
        app.wait_exit(30)
        result["exit_s"] = round(time.monotonic() - started, 3)
        result["exit_code"] = app.proc.returncode
        result["left_behind"] = len(wait_gone(helpers, 2.0))
        return result
    finally:
        if close is not None:
            app.stop()


def bare(display: str) -> float:
    env = app_env(display)
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-c", BARE], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        stop_process(proc)
    line = next(x for x in out.decode().splitlines() if x.startswith("loaded at "))
    return float(line.split()[-1]) - started


def bare_memory(display: str) -> tuple[dict[str, float], dict[str, float]]:
    """The memory of a bare pywebview window's process (the same page, drawn in software as
    Ferry's window is, no local API), measured as Ferry's is: the floor for a window in the
    process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE, "hold"], env=app_env(display), cwd=ROOT,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdin is not None
        if not select.select([proc.stdout], [], [], 120)[0]:
            raise RuntimeError("the bare window did not load in 120 s")
        if not proc.stdout.readline().startswith(b"loaded at "):
            raise RuntimeError("the bare window did not load")
        time.sleep(1.0)
        figures, parts = memory(proc.pid), memory_parts(proc.pid)
        helpers = alive(descendants(proc.pid))
        figures["helpers_rss_mb"] = round(sum(rss_mb(pid) for pid in helpers), 1)
        proc.stdin.close()
        proc.wait(30)
        return figures, parts
    finally:
        stop_process(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", help="an already built dist/ferry/ferry (default: build one now)")
    parser.add_argument("--runs", type=int, default=5, help="warm launches of each kind (default 5)")
    parser.add_argument("--no-source", action="store_true", help="skip the from-source launches")
    args = parser.parse_args(argv)

    from PyQt6.QtCore import QT_VERSION_STR

    emit(
        bench="startup", what="machine", python=platform.python_version(), qt=QT_VERSION_STR,
        cpus=os.cpu_count(), load_avg=[round(x, 2) for x in os.getloadavg()], platform=platform.platform(),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ferry-startup-") as tmp_name:
        tmp = Path(tmp_name)
        thousand, ten_thousand = tmp / "tasks-1000", tmp / "tasks-10000"
        started = time.monotonic()
        seed(thousand, 1000)
        seed(ten_thousand, 10_000)
        emit(bench="startup", what="seed", tasks=[1000, 10_000], seconds=round(time.monotonic() - started, 1))

        if args.app:
            app_path = Path(args.app).resolve()
        else:
            app_path, seconds = build(tmp)
            app_path = app_path / "ferry"
            emit(bench="startup", what="build", seconds=round(seconds, 1), size_mb=round(folder_mb(app_path.parent)))
        built = [str(app_path)]

        with xvfb() as display:
            cold = launch(built, thousand, display)
            emit(bench="startup", what="tti", app="built", run="cold", tasks=1000, **cold)

            warm, bares, exits = [], [], []
            for i in range(args.runs):
                b = bare(display)
                bares.append(b)
                emit(bench="startup", what="tti", app="bare pywebview", run=i + 1, seconds=round(b, 3))
                close = "window" if i % 2 else "SIGTERM"
                w = launch(built, thousand, display, close)
                warm.append(w["tti_s"])
                exits.append(w["exit_s"])
                emit(bench="startup", what="tti", app="built", run=i + 1, tasks=1000, closed_by=close, **w)

            source = []
            if not args.no_source:
                for i in range(args.runs):
                    s = launch(SOURCE_COMMAND, thousand, display)
                    source.append(s["tti_s"])
                    emit(bench="startup", what="tti", app="source", run=i + 1, tasks=1000, **s)

            held = launch(built, ten_thousand, display, close=None)
            app: App = held.pop("app")
            try:
                assert app.proc is not None
                time.sleep(1.0)
                figures = memory(app.proc.pid)
                main_mb = figures["rss_mb"]
                helpers = alive(descendants(app.proc.pid))
                helper_mb = sum(rss_mb(pid) for pid in helpers)
                emit(bench="startup", what="memory", tasks=10_000, tti_s=held["tti_s"], app="built, window",
                     **figures, helpers=len(helpers), helpers_rss_mb=round(helper_mb, 1))  # fmt: skip
                parts = memory_parts(app.proc.pid)
                emit(bench="startup", what="memory parts", tasks=10_000, app="built, window", mb=parts)
            finally:
                app.stop()
            bare_figures, bare_parts = bare_memory(display)
            emit(bench="startup", what="memory", app="bare pywebview window", **bare_figures)
            emit(bench="startup", what="memory parts", app="bare pywebview window", mb=bare_parts)
        python_side = headless_rss(built, ten_thousand)
        emit(bench="startup", what="memory", tasks=10_000, app="built, --headless", rss_mb=round(python_side, 1))

        warm_median, bare_median = statistics.median(warm), statistics.median(bares)
        emit(
            bench="startup", what="summary",
            cold_s=cold["tti_s"], warm_median_s=round(warm_median, 3), bare_median_s=round(bare_median, 3),
            warm_over_bare=round(warm_median / bare_median, 2),
            source_median_s=round(statistics.median(source), 3) if source else None,
            exit_max_s=max(exits), app_rss_mb=round(main_mb, 1), headless_rss_mb=round(python_side, 1),
            bare_window_rss_mb=bare_figures["rss_mb"],
            goals={"warm_le_1.5s": warm_median <= 1.5, "warm_le_1.3x_bare": warm_median <= 1.3 * bare_median,
                   "exit_le_2s": max(exits) <= 2.0, "rss_le_150mb": main_mb <= 150},
            load_avg=[round(x, 2) for x in os.getloadavg()],
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
