"""The Tasks section in a real browser: quick-add, completion, the detail pane, delete and
Undo, the views, search, keyboard navigation, overdue marks, field errors, and no request that
leaves the machine. Every change the UI makes is read back through the local API.
"""

from __future__ import annotations

import re
import time
from datetime import date, timedelta
from functools import partial
from typing import Any

import httpx
from playwright.sync_api import Locator, Page, expect

from tests.ui import conftest
from tests.ui.conftest import UI, eventually, screenshot

rows = partial(conftest.rows, kind="task")
row = partial(conftest.row, kind="task")
shown_titles = partial(conftest.shown_titles, kind="task")
expect_titles = partial(conftest.expect_titles, kind="task")

TODAY = date.today()  # the browser runs in the same timezone as this process


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


# -- helpers ---------------------------------------------------------------------------------------


def row_at(page: Page, index: int) -> Locator:
    return page.locator(f'#task-list .row[data-index="{index}"]')


def all_tasks(api: httpx.Client) -> list[dict[str, Any]]:
    response = api.get("/api/tasks", params={"limit": 500})
    response.raise_for_status()
    return response.json()


def task_by_title(api: httpx.Client, title: str) -> dict[str, Any]:
    matches = [t for t in all_tasks(api) if t["title"] == title]
    assert len(matches) == 1, f"expected one task titled {title!r}, found {matches}"
    return matches[0]


def get_task(api: httpx.Client, task_id: str) -> httpx.Response:
    return api.get(f"/api/tasks/{task_id}")


