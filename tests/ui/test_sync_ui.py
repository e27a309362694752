"""Sync in the browser: the badge follows a real shared server going away and coming back,
connect errors sit next to the field they are about, a real conflict copy can be found and
resolved (keep a version, or merge by hand), and the theme setting applies and is kept.

The shared servers are real (`python -m server` subprocesses, or the server-mode app in this
process); the desktop side is the real local API with its sync engine; conflict copies come
from two real devices editing the same text offline (`tests/syncworld.py`). Every wait is
bounded and every server, device and browser context is stopped on the way out.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.servers import (
    ferry_server_process,
    free_port,
    local_settings,
    serve,
    server_settings,
)
from tests.syncworld import PASSWORD, Device, World, sync_world
from tests.ui.conftest import UI, browser_on, screenshot

WAIT_MS = 20_000  # a sync round (or an offline verdict after the back-off) on a loaded machine
SHORT_MS = 3_000  # for what the page shows at once (a failure should not cost 10 s)
UP_TO_DATE = re.compile(r"^Up to date · \d{1,2}:\d{2}(\s?[AP]M)?$")
BODY = "line one\nline two\nline three\nline four\n"


def badge(page: Page) -> Locator:
    return page.locator("#sync-badge")


# -- (1) the badge: signed out → up to date → offline → up to date ---------------------------


def test_sync_badge_follows_the_server_going_and_coming_back(browser: Browser, tmp_path: Path) -> None:
    with ExitStack() as stack:
        server = stack.enter_context(ferry_server_process(tmp_path / "server"))
        port = int(server.url.rsplit(":", 1)[1])
        app = stack.enter_context(serve(local_settings(tmp_path / "local", use_keyring=False)))
        ui = stack.enter_context(browser_on(app, browser))
        page = ui.open_page()
        expect(page.locator("html")).to_have_attribute("data-live", "open")

        expect(badge(page)).to_have_attribute("data-state", "signed_out")
        expect(page.locator("#sync-text")).to_have_text("Signed out")
        expect(page.locator("#sync-pending")).to_be_hidden()

        # Connect through the dialog, creating the account on the way.
        badge(page).click()
        dialog = page.locator("#sync-dialog")
        expect(dialog).to_be_visible()
        expect(page.locator("#connect-form")).to_be_visible()
        expect(page.locator("#sync-signed-in")).to_be_hidden()
        expect(page.locator("#connect-url")).to_be_focused()
        page.locator("#connect-url").fill(server.url)
        page.locator("#connect-username").fill("alice")
        page.locator("#connect-password").fill(PASSWORD)
        page.get_by_label("Create account").check()
        page.locator("#connect-submit").click()

        expect(page.locator("#sync-signed-in")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#connect-form")).to_be_hidden()
        expect(page.locator("#sync-server")).to_have_text(server.url)
        expect(page.locator("#sync-user")).to_have_text("alice")
        expect(badge(page)).to_have_attribute("data-state", "idle", timeout=WAIT_MS)
        expect(page.locator("#sync-text")).to_have_text(UP_TO_DATE)
        expect(page.locator("#sync-state")).to_have_text(UP_TO_DATE)
        expect(page.locator("#sync-last")).not_to_have_text("Not yet")
        expect(page.locator("#connect-password")).to_have_value("")  # not left in the page
        expect(page.locator("#sync-now")).to_be_focused()
        screenshot(page, "sync-dialog")

        # The server stops: the next round finds it gone and the badge says Offline.
        server.stop()
        page.locator("#sync-now").click()
        with app.client() as api:
            with explained(api):
                expect(badge(page)).to_have_attribute("data-state", "offline", timeout=WAIT_MS)
            expect(page.locator("#sync-text")).to_have_text("Offline")
            expect(page.locator("#sync-state")).to_have_text("Offline")
            expect(page.locator("#sync-error")).not_to_be_empty()
            dialog.locator(".close-dialog").first.click()
            expect(dialog).to_be_hidden()

            # A change made meanwhile waits; after the next round (asked for through the
            # API) the badge counts it.
            made = api.post("/api/tasks", json={"title": "Made while the server was down"})
            assert made.status_code == 201, made.text
            assert api.post("/api/sync/now").status_code == 202
            with explained(api):
                expect(page.locator("#sync-pending")).to_have_text("1 waiting", timeout=WAIT_MS)
            expect(page.locator("#sync-pending")).to_be_visible()
            expect(badge(page)).to_have_attribute("data-state", "offline", timeout=WAIT_MS)
            expect(badge(page)).to_have_attribute("title", re.compile(r"^Offline — "))
            screenshot(page, "badge-offline")

            # The server comes back where it was: Sync now brings the badge back to up to date.
            again = stack.enter_context(ferry_server_process(tmp_path / "server", port=port))
            badge(page).click()
            expect(dialog).to_be_visible()
            page.locator("#sync-now").click()
            with explained(api):
                expect(badge(page)).to_have_attribute("data-state", "idle", timeout=WAIT_MS)
            expect(page.locator("#sync-text")).to_have_text(UP_TO_DATE)
            expect(page.locator("#sync-pending")).to_be_hidden()
            expect(page.locator("#sync-error")).to_be_empty()
            expect(page.locator("#sync-waiting")).to_have_text("0")
            status = api.get("/api/sync/status").json()
            assert status["state"] == "idle" and status["pending_changes"] == 0, status
            # What was made offline reached the server.
            with httpx.Client(base_url=again.url, timeout=10) as anon:
                token = anon.post("/api/auth/token", data={"username": "alice", "password": PASSWORD}).json()
                tasks = anon.get("/api/tasks", headers={"Authorization": f"Bearer {token['access_token']}"}).json()
            assert [t["title"] for t in tasks] == ["Made while the server was down"]

            # Offline again, after a few failed rounds (so the engine is backing off for a
            # couple of seconds): a change made now is counted on the badge at once, not
            # only after the next retry (README: the badge shows how many changes wait).
            dialog.locator(".close-dialog").first.click()
            again.stop()
            for _ in range(4):
                assert api.post("/api/sync/now").status_code == 202
                page.wait_for_timeout(300)  # the refused round takes milliseconds
            with explained(api):
                expect(badge(page)).to_have_attribute("data-state", "offline", timeout=WAIT_MS)
            expect(page.locator("#sync-pending")).to_be_hidden()
            assert api.post("/api/tasks", json={"title": "Made while backing off"}).status_code == 201
            expect(page.locator("#task-list .row", has_text="Made while backing off")).to_have_count(1)
            with explained(api, "the badge does not count a change made while offline"):
                expect(page.locator("#sync-pending")).to_have_text("1 waiting", timeout=1_500)


@contextmanager
def explained(api: httpx.Client, what: str = "") -> Iterator[None]:
    """A failed wait's message also says where the engine stood when it failed."""
    try:
        yield
    except AssertionError as exc:
        try:
            status = api.get("/api/sync/status").json()
        except httpx.HTTPError as read_error:
            status = repr(read_error)
        raise AssertionError(f"{what}\n{exc}\nsync status then: {status}".lstrip()) from None


