"""Live updates in the browser: what changes in the local API (a sync, another window) shows
in an open page within a second, two windows stay in step, and neither the task detail pane
nor the note editor loses what the person is typing when a live update arrives.

Every change here is made the way it happens for real: through the local REST API (which is
what the sync engine's writes and another window's saves publish on `/ws`) or by keys and
clicks in another page. Every wait is bounded (`expect(..., timeout=...)`).
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import Locator, Page, expect

from tests.ui.conftest import UI, screenshot

LIVE_LIMIT_S = 1.0  # a change made elsewhere shows in an open window within a second
WAIT_MS = 5_000  # how long a wait may run before it fails (the measurement is asserted apart)


def _task_row(page: Page, task_id: str) -> Locator:
    return page.locator(f'#task-list .row[data-id="{task_id}"]')


def _note_row(page: Page, note_id: str) -> Locator:
    return page.locator(f'#note-list .row[data-id="{note_id}"]')


def _has_class(name: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){re.escape(name)}(\s|$)")


def _live(page: Page) -> Page:
    """Waits until the page's `/ws` is open, so no event can arrive before it listens."""
    expect(page.locator("html")).to_have_attribute("data-live", "open", timeout=WAIT_MS)
    return page


# -- (1) changes made through the API show at once ------------------------------------------


def test_api_changes_show_in_an_open_page_within_a_second(ui: UI) -> None:
    page = _live(ui.open_page())
    delays: dict[str, float] = {}
    with ui.api() as api:
        started = time.monotonic()
        r = api.post("/api/tasks", json={"title": "Made by sync"})
        assert r.status_code == 201, r.text
        task = r.json()
        row = _task_row(page, task["id"])
        expect(row.locator(".title")).to_have_text("Made by sync", timeout=WAIT_MS)
        delays["created"] = time.monotonic() - started
        expect(page.locator("#task-count")).to_have_text("1 task")

        started = time.monotonic()
        r = api.patch(f"/api/tasks/{task['id']}", json={"title": "Renamed by sync", "completed": True})
        assert r.status_code == 200, r.text
        expect(row.locator(".title")).to_have_text("Renamed by sync", timeout=WAIT_MS)
        expect(row).to_have_class(_has_class("completed"), timeout=WAIT_MS)
        expect(row.locator("input[data-action=toggle]")).to_be_checked(timeout=WAIT_MS)
        delays["updated"] = time.monotonic() - started

        started = time.monotonic()
        r = api.delete(f"/api/tasks/{task['id']}")
        assert r.status_code == 204, r.text
        expect(row).to_have_count(0, timeout=WAIT_MS)
        delays["deleted"] = time.monotonic() - started
        expect(page.locator("#task-count")).to_have_text("0 tasks")
        expect(page.locator("#task-empty")).to_be_visible()

    assert max(delays.values()) <= LIVE_LIMIT_S, f"live updates took longer than {LIVE_LIMIT_S} s: {delays}"


# -- (2) two windows stay in step -----------------------------------------------------------


def test_two_pages_stay_in_step_for_tasks_and_notes(ui: UI) -> None:
    first = _live(ui.open_page())
    second = _live(ui.open_page())

    # Added in the first window by keyboard: n, type, Enter.
    first.evaluate("() => document.activeElement && document.activeElement.blur()")
    first.keyboard.press("n")
    expect(first.locator("#new-title")).to_be_focused()
    first.keyboard.type("Water the plants")
    first.keyboard.press("Enter")
    expect(first.locator("#new-title")).to_have_value("")
    in_first = first.locator("#task-list .row", has_text="Water the plants")
    expect(in_first).to_have_count(1, timeout=WAIT_MS)
    task_id = in_first.get_attribute("data-id")
    assert task_id

    # It shows in the second window, which completes it; the first follows.
    in_second = _task_row(second, task_id)
    expect(in_second.locator(".title")).to_have_text("Water the plants", timeout=WAIT_MS)
    in_second.locator("input[data-action=toggle]").click()
    for page in (second, first):
        row = _task_row(page, task_id)
        expect(row).to_have_class(_has_class("completed"), timeout=WAIT_MS)
        expect(row.locator("input[data-action=toggle]")).to_be_checked(timeout=WAIT_MS)
    with ui.api() as api:
        assert api.get(f"/api/tasks/{task_id}").json()["completed"] is True
    for page in (first, second):
        expect(page.locator("#task-list .row")).to_have_count(1)
        expect(page.locator("#task-count")).to_have_text("1 task")

    # A note written in the first window shows, title and text, in the second's list.
    for page in (first, second):
        page.locator("#tab-notes").click()
        expect(page.locator("#notes-view")).to_be_visible()
    first.evaluate("() => document.activeElement && document.activeElement.blur()")
    first.keyboard.press("n")
    expect(first.locator("#note-title")).to_be_focused(timeout=WAIT_MS)
    expect(first.locator("#note-title")).to_have_value("Untitled")
    first.keyboard.type("Packing list")  # the title is selected: typing replaces it
    first.keyboard.press("Enter")  # saves the title and moves to the text
    expect(first.locator("#note-body")).to_be_focused()
    first.keyboard.type("passport, charger")
    expect(first.locator("#note-save-state")).to_have_text("Saved", timeout=WAIT_MS)

    note = second.locator("#note-list .row", has_text="Packing list")
    expect(note).to_have_count(1, timeout=WAIT_MS)
    expect(note.locator(".excerpt")).to_have_text("passport, charger", timeout=WAIT_MS)
    expect(second.locator("#note-count")).to_have_text("1 note")
    # Edited again in the first: the second's list follows.
    first.keyboard.type(", tickets")
    expect(note.locator(".excerpt")).to_have_text("passport, charger, tickets", timeout=WAIT_MS)
    screenshot(second, "two-pages-notes")


