"""The window's HTML, CSS and JavaScript. Every asset ships here: no CDN, no network at run time."""

from pathlib import Path

ASSETS = Path(__file__).parent