# -- (2) connect errors sit next to their field ----------------------------------------------


def test_connect_errors_show_next_to_the_field(browser: Browser, tmp_path: Path) -> None:
    with ExitStack() as stack:
        server = stack.enter_context(serve(server_settings(tmp_path / "server")))
        with httpx.Client(base_url=server.url, timeout=10) as anon:
            r = anon.post("/api/auth/register", json={"username": "alice", "password": PASSWORD})
            assert r.status_code == 201, r.text
        app = stack.enter_context(serve(local_settings(tmp_path / "local", use_keyring=False)))
        ui = stack.enter_context(browser_on(app, browser))
        page = ui.open_page()
        badge(page).click()
        url, username, password = (page.locator(f"#connect-{n}") for n in ("url", "username", "password"))
        errors = {n: page.locator(f"#connect-{n}-error") for n in ("url", "username", "password")}
        submit = page.locator("#connect-submit")

        def only_error(field: str, text: str | re.Pattern[str]) -> None:
            expect(errors[field]).to_have_text(text, timeout=WAIT_MS)
            expect(page.locator(f"#connect-{field}")).to_have_attribute("aria-invalid", "true")
            expect(page.locator(f"#connect-{field}")).to_be_focused()
            for other, slot in errors.items():
                if other != field:
                    expect(slot).to_be_empty()
            expect(page.locator("#connect-error")).to_be_empty()
            expect(submit).to_be_enabled()
            expect(submit).to_have_text("Connect")
            expect(badge(page)).to_have_attribute("data-state", "signed_out")

        # A wrong password: the password field says so.
        url.fill(server.url)
        username.fill("alice")
        password.fill("not the password")
        submit.click()
        only_error("password", "Wrong username or password")

        # Nobody listening at the URL: the server URL field says so.
        url.fill(f"http://127.0.0.1:{free_port()}")
        password.fill(PASSWORD)
        submit.click()
        only_error("url", re.compile(r"^Could not reach the server: "))
        screenshot(page, "connect-error-url")

        # Creating an account whose name is taken: the username field says so.
        url.fill(server.url)
        page.get_by_label("Create account").check()
        submit.click()
        only_error("username", "That username is taken")

        # Something that is no URL at all: the API's 422 names the field.
        page.get_by_label("Create account").uncheck()
        url.fill("ftp://example.com/x")
        submit.click()
        only_error("url", re.compile(r"http"))

        # And with everything right, it connects and the errors are gone.
        url.fill(server.url)
        submit.click()
        expect(page.locator("#sync-signed-in")).to_be_visible(timeout=WAIT_MS)
        expect(badge(page)).to_have_attribute("data-state", "idle", timeout=WAIT_MS)
        for slot in errors.values():
            expect(slot).to_be_empty()
        expect(page.locator("#connect-form [aria-invalid]")).to_have_count(0)
        with app.client() as api:
            assert api.get("/api/sync/status").json()["username"] == "alice"


