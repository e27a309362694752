"""Fast, pure tests of the sync building blocks: the hybrid logical clock (`sync.hlc`), the
three-way text merge (`sync.textmerge`), the merge rules (`sync.merge`) and the validation of
pushed changes (`sync.protocol`). No server, no database: these pin down the properties the
end-to-end sync tests rely on (sync/README.md), with hypothesis where a property is universal.
"""

from __future__ import annotations

import itertools
import random
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from server.bulk import fields_of, new_row, row_hash, set_fields
from server.errors import validation_errors
from sync.digest import record_hash
from sync.hlc import MAX_COUNTER, HybridClock, Stamp, is_stamp, new_node_id
from sync.merge import merge_fields, merge_on_server
from sync.protocol import PushRequest
from sync.textmerge import merge3

NODE_A = "00000000000000aa"
NODE_B = "00000000000000bb"
FAST = settings(max_examples=60, deadline=None)


def stamp(wall: int, counter: int = 0, node: str = NODE_A) -> str:
    return str(Stamp(wall, counter, node))


class Wall:
    """A settable physical clock (milliseconds) for a HybridClock under test."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


# -- sync.hlc -------------------------------------------------------------------------------


def test_clock_is_monotonic_when_the_wall_clock_goes_backwards() -> None:
    wall = Wall(1_000_000)
    clock = HybridClock(NODE_A, wall)
    stamps = [clock.now()]
    for ms in (1_000_000, 999_000, 5, 1_000_000, 1_000_001, 1_000_001, 2_000_000, 1_500_000):
        wall.ms = ms
        stamps.append(clock.now())
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # While the wall clock lags, the wall part stays put and the counter advances.
    assert Stamp.parse(stamps[3]) == Stamp(1_000_000, 3, NODE_A)
    assert Stamp.parse(stamps[5]) == Stamp(1_000_001, 0, NODE_A)
    assert Stamp.parse(stamps[-1]) == Stamp(2_000_000, 1, NODE_A)


def test_observe_moves_the_clock_past_remote_stamps_and_never_back() -> None:
    wall = Wall(1_000)
    clock = HybridClock(NODE_A, wall)
    remote = stamp(9_000_000, 42, NODE_B)
    clock.observe(remote)
    after = clock.now()
    assert after > remote
    assert Stamp.parse(after) == Stamp(9_000_000, 43, NODE_A)
    # An old stamp does not pull the clock back.
    clock.observe(stamp(5, 0, NODE_B))
    assert clock.now() > after
    # Equal (wall, counter) from another node: the next stamp is still later than it.
    mine = clock.now()
    parsed = Stamp.parse(mine)
    twin = stamp(parsed.wall, parsed.counter, "ffffffffffffffff")
    clock.observe(twin)
    assert clock.now() > twin
    # Once the wall clock passes the remote time, stamps follow the wall clock again.
    wall.ms = 10_000_000
    assert Stamp.parse(clock.now()) == Stamp(10_000_000, 0, NODE_A)


def test_counter_overflow_borrows_a_millisecond() -> None:
    wall = Wall(7_000)
    clock = HybridClock(NODE_A, wall)
    clock.observe(stamp(7_000, MAX_COUNTER - 1, NODE_B))
    assert Stamp.parse(clock.now()) == Stamp(7_000, MAX_COUNTER, NODE_A)
    following = clock.now()
    assert Stamp.parse(following) == Stamp(7_001, 0, NODE_A)
    assert is_stamp(following) and len(following) == len(stamp(0))


@FAST
@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**15 - 1),
            st.integers(0, MAX_COUNTER),
            st.text("0123456789abcdef", min_size=16, max_size=16),
        ),
        min_size=2,
        max_size=8,
    )
)
def test_string_order_is_tuple_order(parts: list[tuple[int, int, str]]) -> None:
    stamps = [Stamp(*p) for p in parts]
    by_string = sorted(stamps, key=str)
    by_tuple = sorted(stamps)
    assert [str(s) for s in by_string] == [str(s) for s in by_tuple]
    for x, y in itertools.combinations(stamps, 2):
        assert (str(x) < str(y)) == (x < y)


@FAST
@given(st.integers(0, 10**15 - 1), st.integers(0, MAX_COUNTER), st.text("0123456789abcdef", min_size=16, max_size=16))
def test_stamp_parse_and_format_round_trip(wall: int, counter: int, node: str) -> None:
    text = str(Stamp(wall, counter, node))
    assert is_stamp(text)
    assert Stamp.parse(text) == Stamp(wall, counter, node)
    assert str(Stamp.parse(text)) == text


@pytest.mark.parametrize(
    "bad",
    ["", "1-2-3", "00000000000000-000000-00000000000000aa", "000000000000000-000000-00000000000000AA", None, 5],
)
def test_malformed_stamps_are_refused(bad: Any) -> None:
    assert not is_stamp(bad)
    if isinstance(bad, str):
        with pytest.raises(ValueError):
            Stamp.parse(bad)


def test_node_ids_are_16_hex_digits_and_checked() -> None:
    node = new_node_id()
    assert len(node) == 16 and int(node, 16) >= 0
    with pytest.raises(ValueError):
        HybridClock("not-a-node")


# -- sync.textmerge.merge3 ------------------------------------------------------------------


def test_disjoint_edits_both_apply() -> None:
    base = "The quick brown fox jumps over the lazy dog"
    ours = "The quick red fox jumps over the lazy dog"
    theirs = "The quick brown fox jumps over the sleepy dog"
    assert merge3(base, ours, theirs) == "The quick red fox jumps over the sleepy dog"
    assert merge3(base, theirs, ours) == "The quick red fox jumps over the sleepy dog"


def test_disjoint_line_edits_with_deletion_and_insertion() -> None:
    base = "alpha\nbeta\ngamma\ndelta\n"
    ours = "alpha\ngamma\ndelta\n"  # beta deleted
    theirs = "alpha\nbeta\ngamma\ndelta\nepsilon\n"  # a line appended
    assert merge3(base, ours, theirs) == "alpha\ngamma\ndelta\nepsilon\n"


def test_overlapping_edits_conflict() -> None:
    assert merge3("the cat sat", "the dog sat", "the cow sat") is None
    assert merge3("one two three", "one 2 three", "one TWO three") is None


def test_identical_edits_apply_once() -> None:
    base = "hello world, hello moon"
    assert merge3(base, "hello World, hello moon", "hello World, hello moon") == "hello World, hello moon"
    # The same edit on both sides plus a disjoint one on one side: the shared edit once.
    assert merge3(base, "Hello world, hello moon", "Hello world, hello Moon") == "Hello world, hello Moon"


def test_insertions_at_the_same_point_conflict() -> None:
    assert merge3("ab", "aXb", "aYb") is None
    assert merge3("list:\n", "list:\nmilk\n", "list:\neggs\n") is None


def test_unchanged_sides_take_the_other() -> None:
    assert merge3("base", "base", "theirs") == "theirs"
    assert merge3("base", "ours", "base") == "ours"
    assert merge3("", "", "") == ""


def test_unicode_text_merges_by_character() -> None:
    base = "café ☕ at 9\n𝄞 music 🎵 later\nnaïve résumé"
    ours = "café ☕☕ at 9\n𝄞 music 🎵 later\nnaïve résumé"
    theirs = "café ☕ at 9\n𝄞 music 🎵 later\nnaïve résumé ✅"
    assert merge3(base, ours, theirs) == "café ☕☕ at 9\n𝄞 music 🎵 later\nnaïve résumé ✅"
    assert merge3("日本語のテキスト", "日本語の長いテキスト", "日本語のテキストです") == "日本語の長いテキストです"
    assert merge3("🎵🎵", "🎶🎵", "🎵🎶") == "🎶🎶"


LINE = st.text(alphabet="abcdefgh xyz", min_size=0, max_size=12)


@FAST
@given(
    lines=st.lists(LINE, min_size=3, max_size=8, unique=True),
    data=st.data(),
)
def test_edits_of_lines_two_apart_always_merge(lines: list[str], data: st.DataObject) -> None:
    lines = [f"{i}:{text}" for i, text in enumerate(lines)]  # unique, non-empty lines
    i = data.draw(st.integers(0, len(lines) - 3))
    j = data.draw(st.integers(i + 2, len(lines) - 1))
    new_i, new_j = data.draw(LINE), data.draw(LINE)
    ours, theirs, both = list(lines), list(lines), list(lines)
    ours[i] = both[i] = new_i
    theirs[j] = both[j] = new_j
    base = "\n".join(lines)
    assert merge3(base, "\n".join(ours), "\n".join(theirs)) == "\n".join(both)
    assert merge3(base, "\n".join(theirs), "\n".join(ours)) == "\n".join(both)


@FAST
@given(base=st.text(max_size=30), other=st.text(max_size=30))
def test_merge_with_an_unchanged_side_is_the_changed_side(base: str, other: str) -> None:
    assert merge3(base, other, base) == other
    assert merge3(base, base, other) == other
    assert merge3(base, other, other) == other


# -- sync.merge.merge_fields ----------------------------------------------------------------


def test_later_stamp_wins_per_field_and_missing_stamp_loses() -> None:
    held = {"title": "old", "completed": False, "due_date": "2030-01-01"}
    held_stamps = {"title": stamp(100), "completed": stamp(300)}  # due_date has no stamp
    incoming = {"title": "new", "completed": True, "due_date": "2031-01-01"}
    incoming_stamps = {"title": stamp(200), "completed": stamp(250), "due_date": stamp(1)}
    out = merge_fields(held, held_stamps, incoming, incoming_stamps)
    assert out.fields == {"title": "new", "completed": False, "due_date": "2031-01-01"}
    assert out.stamps == {"title": stamp(200), "completed": stamp(300), "due_date": stamp(1)}
    assert out.taken == {"title": "new", "due_date": "2031-01-01"}
    # A tie on (wall, counter) is broken by node id.
    tie = merge_fields({"done": False}, {"done": stamp(5, 0, NODE_A)}, {"done": True}, {"done": stamp(5, 0, NODE_B)})
    assert tie.fields == {"done": True}
    # The inputs are not modified.
    assert held["title"] == "old" and held_stamps["title"] == stamp(100)


def test_the_same_change_twice_changes_nothing_the_second_time() -> None:
    once = merge_fields({}, {}, {"title": "a", "done": True}, {"title": stamp(1), "done": stamp(1)})
    twice = merge_fields(once.fields, once.stamps, {"title": "a", "done": True}, {"title": stamp(1), "done": stamp(1)})
    assert (twice.fields, twice.stamps, twice.taken) == (once.fields, once.stamps, {})


def test_kept_fields_are_left_alone() -> None:
    out = merge_fields(
        {"body": "mine"},
        {"body": stamp(1)},
        {"body": "theirs", "done": True},
        {"body": stamp(9), "done": stamp(9)},
        keep={"body"},
    )
    assert out.fields == {"body": "mine", "done": True}
    assert out.stamps == {"body": stamp(1), "done": stamp(9)}


FIELD_NAMES = ("title", "description", "due_date", "completed", "deleted")


@st.composite
def change_sets(draw: st.DrawFn) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """1-5 changes, each setting some fields; every write has a distinct stamp, as in life."""
    count = draw(st.integers(1, 5))
    walls = draw(st.lists(st.integers(0, 40), min_size=count, max_size=count))
    nodes = draw(st.lists(st.sampled_from([NODE_A, NODE_B, "0000000000000c0c"]), min_size=count, max_size=count))
    changes = []
    seen: set[str] = set()
    for i in range(count):
        names = draw(st.sets(st.sampled_from(FIELD_NAMES), min_size=1))
        s = stamp(walls[i], i, nodes[i])  # the counter makes it unique
        assert s not in seen
        seen.add(s)
        values = {name: draw(st.one_of(st.text(max_size=3), st.booleans(), st.none())) for name in names}
        changes.append((values, {name: s for name in names}))
    return changes


@settings(max_examples=80, deadline=None)
@given(change_sets(), st.booleans())
def test_merge_is_independent_of_order_and_repetition(changes: list[Any], keep_title: bool) -> None:
    keep = {"title"} if keep_title else set()
    outcomes = set()
    for order in itertools.permutations(changes):
        fields: dict[str, Any] = {}
        stamps: dict[str, str] = {}
        for values, change_stamps in order:
            out = merge_fields(fields, stamps, values, change_stamps, keep)
            fields, stamps = out.fields, out.stamps
        # Replaying everything again (a retried push, a re-pull) changes nothing.
        for values, change_stamps in order:
            again = merge_fields(fields, stamps, values, change_stamps, keep)
            assert again.taken == {}
        outcomes.add((tuple(sorted(fields.items(), key=str)), tuple(sorted(stamps.items()))))
    assert len(outcomes) == 1
    # Each field holds the value of its highest stamp (and kept fields stay untouched).
    fields = dict(outcomes.pop()[0])
    for name in FIELD_NAMES:
        writes = [(s[name], v[name]) for v, s in changes if name in v]
        if name in keep or not writes:
            assert name not in fields
        else:
            assert fields[name] == max(writes, key=lambda w: w[0])[1]


# -- sync.merge.merge_on_server -------------------------------------------------------------


class ServerClock:
    """Stamps later than anything given so far, like the server's clock after observing."""

    def __init__(self, wall: int) -> None:
        self.wall = wall
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return stamp(self.wall, self.calls, "5e5e5e5e5e5e5e5e")


