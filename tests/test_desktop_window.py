"""The real window, from source, under Xvfb: it opens, the UI loads (the page reports its first
task list), a task typed into the UI survives closing and relaunching, a second launch hands
over, and closing the window, SIGTERM and SIGINT each end the app within 2 s with the runtime
file removed and no helper process left. A screenshot lands in test-artifacts/."""

from __future__ import annotations

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