# -- (3) conflict copies: found, shown, resolved ---------------------------------------------

LAPTOP = "line two, as the laptop has it"  # the earlier edit: it ends in the conflict copy
PHONE = "line two, as the phone has it"  # the later edit: it stays in place


def _line(body: str, index: int, text: str) -> str:
    lines = body.split("\n")
    lines[index] = text
    return "\n".join(lines)


@dataclass
class Conflicts:
    """A world where device `a` (the one the browser looks at) holds a conflicted note and a
    conflicted task, each as its original (the later edit) and one conflict copy."""

    world: World
    a: Device
    b: Device
    note: dict[str, Any]
    note_copy: dict[str, Any]
    task: dict[str, Any]
    task_copy: dict[str, Any]


@pytest.fixture(scope="module")
def conflicts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Conflicts]:
    """Two devices edit the same line of a note's body and of a task's description while both
    are offline; sync then keeps the later edit in place and the other as a conflict copy.
    One world serves the conflict tests (signing in costs seconds); each resolves its own."""
    with sync_world(tmp_path_factory.mktemp("conflicts"), devices=2) as world:
        a, b = world.devices
        world.sign_in_all("alice")
        note = a.create("note", title="Speech", body=BODY)
        task = a.create("task", title="Speech", description=BODY)
        world.settle()
        a.offline()
        b.offline()
        a.patch("note", note["id"], body=_line(BODY, 1, LAPTOP))
        a.patch("task", task["id"], description=_line(BODY, 1, LAPTOP))
        time.sleep(0.003)  # the phone's edits are the later ones
        b.patch("note", note["id"], body=_line(BODY, 1, PHONE))
        b.patch("task", task["id"], description=_line(BODY, 1, PHONE))
        a.online()
        b.online()
        world.settle()
        world.assert_converged("alice")
        found: list[dict[str, Any]] = []
        for kind, record in (("note", note), ("task", task)):
            copies = [r for r in a.list(kind) if r["conflict_of"] == record["id"]]
            assert len(copies) == 1, copies
            found += [a.get(kind, record["id"]) or {}, copies[0]]
        yield Conflicts(world, a, b, *found)


def test_conflicts_tab_shows_the_copies_when_the_page_opens(browser: Browser, conflicts: Conflicts) -> None:
    c = conflicts
    # The conflict exists as the test expects: the later edit in place, the earlier as a copy.
    assert c.note["body"] == c.task["description"] == _line(BODY, 1, PHONE)
    assert c.note_copy["body"] == c.task_copy["description"] == _line(BODY, 1, LAPTOP)
    assert c.note_copy["title"] == c.task_copy["title"] == "Speech (conflict copy)"
    with browser_on(c.a.running, browser) as ui:
        page = ui.open_page()
        for section, kind, copy in (("tasks", "task", c.task_copy), ("notes", "note", c.note_copy)):
            page.locator(f"#tab-{section}").click()
            expect(page.locator(f"#{section}-view")).to_be_visible()
            tab = page.locator(f'#{section}-view [role=tab][data-view="conflicts"]')
            # Nothing has changed since the page opened: the tab must show from the start.
            expect(tab, f"the {section} view shows no Conflicts tab").to_be_visible(timeout=SHORT_MS)
            expect(tab).to_have_text(re.compile(r"Conflicts\s*\(1\)"))
            tab.click()
            expect(tab).to_have_attribute("aria-selected", "true")
            rows = page.locator(f"#{kind}-list .row")
            expect(rows).to_have_count(1, timeout=WAIT_MS)
            expect(rows).to_have_attribute("data-id", copy["id"])
            expect(rows.locator(".tag.conflict")).to_have_text("conflict copy")
            expect(page.locator(f"#{kind}-count")).to_have_text(f"1 {kind}")