def _on_server(
    held: dict[str, Any],
    held_stamps: dict[str, str],
    incoming: dict[str, Any],
    incoming_stamps: dict[str, str],
    base: dict[str, str] | None,
    log: dict[tuple[str, str], str],
    clock: ServerClock | None = None,
) -> Any:
    asked: list[tuple[str, str]] = []

    def text_at(name: str, at: str) -> str | None:
        asked.append((name, at))
        return log.get((name, at))

    out = merge_on_server(
        held, held_stamps, incoming, incoming_stamps, base, {"title", "body"}, text_at, clock or ServerClock(10_000)
    )
    out.asked = asked  # type: ignore[attr-defined]
    return out


def test_server_fast_forwards_an_edit_made_on_what_it_holds() -> None:
    out = _on_server(
        {"title": "Plan", "body": "one\ntwo"},
        {"title": stamp(1), "body": stamp(2)},
        {"body": "one\ntwo\nthree", "done": True},
        {"body": stamp(3, 0, NODE_B), "done": stamp(3, 0, NODE_B)},
        {"body": stamp(2)},
        {},
    )
    assert out.fields == {"title": "Plan", "body": "one\ntwo\nthree", "done": True}
    assert out.stamps["body"] == stamp(3, 0, NODE_B)
    assert out.restamped == {} and out.conflicts == []
    assert out.asked == []  # no need to look anything up