def seed(api: httpx.Client, title: str, **fields: Any) -> dict[str, Any]:
    response = api.post("/api/tasks", json={"title": title, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def focus_list_by_keyboard(page: Page) -> None:
    """The page starts in quick-add; Esc there moves focus to the list's active row."""
    expect(page.locator("#new-title")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#new-title")).not_to_be_focused()


# -- tests -----------------------------------------------------------------------------------------


def test_quick_add_by_keyboard_only(ui: UI) -> None:
    page = ui.open_page()
    new_title = page.locator("#new-title")
    focus_list_by_keyboard(page)

    page.keyboard.press("n")
    expect(new_title).to_be_focused()
    page.keyboard.type("Buy milk")
    page.keyboard.press("Enter")
    # The field empties at once, so the next one can be typed straight away.
    page.keyboard.type("Call mom")
    page.keyboard.press("Enter")

    expect_titles(page, ["Buy milk", "Call mom"])
    expect(page.locator("#task-count")).to_have_text("2 tasks")
    expect(new_title).to_have_value("")
    expect(new_title).to_be_focused()

    # A task with a due date: the date goes in #new-due, Enter in the title adds it.
    page.locator("#new-due").fill(day(1))
    new_title.focus()
    page.keyboard.type("Dentist")
    page.keyboard.press("Enter")
    # Dated tasks sort before undated ones.
    expect_titles(page, ["Dentist", "Buy milk", "Call mom"])
    expect(row(page, "Dentist").locator("time.due")).to_have_attribute("datetime", day(1))
    expect(row(page, "Dentist").locator("time.due")).to_have_text("Tomorrow")
    expect(page.locator("#new-due")).to_have_value("")

    # An empty title is refused by the field, not sent.
    page.keyboard.press("Enter")
    expect(page.locator("#new-title-error")).not_to_be_empty()

    with ui.api() as api:
        tasks = all_tasks(api)
        assert sorted(t["title"] for t in tasks) == ["Buy milk", "Call mom", "Dentist"]
        by_title = {t["title"]: t for t in tasks}
        assert by_title["Dentist"]["due_date"] == day(1)
        assert by_title["Buy milk"]["due_date"] is None
        assert not any(t["completed"] for t in tasks)


def test_complete_with_space_and_with_a_click(ui: UI) -> None:
    with ui.api() as api:
        first = seed(api, "Water plants")
        second = seed(api, "Pay rent")
    page = ui.open_page()
    expect_titles(page, ["Water plants", "Pay rent"])

    focus_list_by_keyboard(page)
    expect(row_at(page, 0)).to_be_focused()
    page.keyboard.press(" ")
    expect(row(page, "Water plants")).to_have_class(re.compile(r"\bcompleted\b"))
    expect(row(page, "Water plants").locator("input[data-action=toggle]")).to_be_checked()
    # Focus stays on the row so the next key acts on it.
    expect(row_at(page, 0)).to_be_focused()
    with ui.api() as api:
        eventually(lambda: get_task(api, first["id"]).json()["completed"], True)

    row(page, "Pay rent").locator("input[data-action=toggle]").click()
    expect(row(page, "Pay rent")).to_have_class(re.compile(r"\bcompleted\b"))
    expect(row(page, "Pay rent").locator("input[data-action=toggle]")).to_be_checked()
    with ui.api() as api:
        eventually(lambda: get_task(api, second["id"]).json()["completed"], True)

    # Space again reopens it (the click made "Pay rent" the active row; the arrow moves up).
    expect(row_at(page, 1)).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(row(page, "Water plants")).to_be_focused()
    page.keyboard.press(" ")
    expect(row(page, "Water plants")).not_to_have_class(re.compile(r"\bcompleted\b"))
    with ui.api() as api:
        eventually(lambda: get_task(api, first["id"]).json()["completed"], False)
        assert get_task(api, second["id"]).json()["completed"] is True


def test_edit_in_the_detail_pane_saves_and_esc_cancels(ui: UI) -> None:
    with ui.api() as api:
        task = seed(api, "Write report")
    page = ui.open_page()
    pane = page.locator("#task-detail")
    title, description, due = page.locator("#task-title"), page.locator("#task-description"), page.locator("#task-due")

    focus_list_by_keyboard(page)
    page.keyboard.press("Enter")
    expect(pane).to_be_visible()
    expect(title).to_be_focused()
    expect(title).to_have_value("Write report")

    title.fill("Write the report")
    description.fill("Two pages,\nwith figures")
    due.fill(day(3))
    title.focus()
    page.keyboard.press("Enter")
    expect(pane).to_be_hidden()
    expect(row(page, "Write the report")).to_have_count(1)
    expect(row(page, "Write the report").locator("time.due")).to_have_attribute("datetime", day(3))
    with ui.api() as api:
        saved = get_task(api, task["id"]).json()
    assert saved["title"] == "Write the report"
    assert saved["description"] == "Two pages,\nwith figures"
    assert saved["due_date"] == day(3)

    # Esc throws the edit away: nothing is sent, and the pane shows the saved version next time.
    expect(row_at(page, 0)).to_be_focused()
    page.keyboard.press("Enter")
    expect(title).to_be_focused()
    title.fill("Something else")
    description.fill("scratch")
    due.fill("")
    title.focus()
    page.keyboard.press("Escape")
    expect(pane).to_be_hidden()
    expect(row_at(page, 0)).to_be_focused()
    expect(row(page, "Write the report")).to_have_count(1)
    with ui.api() as api:
        assert get_task(api, task["id"]).json() == saved
    page.keyboard.press("Enter")
    expect(title).to_have_value("Write the report")
    expect(description).to_have_value("Two pages,\nwith figures")
    expect(due).to_have_value(day(3))

    # Ctrl+Enter in the description saves too.
    description.focus()
    page.keyboard.press("End")
    page.keyboard.type(" and tables")
    page.keyboard.press("Control+Enter")
    expect(pane).to_be_hidden()
    with ui.api() as api:
        eventually(lambda: get_task(api, task["id"]).json()["description"], "Two pages,\nwith figures and tables")


def test_delete_key_then_undo(ui: UI) -> None:
    with ui.api() as api:
        for title in ("Alpha", "Bravo", "Charlie"):
            seed(api, title)
        bravo = task_by_title(api, "Bravo")
    page = ui.open_page()
    expect_titles(page, ["Alpha", "Bravo", "Charlie"])
    toast = page.locator("#toast")

    focus_list_by_keyboard(page)
    page.keyboard.press("ArrowDown")
    expect(row(page, "Bravo")).to_be_focused()
    page.keyboard.press("Delete")
    expect_titles(page, ["Alpha", "Charlie"])
    expect(toast).to_be_visible()
    expect(page.locator("#toast-text")).to_have_text("Deleted “Bravo”")
    with ui.api() as api:
        assert get_task(api, bravo["id"]).status_code == 404

    page.locator("#toast-undo").click()
    expect_titles(page, ["Alpha", "Bravo", "Charlie"])
    expect(toast).to_be_hidden()
    # The keyboard is back on the restored row once the Undo has finished (the list shows it
    # a moment earlier): only then does the next key act from there.
    expect(row(page, "Bravo")).to_be_focused()
    with ui.api() as api:
        restored = get_task(api, bravo["id"])
        assert restored.status_code == 200
        assert restored.json()["title"] == "Bravo"

    # Ctrl+Z undoes a delete as well.
    page.keyboard.press("ArrowDown")
    expect(row(page, "Charlie")).to_be_focused()
    page.keyboard.press("Delete")
    expect_titles(page, ["Alpha", "Bravo"])
    page.keyboard.press("Control+z")
    expect_titles(page, ["Alpha", "Bravo", "Charlie"])
    with ui.api() as api:
        assert sorted(t["title"] for t in all_tasks(api)) == ["Alpha", "Bravo", "Charlie"]


def test_undo_focuses_the_restored_row_when_the_api_is_slow(ui: UI) -> None:
    """After Delete then Undo the keyboard is back on the restored task, so the next key acts
    on it. The list reads are slowed (as on a busy machine) so the live event's re-read of the
    list overlaps the one the Undo waits for."""
    with ui.api() as api:
        for title in ("Alpha", "Bravo", "Charlie"):
            seed(api, title)
    page = ui.open_page()
    expect_titles(page, ["Alpha", "Bravo", "Charlie"])
    focus_list_by_keyboard(page)
    page.keyboard.press("End")
    expect(row(page, "Charlie")).to_be_focused()
    page.keyboard.press("Delete")
    expect_titles(page, ["Alpha", "Bravo"])

    def slow_list(route: Any) -> None:
        if route.request.method == "GET":
            time.sleep(0.2)
        route.continue_()

    page.route(re.compile(r"/api/tasks\?"), slow_list)
    page.keyboard.press("Control+z")
    expect_titles(page, ["Alpha", "Bravo", "Charlie"])
    with ui.api() as api:
        assert sorted(t["title"] for t in all_tasks(api)) == ["Alpha", "Bravo", "Charlie"]
    # The list is settled (all three rows are read back): focus is already where it will stay.
    expect(row(page, "Charlie")).to_be_focused(timeout=2_000)
    page.unroute(re.compile(r"/api/tasks\?"))


def test_delete_from_the_detail_pane(ui: UI) -> None:
    with ui.api() as api:
        keep = seed(api, "Keep me")
        doomed = seed(api, "Throw me away", description="old")
    page = ui.open_page()
    row(page, "Throw me away").click()
    expect(page.locator("#task-detail")).to_be_visible()
    expect(page.locator("#task-title")).to_have_value("Throw me away")
    page.locator("#task-delete").click()
    expect(page.locator("#task-detail")).to_be_hidden()
    expect_titles(page, ["Keep me"])
    expect(page.locator("#toast-text")).to_have_text("Deleted “Throw me away”")
    with ui.api() as api:
        assert get_task(api, doomed["id"]).status_code == 404
        assert get_task(api, keep["id"]).status_code == 200


def test_views_show_the_right_tasks(ui: UI) -> None:
    with ui.api() as api:
        seed(api, "Overdue report", due_date=day(-2))
        seed(api, "Paid bill", due_date=day(-1), completed=True)
        seed(api, "Call today", due_date=day(0))
        seed(api, "Done today", due_date=day(0), completed=True)
        seed(api, "Lunch tomorrow", due_date=day(1))
        seed(api, "Trip next week", due_date=day(7))
        seed(api, "Read someday")
    page = ui.open_page()
    tab = lambda name: page.locator(f'#tasks-view [role=tab][data-view="{name}"]')  # noqa: E731

    expect_titles(
        page,
        ["Overdue report", "Paid bill", "Call today", "Done today", "Lunch tomorrow", "Trip next week", "Read someday"],
    )
    expect(page.locator("#task-count")).to_have_text("7 tasks")

    tab("today").click()
    expect(tab("today")).to_have_attribute("aria-selected", "true")
    expect(tab("all")).to_have_attribute("aria-selected", "false")
    expect_titles(page, ["Overdue report", "Call today"])
    expect(page.locator("#task-count")).to_have_text("2 tasks")
    screenshot(page, "tasks-today")

    tab("upcoming").click()
    expect_titles(page, ["Lunch tomorrow", "Trip next week"])
    expect(page.locator("#task-count")).to_have_text("2 tasks")

    tab("completed").click()
    expect_titles(page, ["Paid bill", "Done today"])
    expect(rows(page).and_(page.locator(".completed"))).to_have_count(2)

    tab("all").click()
    expect(page.locator("#task-count")).to_have_text("7 tasks")
    expect(rows(page)).to_have_count(7)

    # Completing a task in Today takes it out of that view.
    tab("today").click()
    expect_titles(page, ["Overdue report", "Call today"])
    row(page, "Call today").locator("input[data-action=toggle]").click()
    expect_titles(page, ["Overdue report"])
    expect(page.locator("#task-count")).to_have_text("1 task")


def test_search_as_you_type_and_clear(ui: UI) -> None:
    with ui.api() as api:
        seed(api, "Buy milk")
        seed(api, "Buy bread")
        seed(api, "Call plumber", description="the MILK fridge leaks")
    page = ui.open_page()
    everything = ["Buy milk", "Buy bread", "Call plumber"]
    expect_titles(page, everything)
    search = page.locator("#search")

    focus_list_by_keyboard(page)
    page.keyboard.press("/")
    expect(search).to_be_focused()
    page.keyboard.type("buy")
    expect_titles(page, ["Buy milk", "Buy bread"])
    expect(page.locator("#task-count")).to_have_text("2 tasks")
    page.keyboard.type(" b")
    expect_titles(page, ["Buy bread"])

    # Clearing the field brings everything back.
    page.keyboard.press("Control+a")
    page.keyboard.press("Backspace")
    expect_titles(page, everything)

    # The description is searched too, ignoring case.
    page.keyboard.type("milk")
    expect_titles(page, ["Buy milk", "Call plumber"])
    page.keyboard.type("zzz")
    expect(rows(page)).to_have_count(0)
    expect(page.locator("#task-empty")).to_be_visible()
    expect(page.locator("#task-count")).to_have_text("0 tasks")

    # Esc in the search field clears it too and returns to the list.
    page.keyboard.press("Escape")
    expect(search).to_have_value("")
    expect_titles(page, everything)


def test_arrow_keys_move_focus_between_rows(ui: UI) -> None:
    titles = [f"Task {i}" for i in range(1, 6)]
    with ui.api() as api:
        for title in titles:
            seed(api, title)
    page = ui.open_page()
    expect_titles(page, titles)

    focus_list_by_keyboard(page)
    expect(row_at(page, 0)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(row_at(page, 1)).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(row_at(page, 2)).to_be_focused()
    expect(row_at(page, 2)).to_have_class(re.compile(r"\bactive\b"))
    # A roving tabindex: only the active row is in the tab order.
    expect(page.locator('#task-list .row[tabindex="0"]')).to_have_count(1)
    expect(page.locator("#task-list .row.active")).to_have_count(1)
    page.keyboard.press("ArrowUp")
    expect(row_at(page, 1)).to_be_focused()
    page.keyboard.press("End")
    expect(row_at(page, 4)).to_be_focused()
    page.keyboard.press("ArrowDown")  # stays on the last row
    expect(row_at(page, 4)).to_be_focused()
    page.keyboard.press("Home")
    expect(row_at(page, 0)).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(row_at(page, 0)).to_be_focused()

    # Enter opens the focused row's task.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(page.locator("#task-title")).to_have_value("Task 2")

    # From search, ArrowDown goes into the list.
    page.keyboard.press("Escape")
    page.keyboard.press("/")
    page.keyboard.press("ArrowDown")
    expect(row_at(page, 1)).to_be_focused()


def test_overdue_task_is_marked(ui: UI) -> None:
    with ui.api() as api:
        seed(api, "Late", due_date=day(-3))
        seed(api, "Late but done", due_date=day(-3), completed=True)
        seed(api, "Due today", due_date=day(0))
        seed(api, "Due later", due_date=day(2))
    page = ui.open_page()
    expect(rows(page)).to_have_count(4)
    late = row(page, "Late").locator("time.due")
    expect(late).to_have_class(re.compile(r"\boverdue\b"))
    expect(late).to_contain_text("Overdue")
    expect(late).to_have_attribute("datetime", day(-3))
    expect(row(page, "Late")).to_have_attribute("aria-label", re.compile("overdue"))
    expect(page.locator("#task-list time.due.overdue")).to_have_count(1)
    for title in ("Late but done", "Due today", "Due later"):
        expect(row(page, title).locator("time.due")).not_to_have_class(re.compile(r"\boverdue\b"))
    expect(row(page, "Due today").locator("time.due")).to_have_text("Today")


def test_validation_errors_are_shown_by_their_field(ui: UI) -> None:
    with ui.api() as api:
        task = seed(api, "Original title", description="")
    page = ui.open_page()
    title, description = page.locator("#task-title"), page.locator("#task-description")
    error = page.locator("#task-title-error")

    focus_list_by_keyboard(page)
    page.keyboard.press("Enter")
    expect(title).to_be_focused()
    description.fill("Typed text that must survive")
    title.fill("")
    title.press("Enter")
    expect(error).not_to_be_empty()
    expect(title).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#task-detail")).to_be_visible()
    expect(description).to_have_value("Typed text that must survive")
    with ui.api() as api:
        unchanged = get_task(api, task["id"]).json()
    assert unchanged["title"] == "Original title"
    assert unchanged["description"] == ""

    # Fixing the title saves both fields.
    title.fill("Fixed title")
    title.press("Enter")
    expect(page.locator("#task-detail")).to_be_hidden()
    with ui.api() as api:
        fixed = get_task(api, task["id"]).json()
    assert (fixed["title"], fixed["description"]) == ("Fixed title", "Typed text that must survive")

    # Settings: an interval below the minimum is named next to its field.
    page.locator("#open-settings").click()
    dialog = page.locator("#settings-dialog")
    expect(dialog).to_be_visible()
    page.locator("#settings-interval").fill("3")
    page.locator("#settings-form button[type=submit]").click()
    expect(page.locator("#settings-interval-error")).not_to_be_empty()
    expect(page.locator("#settings-interval")).to_have_attribute("aria-invalid", "true")
    expect(dialog).to_be_visible()
    with ui.api() as api:
        assert api.get("/api/settings").json()["sync_interval_seconds"] == 30
    page.locator("#settings-interval").fill("45")
    page.locator("#settings-form button[type=submit]").click()
    expect(dialog).to_be_hidden()
    with ui.api() as api:
        assert api.get("/api/settings").json()["sync_interval_seconds"] == 45


def test_no_request_leaves_loopback_and_screenshots(ui: UI) -> None:
    with ui.api() as api:
        seed(api, "Renew passport", due_date=day(-1), description="Photos first")
        seed(api, "Book flights", due_date=day(0))
        seed(api, "Team lunch", due_date=day(2))
        seed(api, "Tidy desk", completed=True)
        seed(api, "Learn Rust")
    page = ui.open_page()
    expect(rows(page)).to_have_count(5)

    page.locator("#new-title").fill("Call the bank")
    page.keyboard.press("Enter")
    expect(rows(page)).to_have_count(6)
    for name in ("today", "upcoming", "completed", "all"):
        page.locator(f'#tasks-view [role=tab][data-view="{name}"]').click()
    expect(rows(page)).to_have_count(6)
    screenshot(page, "tasks")

    row(page, "Renew passport").click()
    expect(page.locator("#task-detail")).to_be_visible()
    screenshot(page, "task-detail")
    page.locator("#task-cancel").click()

    page.locator("#search").fill("lunch")
    expect(rows(page)).to_have_count(1)
    page.locator("#search").fill("")
    page.locator("#open-settings").click()
    page.locator("#settings-dialog .close-dialog").click()
    page.locator("#tab-notes").click()
    page.locator("#new-note").click()
    expect(page.locator("#note-title")).to_be_focused()
    page.locator("#tab-tasks").click()
    expect(rows(page)).to_have_count(6)

    assert ui.requests, "the request log is empty: the check would prove nothing"
    assert ui.foreign_requests() == []