def test_note_conflict_copy_kept_with_keep_this_version(browser: Browser, conflicts: Conflicts) -> None:
    c = conflicts
    original, copy = c.note, c.note_copy
    with browser_on(c.a.running, browser) as ui:
        page = ui.open_page()
        page.locator("#tab-notes").click()
        # In the full list the copy is the one row tagged as such.
        tagged = page.locator("#note-list .row", has=page.locator(".tag.conflict"))
        expect(tagged).to_have_count(1, timeout=WAIT_MS)
        expect(tagged).to_have_attribute("data-id", copy["id"])
        expect(tagged.locator(".tag.conflict")).to_have_text("conflict copy")
        expect(page.locator("#note-list .row")).to_have_count(2)
        tagged.click()
        expect(page.locator("#note-editor")).to_be_visible()
        expect(page.locator("#note-body")).to_have_value(copy["body"])
        resolve = page.locator("#note-resolve")
        expect(resolve).to_be_visible()
        resolve.click()

        dialog = page.locator("#conflict-dialog")
        expect(dialog).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#conflict-current .version-title")).to_have_text("Speech")
        expect(page.locator("#conflict-current .version-text")).to_have_text(original["body"])
        expect(page.locator("#conflict-copy .version-title")).to_have_text("Speech (conflict copy)")
        expect(page.locator("#conflict-copy .version-text")).to_have_text(copy["body"])
        expect(page.locator("#merge-text-label")).to_have_text("Note")
        expect(page.locator("#conflict-keep-current")).to_be_focused()
        screenshot(page, "conflict-dialog")

        keep_copy = page.locator("#conflict-keep-copy")
        expect(keep_copy).to_have_text("Keep this version")
        keep_copy.click()
        expect(dialog).to_be_hidden(timeout=WAIT_MS)
        expect(page.locator("#toast-text")).to_have_text("Conflict resolved")
        # The editor now shows the record that stays, which is no copy; the copy's row is gone.
        expect(page.locator("#note-body")).to_have_value(copy["body"], timeout=WAIT_MS)
        expect(resolve).to_be_hidden()
        expect(page.locator(f'#note-list .row[data-id="{copy["id"]}"]')).to_have_count(0, timeout=WAIT_MS)
        expect(page.locator("#note-list .row")).to_have_count(1)
        expect(page.locator('[data-count="note-conflicts"]')).to_have_text("(0)", timeout=WAIT_MS)

        # Through the API: the original holds the copy's text and the copy is gone ...
        kept = c.a.get("note", original["id"])
        assert kept is not None and kept["body"] == copy["body"], kept
        assert kept["conflict_of"] is None
        assert c.a.get("note", copy["id"]) is None
        # ... on the other device too, once sync has run.
        c.world.settle()
        assert c.b.get("note", copy["id"]) is None
        assert c.b.get("note", original["id"])["body"] == copy["body"]
        # The title stays the record's own: " (conflict copy)" is the mark sync puts on a
        # copy, and no copy is left.
        assert kept["title"] == "Speech", f"keeping the copy's text renamed the original to {kept['title']!r}"