def test_server_merges_concurrent_disjoint_edits_three_way_and_restamps() -> None:
    log = {("body", stamp(1)): "one\ntwo\nthree"}
    clock = ServerClock(50)
    out = _on_server(
        {"body": "ONE\ntwo\nthree"},
        {"body": stamp(5, 0, NODE_A)},
        {"body": "one\ntwo\nTHREE"},
        {"body": stamp(7, 0, NODE_B)},
        {"body": stamp(1)},
        log,
        clock,
    )
    assert out.fields["body"] == "ONE\ntwo\nTHREE"
    assert out.restamped == {"body": "ONE\ntwo\nTHREE"}
    assert out.stamps["body"] == stamp(50, 1, "5e5e5e5e5e5e5e5e")
    assert out.stamps["body"] > stamp(7, 0, NODE_B) and out.stamps["body"] > stamp(5, 0, NODE_A)
    assert out.conflicts == []
    assert out.asked == [("body", stamp(1))]


def test_server_conflict_keeps_the_later_version_in_place_and_reports_the_other() -> None:
    log = {("body", stamp(1)): "the cat sat"}
    # The incoming edit is later: it takes the place; the held text becomes a copy.
    later = _on_server(
        {"body": "the dog sat"},
        {"body": stamp(5)},
        {"body": "the cow sat"},
        {"body": stamp(6, 0, NODE_B)},
        {"body": stamp(1)},
        log,
    )
    assert later.fields["body"] == "the cow sat" and later.stamps["body"] == stamp(6, 0, NODE_B)
    assert later.conflicts == [("body", "the dog sat")]
    assert later.restamped == {}
    # The incoming edit is older: the held text stays; the incoming one becomes a copy.
    older = _on_server(
        {"body": "the dog sat"},
        {"body": stamp(5)},
        {"body": "the cow sat"},
        {"body": stamp(4, 0, NODE_B)},
        {"body": stamp(1)},
        log,
    )
    assert older.fields["body"] == "the dog sat" and older.stamps["body"] == stamp(5)
    assert older.conflicts == [("body", "the cow sat")]
    assert older.taken == {}