# -- (3) the task detail pane keeps what is being typed -------------------------------------


def test_task_detail_keeps_typed_text_when_the_task_changes_elsewhere(ui: UI) -> None:
    page = _live(ui.open_page())
    with ui.api() as api:
        task = api.post("/api/tasks", json={"title": "Plan the trip", "description": ""}).json()
        row = _task_row(page, task["id"])
        expect(row).to_have_count(1, timeout=WAIT_MS)
        row.locator(".title").click()
        expect(page.locator("#task-detail")).to_be_visible()
        expect(page.locator("#task-title")).to_have_value("Plan the trip")

        description = page.locator("#task-description")
        description.click()
        page.keyboard.type("Book the ferry first")  # typed, not saved

        r = api.patch(f"/api/tasks/{task['id']}", json={"title": "Plan the summer trip"})
        assert r.status_code == 200, r.text
        # The untouched field takes the new title; the typed text stays, with a word why.
        expect(page.locator("#task-title")).to_have_value("Plan the summer trip", timeout=WAIT_MS)
        expect(description).to_have_value("Book the ferry first")
        expect(description).to_be_focused()
        banner = page.locator("#task-detail-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("changed elsewhere")
        expect(row.locator(".title")).to_have_text("Plan the summer trip", timeout=WAIT_MS)
        screenshot(page, "task-detail-live-update")

        # Typing goes on undisturbed, and saving keeps both the other change and the typing.
        page.keyboard.type(".")
        page.locator("#task-form button[type=submit]").click()
        expect(page.locator("#task-detail")).to_be_hidden(timeout=WAIT_MS)
        saved = api.get(f"/api/tasks/{task['id']}").json()
        assert saved["title"] == "Plan the summer trip"
        assert saved["description"] == "Book the ferry first."


# -- (4) an open note with nothing typed follows the other version --------------------------


def test_open_note_without_edits_updates_live(ui: UI) -> None:
    page = _live(ui.open_page())
    with ui.api() as api:
        note = api.post("/api/notes", json={"title": "Recipe", "body": "flour\nwater"}).json()
        page.locator("#tab-notes").click()
        row = _note_row(page, note["id"])
        expect(row).to_have_count(1, timeout=WAIT_MS)
        row.click()
        editor = page.locator("#note-editor")
        expect(editor).to_be_visible()
        expect(page.locator("#note-body")).to_have_value("flour\nwater")

        started = time.monotonic()
        r = api.patch(f"/api/notes/{note['id']}", json={"body": "flour\nwater\nsalt", "title": "Bread recipe"})
        assert r.status_code == 200, r.text
        expect(page.locator("#note-body")).to_have_value("flour\nwater\nsalt", timeout=WAIT_MS)
        delay = time.monotonic() - started
        expect(page.locator("#note-title")).to_have_value("Bread recipe", timeout=WAIT_MS)
        expect(row.locator(".title")).to_have_text("Bread recipe", timeout=WAIT_MS)
        # Nothing was being typed, so nothing was treated as a conflict.
        expect(page.locator("#note-banner")).to_be_hidden()
        page.wait_for_timeout(600)  # longer than the editor's save debounce: no save may follow
        notes = api.get("/api/notes").json()
        assert [(n["title"], n["body"]) for n in notes] == [("Bread recipe", "flour\nwater\nsalt")]
        expect(page.locator("#note-save-state")).to_have_text("")
    assert delay <= LIVE_LIMIT_S, f"the open note took {delay:.2f} s to update"
