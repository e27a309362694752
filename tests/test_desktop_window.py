"""The real window, from source, under Xvfb: it opens, the UI loads (the page reports its first
task list), a task typed into the UI survives closing and relaunching, a second launch hands
over, and closing the window, SIGTERM and SIGINT each end the app within 2 s with the runtime
file removed and no helper process left. A screenshot lands in test-artifacts/. Then, without a
window, the start-up settings: software rendering by default, the collector's pause."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.desktop_harness import SOURCE_COMMAND, have_xvfb, save_figures, window_round_trip, xvfb

pytestmark = pytest.mark.skipif(not have_xvfb(), reason="needs Xvfb (./ferry.sh test installs it)")


@pytest.fixture(scope="module")
def display() -> Iterator[str]:
    with xvfb() as name:
        yield name


def test_window_from_source(tmp_path: Path, display: str) -> None:
    figures = window_round_trip(SOURCE_COMMAND, tmp_path / "data", display, "source", ("window", "SIGTERM", "SIGINT"))
    save_figures(figures)
    for key, seconds in figures.items():
        if key.startswith("exit_after_"):
            assert seconds < 2.0, figures


# -- start-up settings (no window needed) -----------------------------------------------------------

QT_SETTINGS = ("QT_QUICK_BACKEND", "QT_XCB_GL_INTEGRATION", "QTWEBENGINE_CHROMIUM_FLAGS", "FERRY_GPU")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the software-rendering default is Linux's")
def test_the_window_draws_in_software_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from desktop.window import prepare_qt_environment

    for name in QT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    prepare_qt_environment()
    prepare_qt_environment()  # twice: no flag added twice
    assert os.environ["QT_QUICK_BACKEND"] == "software"
    assert os.environ["QT_XCB_GL_INTEGRATION"] == "none"
    assert os.environ["QTWEBENGINE_CHROMIUM_FLAGS"].split().count("--disable-gpu") == 1

    # The person's own settings win, and FERRY_GPU=1 keeps the GPU.
    for name in QT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QT_QUICK_BACKEND", "opengl")
    prepare_qt_environment()
    assert os.environ["QT_QUICK_BACKEND"] == "opengl"
    for name in QT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FERRY_GPU", "1")
    prepare_qt_environment()
    assert "QT_QUICK_BACKEND" not in os.environ and "QT_XCB_GL_INTEGRATION" not in os.environ
    assert "--disable-gpu" not in os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "").split()


def test_the_garbage_collector_pauses_during_start_up_only() -> None:
    from desktop.cli import StartupGC

    assert gc.isenabled()
    try:
        startup = StartupGC(deadline=30)
        assert not gc.isenabled()
        startup.resume()
        assert gc.isenabled()
        startup.resume()  # once is enough; later calls change nothing
        assert gc.isenabled()

        StartupGC(deadline=0.05)  # the page never reports: the deadline resumes it
        deadline = time.monotonic() + 5
        while not gc.isenabled() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gc.isenabled()
    finally:
        gc.enable()