def test_server_treats_an_unknown_base_as_a_conflict_never_a_silent_overwrite() -> None:
    out = _on_server(
        {"title": "A"}, {"title": stamp(5)}, {"title": "B"}, {"title": stamp(6, 0, NODE_B)}, {"title": stamp(2)}, {}
    )
    assert out.fields["title"] == "B"
    assert out.conflicts == [("title", "A")]
    # Without any base at all, likewise.
    out = _on_server({"title": "A"}, {"title": stamp(5)}, {"title": "B"}, {"title": stamp(6, 0, NODE_B)}, None, {})
    assert out.conflicts == [("title", "A")]


def test_server_takes_new_text_fields_and_ignores_an_equal_text() -> None:
    new = _on_server({}, {}, {"title": "fresh", "body": ""}, {"title": stamp(1), "body": stamp(1)}, None, {})
    assert new.fields == {"title": "fresh", "body": ""} and new.conflicts == [] and new.restamped == {}
    same = _on_server(
        {"body": "x"}, {"body": stamp(5)}, {"body": "x"}, {"body": stamp(3, 0, NODE_B)}, {"body": stamp(1)}, {}
    )
    assert same.fields == {"body": "x"} and same.stamps == {"body": stamp(5)}
    assert same.conflicts == [] and same.restamped == {}


