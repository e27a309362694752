"""The PyInstaller build (`build.spec`), built into a temporary folder and run under Xvfb: the
one-folder app with its launcher entry and icon, ui/ and the migrations inside, the unused
backends and Qt parts left out; then the built app's window opens on a fresh data directory
(the bundled migrations create the database), the UI loads, a task typed into it survives a
restart, and it exits within 2 s. Slow (about a minute: the build), but part of the suite."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.desktop_harness import ARTIFACTS, ROOT, have_xvfb, save_figures, window_round_trip, xvfb

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not have_xvfb(), reason="needs Xvfb (./ferry.sh test installs it)"),
]


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


@pytest.fixture(scope="module")
def built() -> Iterator[tuple[Path, float]]:
    pytest.importorskip("PyInstaller", reason="pip install -e '.[test]' brings PyInstaller")
    with tempfile.TemporaryDirectory(prefix="ferry-build-") as tmp:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
             "--distpath", f"{tmp}/dist", "--workpath", f"{tmp}/build", "build.spec"],
            cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-5000:]
        yield Path(tmp) / "dist" / "ferry", time.monotonic() - started


def test_build_layout(built: tuple[Path, float]) -> None:
    folder, seconds = built
    app = folder / "ferry"
    assert app.is_file() and os.access(app, os.X_OK)
    internal = folder / "_internal"
    assets = ("index.html", "js/main.js", "js/vlist.js", "ready.js", "app.css", "favicon.svg", "docs/swagger-init.js")
    for asset in assets:
        assert (internal / "ui" / asset).is_file(), asset
    assert (internal / "server" / "migrations" / "env.py").is_file()
    revisions = {p.name for p in (ROOT / "server" / "migrations" / "versions").glob("*.py")}
    assert revisions and revisions <= {p.name for p in (internal / "server" / "migrations" / "versions").glob("*.py")}
    assert (internal / "fastapi_offline" / "static").is_dir()  # /docs offline
    assert (internal / "desktop" / "assets" / "ferry.png").is_file()  # the window icon

    # The launcher entry points at this folder's app and icon.
    entry = configparser.ConfigParser(interpolation=None)
    entry.read(folder / "ferry.desktop")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application" and section["Name"] == "Ferry"
    assert Path(section["Exec"].strip('"')) == app
    icon = Path(section["Icon"])
    assert icon.parent == folder and icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Left out: other webview backends' Qt theme, printing, Chromium's other languages.
    qt = internal / "PyQt6" / "Qt6"
    assert not (qt / "plugins" / "platformthemes" / "libqgtk3.so").exists()
    assert not (qt / "plugins" / "printsupport").exists()
    assert [p.name for p in (qt / "translations" / "qtwebengine_locales").iterdir()] == ["en-US.pak"]
    assert (qt / "libexec" / "QtWebEngineProcess").is_file()

    size = folder_size(folder)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "build-size.txt").write_text(f"{size / 1e6:.0f} MB in {folder.name}/, built in {seconds:.0f} s\n")
    assert size < 600e6, f"the build grew to {size / 1e6:.0f} MB"


def test_built_app_window(built: tuple[Path, float], tmp_path: Path) -> None:
    folder, _ = built
    with xvfb() as display:
        figures = window_round_trip([str(folder / "ferry")], tmp_path / "data", display, "built", ("window", "SIGTERM"))
    figures["build_mb"] = round(folder_size(folder) / 1e6)
    save_figures(figures)
    for key, seconds in figures.items():
        if key.startswith("exit_after_"):
            assert seconds < 2.0, figures


def test_built_app_headless(built: tuple[Path, float], tmp_path: Path) -> None:
    from tests.desktop_harness import App

    app = App([str(built[0] / "ferry"), "--headless"], tmp_path / "data", None).start()
    try:
        app.wait_log("local API at", 60)
        with app.api() as api:
            assert api.get("/api/health").json()["mode"] == "local"
            assert api.post("/api/tasks", json={"title": "headless, built"}).status_code == 201
            assert api.get("/docs").status_code == 200
    finally:
        app.stop()
    assert app.proc is not None and app.proc.returncode == 0