def test_task_conflict_copy_merged_by_hand(browser: Browser, conflicts: Conflicts) -> None:
    c = conflicts
    original, copy = c.task, c.task_copy
    with browser_on(c.a.running, browser) as ui:
        page = ui.open_page()
        conflicts_tab = page.locator('#tasks-view [role=tab][data-view="conflicts"]')
        expect(conflicts_tab).to_be_visible(timeout=WAIT_MS)
        conflicts_tab.click()
        rows = page.locator("#task-list .row")
        expect(rows).to_have_count(1, timeout=WAIT_MS)
        expect(rows).to_have_attribute("data-id", copy["id"])
        rows.locator(".title").click()
        expect(page.locator("#task-detail")).to_be_visible()
        expect(page.locator("#task-title")).to_have_value("Speech (conflict copy)")
        page.locator("#task-resolve").click()

        dialog = page.locator("#conflict-dialog")
        expect(dialog).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#conflict-current .version-text")).to_have_text(original["description"])
        expect(page.locator("#conflict-copy .version-text")).to_have_text(copy["description"])
        expect(page.locator("#merge-text-label")).to_have_text("Description")
        # The merge form starts from the current version.
        expect(page.locator("#merge-title")).to_have_value("Speech")
        expect(page.locator("#merge-text")).to_have_value(original["description"])
        merged = _line(BODY, 1, "line two, as the laptop and the phone have it")
        page.locator("#merge-title").fill("Speech, merged")
        page.locator("#merge-text").fill(merged)
        page.get_by_role("button", name="Save merged version").click()
        expect(dialog).to_be_hidden(timeout=WAIT_MS)
        expect(page.locator("#toast-text")).to_have_text("Conflict resolved")

        # The detail pane now shows the original, merged; the copy is gone from the list.
        expect(page.locator("#task-title")).to_have_value("Speech, merged", timeout=WAIT_MS)
        expect(page.locator("#task-description")).to_have_value(merged)
        expect(page.locator("#task-resolve")).to_be_hidden()
        expect(page.locator(f'#task-list .row[data-id="{copy["id"]}"]')).to_have_count(0, timeout=WAIT_MS)
        expect(page.locator('[data-count="task-conflicts"]')).to_have_text("(0)", timeout=WAIT_MS)

        kept = c.a.get("task", original["id"])
        assert kept is not None and (kept["title"], kept["description"]) == ("Speech, merged", merged), kept
        assert kept["conflict_of"] is None
        assert c.a.get("task", copy["id"]) is None
        c.world.settle()
        assert c.b.get("task", copy["id"]) is None
        assert (c.b.get("task", original["id"]) or {}).get("description") == merged

        # Back in All: one task, and with no conflict left the Conflicts tab goes away.
        page.locator('#tasks-view [role=tab][data-view="all"]').click()
        expect(page.locator("#task-list .row")).to_have_count(1, timeout=WAIT_MS)
        expect(conflicts_tab, "an empty Conflicts (0) tab stays after leaving it").to_be_hidden(timeout=SHORT_MS)


# -- (4) the theme --------------------------------------------------------------------------


def test_dark_theme_applies_and_is_kept(ui: UI) -> None:
    page = ui.open_page()
    html = page.locator("html")
    expect(html).not_to_have_attribute("data-theme", re.compile(".*"))  # "system" sets none
    with ui.api() as api:
        api.post("/api/tasks", json={"title": "Something to see in the dark", "due_date": "2030-01-02"})
        api.post("/api/tasks", json={"title": "Done already", "completed": True})
    expect(page.locator("#task-list .row")).to_have_count(2, timeout=WAIT_MS)

    page.locator("#open-settings").click()
    dialog = page.locator("#settings-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#settings-theme")).to_have_value("system")
    page.locator("#settings-theme").select_option("dark")
    expect(html).to_have_attribute("data-theme", "dark")  # tried at once
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden(timeout=WAIT_MS)
    expect(html).to_have_attribute("data-theme", "dark")
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    screenshot(page, "tasks-dark")
    with ui.api() as api:
        assert api.get("/api/settings").json()["theme"] == "dark"
    assert _luminance(background) < 0.3, f"the dark theme's background is {background}"

    # Trying another theme and cancelling puts the saved one back.
    page.locator("#open-settings").click()
    page.locator("#settings-theme").select_option("light")
    expect(html).to_have_attribute("data-theme", "light")
    dialog.get_by_role("button", name="Cancel").click()
    expect(html).to_have_attribute("data-theme", "dark")

    # A new window starts dark.
    other = ui.open_page()
    expect(other.locator("html")).to_have_attribute("data-theme", "dark")


def _luminance(css_color: str) -> float:
    numbers = [float(x) for x in re.findall(r"[\d.]+", css_color)[:3]]
    assert len(numbers) == 3, css_color
    r, g, b = (n / 255 for n in numbers)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