# -- sync.protocol: validating a pushed batch -----------------------------------------------


def _change(kind: str = "task", **overrides: Any) -> dict[str, Any]:
    s = stamp(1_700_000_000_000)
    change: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "record_id": str(uuid.uuid4()),
        "fields": {"title": "ok"},
        "stamps": {"title": s},
    }
    change.update(overrides)
    return change


def _errors(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        PushRequest.model_validate({"node": NODE_A, "changes": changes})
    return validation_errors(list(caught.value.errors()))


def _named(errors: list[dict[str, Any]]) -> str:
    """All the error text a client sees: field names and messages."""
    return " | ".join(f"{e['field']}: {e['msg']}" for e in errors)


def test_a_valid_batch_passes() -> None:
    s = stamp(1_700_000_000_000)
    note = _change(
        "note",
        fields={"title": "t", "body": "b" * 1000, "done": True, "created_at": "2030-01-01T00:00:00.000+00:00"},
        stamps={"title": s, "body": s, "done": s, "created_at": s},
        base={"body": stamp(1)},
    )
    task = _change(
        "task",
        fields={"due_date": None, "completed": False, "deleted": True},
        stamps=dict.fromkeys(("due_date", "completed", "deleted"), s),
    )
    request = PushRequest.model_validate({"node": NODE_A, "changes": [note, task]})
    assert len(request.changes) == 2


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (_change(fields={"colour": "red"}, stamps={"colour": stamp(1)}), "colour", ""),
        (_change("note", fields={"completed": True}, stamps={"completed": stamp(1)}), "completed", ""),
        (_change(fields={"title": "ok"}, stamps={"title": stamp(1), "description": stamp(1)}), "", "stamps"),
        (_change(fields={"title": "ok", "completed": True}, stamps={"title": stamp(1)}), "", "stamps"),
        (_change(fields={"completed": True}, stamps={"completed": stamp(1)}, base={"completed": stamp(1)}), "", "base"),
        (_change(fields={"title": "ok"}, stamps={"title": stamp(1)}, base={"description": stamp(1)}), "", "base"),
        (_change(fields={"title": "x" * 201}, stamps={"title": stamp(1)}), "title", ""),
        (_change(fields={"title": "ok"}, stamps={"title": "yesterday"}), "title", ""),
        (_change(fields={"due_date": "2030-02-30"}, stamps={"due_date": stamp(1)}), "due_date", ""),
        (_change(fields={"completed": "yes"}, stamps={"completed": stamp(1)}), "completed", ""),
        (_change(fields={}, stamps={}), "", "field"),
        (_change(record_id="not-a-uuid"), "record_id", ""),
        (_change(kind="event"), "", "kind"),
        ({**_change(), "extra": 1}, "extra", ""),
    ],
    ids=[
        "unknown-field",
        "field-of-the-other-kind",
        "stamp-for-unset-field",
        "field-without-stamp",
        "base-on-scalar",
        "base-on-unset-field",
        "title-too-long",
        "bad-stamp",
        "impossible-date",
        "non-boolean",
        "no-fields",
        "bad-record-id",
        "unknown-kind",
        "unknown-key",
    ],
)
def test_a_bad_change_is_refused_naming_the_change_and_the_field(
    change: dict[str, Any], field: str, words: str
) -> None:
    good = [_change(), _change("note", fields={"body": "x"}, stamps={"body": stamp(1)})]
    errors = _errors([*good, _change(), change])
    text = _named(errors)
    # The error names the change by its position in the batch ...
    assert all(e["field"].startswith("changes.3") for e in errors), text
    assert "changes.0" not in text and "changes.1" not in text and "changes.2" not in text
    # ... and the field (or the rule) it breaks.
    assert field in text and words in text, text


