"""The Notes section in a real browser: creating a note, the editor that saves while you type
(debounced, flushed on demand and when the page goes away), search, done, delete with Undo and
the blank-title error. What the UI saved is always read back through the local API.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.ui import conftest
from tests.ui.conftest import UI, eventually, screenshot

rows = partial(conftest.rows, kind="note")
row = partial(conftest.row, kind="note")
shown_titles = partial(conftest.shown_titles, kind="note")
expect_titles = partial(conftest.expect_titles, kind="note")

# -- helpers ---------------------------------------------------------------------------------------


def seed(api: httpx.Client, title: str, body: str = "", **fields: Any) -> dict[str, Any]:
    response = api.post("/api/notes", json={"title": title, "body": body, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def get_note(api: httpx.Client, note_id: str) -> httpx.Response:
    return api.get(f"/api/notes/{note_id}")


def note_field(ui: UI, note_id: str, name: str) -> Any:
    with ui.api() as api:
        return get_note(api, note_id).json()[name]


def open_notes(page: Page) -> None:
    page.locator("#tab-notes").click()
    expect(page.locator("#notes-view")).to_be_visible()
    expect(page.locator("#tasks-view")).to_be_hidden()
    expect(page.locator("#note-count")).to_contain_text("note")


def open_note(page: Page, title: str) -> None:
    row(page, title).click()
    expect(page.locator("#note-editor")).to_be_visible()
    expect(page.locator("#note-title")).to_have_value(title)


def open_seeded_note(ui: UI, title: str, body: str = "") -> tuple[Page, dict[str, Any]]:
    """A note made through the API, open in the editor of a fresh page."""
    with ui.api() as api:
        note = seed(api, title, body)
    page = ui.open_page()
    open_notes(page)
    open_note(page, title)
    return page, note


# -- tests -----------------------------------------------------------------------------------------


def test_create_a_note_type_title_and_body(ui: UI) -> None:
    page = ui.open_page()
    open_notes(page)
    expect(page.locator("#note-count")).to_have_text("0 notes")
    title, body, state = page.locator("#note-title"), page.locator("#note-body"), page.locator("#note-save-state")

    page.keyboard.press("n")  # focus is on the Notes tab, not in a field
    expect(page.locator("#note-editor")).to_be_visible()
    expect(title).to_be_focused()
    expect(title).to_have_value("Untitled")
    page.keyboard.type("Groceries")  # the title was selected: typing replaces it
    expect(title).to_have_value("Groceries")
    page.keyboard.press("Enter")  # saves and moves to the text
    expect(body).to_be_focused()
    page.keyboard.type("eggs\nmilk\nbread")
    expect(state).to_have_text("Saved")

    with ui.api() as api:
        notes = api.get("/api/notes").json()
    assert len(notes) == 1
    assert notes[0]["title"] == "Groceries"
    assert notes[0]["body"] == "eggs\nmilk\nbread"
    assert notes[0]["done"] is False

    expect(row(page, "Groceries")).to_have_count(1)
    expect(row(page, "Groceries").locator(".excerpt")).to_have_text("eggs milk bread")
    expect(page.locator("#note-count")).to_have_text("1 note")


def test_flush_right_after_the_last_keystroke_loses_nothing(ui: UI) -> None:
    page, note = open_seeded_note(ui, "Diary")
    page.locator("#note-body").click()

    # A first part that the debounced autosave sends, then typing that flush() must catch.
    first = "Dear diary, today the quick brown fox"
    page.keyboard.type(first)
    expect(page.locator("#note-save-state")).to_have_text("Saved")
    assert note_field(ui, note["id"], "body") == first
    rest = " jumped over the lazy dog, 0123456789!"
    page.keyboard.type(rest)
    page.evaluate("() => window.ferry.flush()")  # resolves once the save is answered
    assert note_field(ui, note["id"], "body") == first + rest
    expect(page.locator("#note-save-state")).to_have_text("Saved")
    assert page.evaluate("() => window.ferry.busy()") is False


def test_flush_saves_a_large_note(ui: UI) -> None:
    """Notes may hold up to 1,000,000 characters; the desktop window calls flush() on close."""
    big = ("All work and no play makes Jack a dull boy. " * 2000)[:70_000]
    page, note = open_seeded_note(ui, "Manuscript", big)
    page.locator("#note-body").click()
    page.keyboard.press("Control+End")
    page.keyboard.type(" THE END")
    # flush() resolves once the save is answered: the desktop window closes right after it.
    page.evaluate("() => window.ferry.flush()")
    assert note_field(ui, note["id"], "body") == big + " THE END"
    expect(page.locator("#note-save-state")).to_have_text("Saved")


def test_closing_the_page_saves_what_was_typed(ui: UI) -> None:
    page, note = open_seeded_note(ui, "Last words")
    page.locator("#note-body").click()
    text = "typed just before the window closed"
    page.keyboard.type(text)
    page.close()  # no wait: well inside the 400 ms debounce, only pagehide can save this
    eventually(lambda: note_field(ui, note["id"], "body"), text, timeout=3.0)


def test_search_notes(ui: UI) -> None:
    with ui.api() as api:
        seed(api, "Packing list", "passport, charger, socks")
        seed(api, "Recipe", "flour, eggs, butter")
        seed(api, "Meeting notes", "discuss PASSPORT renewal")
    page = ui.open_page()
    open_notes(page)
    everything = ["Packing list", "Recipe", "Meeting notes"]
    expect_titles(page, everything)

    page.keyboard.press("/")
    expect(page.locator("#search")).to_be_focused()
    page.keyboard.type("passport")
    expect_titles(page, ["Packing list", "Meeting notes"])
    expect(page.locator("#note-count")).to_have_text("2 notes")

    page.keyboard.press("Control+a")
    page.keyboard.type("recipe")
    expect_titles(page, ["Recipe"])

    page.keyboard.press("Control+a")
    page.keyboard.press("Backspace")
    expect_titles(page, everything)

    page.keyboard.type("nothing like this")
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#note-empty")).to_be_visible()
    page.keyboard.press("Escape")
    expect_titles(page, everything)


def test_mark_a_note_done(ui: UI) -> None:
    with ui.api() as api:
        essay = seed(api, "Draft essay", "intro")
        ideas = seed(api, "Ideas")
    page = ui.open_page()
    open_notes(page)
    tab = lambda name: page.locator(f'#notes-view [role=tab][data-view="{name}"]')  # noqa: E731

    open_note(page, "Draft essay")
    page.locator("#note-done").check()
    eventually(lambda: note_field(ui, essay["id"], "done"), True)
    expect(row(page, "Draft essay")).to_have_class(re.compile(r"\bcompleted\b"))
    expect(row(page, "Draft essay").locator(".tag")).to_have_text("done")
    expect(page.locator("#note-done")).to_be_checked()

    tab("done").click()
    expect_titles(page, ["Draft essay"])
    tab("open").click()
    expect_titles(page, ["Ideas"])

    # Space on a focused row marks it done too.
    page.keyboard.press("/")
    page.keyboard.press("ArrowDown")
    expect(row(page, "Ideas")).to_be_focused()
    page.keyboard.press(" ")
    eventually(lambda: note_field(ui, ideas["id"], "done"), True)
    expect(rows(page)).to_have_count(0)  # no longer "not done"
    tab("done").click()
    expect_titles(page, ["Draft essay", "Ideas"])

    # Unchecking in the editor reopens the note.
    page.locator("#note-done").uncheck()
    eventually(lambda: note_field(ui, essay["id"], "done"), False)
    expect_titles(page, ["Ideas"])
    assert note_field(ui, essay["id"], "body") == "intro"


def test_delete_a_note_then_undo(ui: UI) -> None:
    with ui.api() as api:
        seed(api, "Keep")
        doomed = seed(api, "Remove me", "some text")
    page = ui.open_page()
    open_notes(page)
    expect_titles(page, ["Keep", "Remove me"])

    open_note(page, "Remove me")
    page.locator("#note-delete").click()
    expect(page.locator("#note-editor")).to_be_hidden()
    expect_titles(page, ["Keep"])
    expect(page.locator("#toast-text")).to_have_text("Deleted “Remove me”")
    with ui.api() as api:
        assert get_note(api, doomed["id"]).status_code == 404

    page.locator("#toast-undo").click()
    expect_titles(page, ["Keep", "Remove me"])
    expect(page.locator("#toast")).to_be_hidden()
    with ui.api() as api:
        back = get_note(api, doomed["id"])
        assert back.status_code == 200
        assert back.json()["body"] == "some text"

    # The Delete key on the focused row, and Ctrl+Z.
    row(page, "Remove me").click()
    expect(row(page, "Remove me")).to_be_focused()
    page.keyboard.press("Delete")
    expect_titles(page, ["Keep"])
    with ui.api() as api:
        assert get_note(api, doomed["id"]).status_code == 404
    page.keyboard.press("Control+z")
    expect_titles(page, ["Keep", "Remove me"])
    with ui.api() as api:
        assert get_note(api, doomed["id"]).status_code == 200


def test_blank_title_shows_an_error_while_the_body_still_saves(ui: UI) -> None:
    page, note = open_seeded_note(ui, "Plan")
    title, body, error = page.locator("#note-title"), page.locator("#note-body"), page.locator("#note-title-error")

    body.click()
    page.keyboard.type("Buy tickets")
    title.fill("")
    expect(error).not_to_be_empty()
    expect(title).to_have_attribute("aria-invalid", "true")
    eventually(lambda: note_field(ui, note["id"], "body"), "Buy tickets")
    assert note_field(ui, note["id"], "title") == "Plan"
    expect(title).to_have_value("")  # what the person did is not undone

    # A title clears the error and is saved.
    title.focus()
    page.keyboard.type("Trip plan")
    expect(error).to_be_empty()
    expect(page.locator("#note-save-state")).to_have_text("Saved")
    with ui.api() as api:
        saved = get_note(api, note["id"]).json()
    assert (saved["title"], saved["body"]) == ("Trip plan", "Buy tickets")


def test_blank_title_error_does_not_take_focus_from_the_text(ui: UI) -> None:
    """Someone clears the title, writes in the text, pauses, and writes on: every keystroke
    belongs in the text, whatever the autosave says about the title."""
    page, note = open_seeded_note(ui, "Plan")
    title, body = page.locator("#note-title"), page.locator("#note-body")

    title.fill("")
    body.click()
    page.keyboard.type("first part")
    expect(page.locator("#note-title-error")).not_to_be_empty()  # the autosave ran (a pause)
    eventually(lambda: note_field(ui, note["id"], "body"), "first part")
    page.keyboard.type(", second part")
    page.evaluate("() => window.ferry.flush()")
    with ui.api() as api:
        saved = get_note(api, note["id"]).json()
    typed_into = page.evaluate("() => document.activeElement.id")
    assert (saved["title"], saved["body"]) == ("Plan", "first part, second part"), (
        f"after the autosave the keys went to #{typed_into}: title {saved['title']!r}, text {saved['body']!r}"
    )
    expect(body).to_have_value("first part, second part")
    expect(title).to_have_value("")


def test_blank_title_save_state_is_not_left_on_saving(ui: UI) -> None:
    page, note = open_seeded_note(ui, "Plan")
    page.locator("#note-body").click()
    page.keyboard.type("Some text")
    page.locator("#note-title").fill("")
    expect(page.locator("#note-title-error")).not_to_be_empty()
    eventually(lambda: note_field(ui, note["id"], "body"), "Some text")
    assert page.evaluate("() => window.ferry.busy()") is False  # nothing is on its way
    # The text is saved, the title is not: the state must not claim a save is under way.
    expect(page.locator("#note-save-state")).to_have_text(re.compile("not saved", re.I), timeout=2_000)


def test_notes_screenshots_and_no_foreign_requests(ui: UI) -> None:
    with ui.api() as api:
        seed(api, "Groceries", "eggs\nmilk\nbread\ncoffee")
        seed(api, "Book ideas", "A lighthouse keeper who collects lost letters.", done=True)
        seed(api, "Meeting notes", "Agenda:\n1. Budget\n2. Hiring\n3. Offsite in March")
    page = ui.open_page()
    open_notes(page)
    expect(rows(page)).to_have_count(3)
    screenshot(page, "notes")

    open_note(page, "Meeting notes")
    page.locator("#note-body").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n4. Any other business")
    expect(page.locator("#note-save-state")).to_have_text("Saved")
    screenshot(page, "note-editor")

    assert ui.requests, "the request log is empty: the check would prove nothing"
    assert ui.foreign_requests() == []