def test_title_too_long_names_the_field_path() -> None:
    errors = _errors(
        [_change(), _change(), _change(), _change(fields={"title": "x" * 201}, stamps={"title": stamp(1)})]
    )
    assert len(errors) >= 1
    first = errors[0]
    assert first["field"].startswith("changes.3")
    assert "fields" in f"{first['field']} {first['msg']}" and "title" in f"{first['field']} {first['msg']}"
    assert "200" in first["msg"]


def test_random_batches_of_valid_changes_validate() -> None:
    rng = random.Random(7)
    changes = []
    for i in range(200):
        kind = rng.choice(["task", "note"])
        name = rng.choice(["title", "description"] if kind == "task" else ["title", "body"])
        changes.append(
            _change(kind, fields={name: f"v{i}"}, stamps={name: stamp(i)}, base={name: stamp(max(i - 1, 0))})
        )
    assert len(PushRequest.model_validate({"node": NODE_B, "changes": changes}).changes) == 200


# -- server.bulk.set_fields: what a merged change leaves in a row ---------------------------


def test_a_merged_row_is_the_same_on_every_replica_whatever_its_clock() -> None:
    """Replicas apply the same change at different times: what they store — creation and
    update times and the digest share included — must not depend on when (rule 6)."""
    record_id = str(uuid.uuid4())
    stamps = {"title": stamp(1_700_000_000_123), "body": stamp(1_700_000_000_456, 2, NODE_B)}
    fields = {"title": "undated", "body": "a change that does not say when the record was made"}
    rows = []
    for now in (1_800_000_000_000, 1_900_000_000_000):  # two replicas, two clocks
        row = new_row("note", "owner", record_id, now)
        set_fields("note", row, fields, stamps, now)
        rows.append(row)
    assert rows[0] == rows[1]
    assert rows[0]["created_ms"] == 1_700_000_000_123  # its oldest stamp
    assert rows[0]["updated_ms"] == 1_700_000_000_456  # its newest stamp
    # A change that dates the record wins over the fallback, on every replica alike.
    dated = {**fields, "created_at": "2023-11-14T22:13:20.000+00:00"}
    for row in rows:
        set_fields("note", row, dated, {**stamps, "created_at": stamp(1_700_000_000_999)}, 0)
    assert rows[0] == rows[1] and rows[0]["created_ms"] == 1_700_000_000_000


@pytest.mark.parametrize("kind", ["task", "note"])
def test_a_rows_hash_is_the_digest_of_its_fields(kind: str) -> None:
    """`row_hash` (what every write stores) is `record_hash` of the fields as they travel,
    for any values: the server, the device and the REST writes must agree on it (rule 6)."""
    rng = random.Random(7)
    for i in range(200):
        row = new_row(kind, "owner", str(uuid.uuid4()), 1_700_000_000_000 + i)
        text = "".join(rng.choice("ab é\n\x01😀") for _ in range(rng.randint(0, 12)))
        fields: dict[str, Any] = {"title": text or "t", "deleted": rng.random() < 0.2}
        if kind == "task":
            fields.update(description=text, completed=rng.random() < 0.5, due_date=rng.choice([None, "2031-02-28"]))
        else:
            fields.update(body=text * 3, done=rng.random() < 0.5)
        if rng.random() < 0.5:
            fields["conflict_of"] = str(uuid.uuid4())
        set_fields(kind, row, fields, dict.fromkeys(fields, stamp(1_700_000_000_000 + i)), 0)
        assert row_hash(kind, row) == record_hash(kind, row["id"], fields_of(kind, row))
        assert (row["hash_a"], row["hash_b"]) == row_hash(kind, row)
