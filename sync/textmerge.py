"""Three-way merge of text (sync rule 4), on characters, with diff-match-patch computing the diffs.

Both sides' edits are turned into replacements over the common base. Edits that touch
disjoint parts of the base are all applied; when two different edits overlap (or insert at
the same spot) the merge reports a conflict, and the caller keeps one version in place and
the other as a visible copy. Identical edits made on both sides are applied once.
"""

from __future__ import annotations

from dataclasses import dataclass

from diff_match_patch import diff_match_patch

_DMP = diff_match_patch()
_DMP.Diff_Timeout = 2.0  # seconds; past it the diff is coarser, never wrong


@dataclass(frozen=True, slots=True)
class Edit:
    start: int  # in base coordinates
    end: int
    text: str


def edits(base: str, changed: str) -> list[Edit]:
    """`changed` as a list of non-overlapping replacements over `base`, in order."""
    out: list[Edit] = []
    pos = 0
    pending: Edit | None = None
    for op, chunk in _DMP.diff_main(base, changed, False):
        if op == 0:
            if pending is not None:
                out.append(pending)
                pending = None
            pos += len(chunk)
            continue
        if pending is None:
            pending = Edit(pos, pos, "")
        if op == -1:
            pending = Edit(pending.start, pending.end + len(chunk), pending.text)
            pos += len(chunk)
        else:
            pending = Edit(pending.start, pending.end, pending.text + chunk)
    if pending is not None:
        out.append(pending)
    return out


def _overlap(a: Edit, b: Edit) -> bool:
    if a.start == a.end or b.start == b.end:
        # An insertion conflicts with anything touching its point (order would be a guess).
        return a.start <= b.end and b.start <= a.end
    return a.start < b.end and b.start < a.end


def merge3(base: str, ours: str, theirs: str) -> str | None:
    """The merge of `ours` and `theirs`, both edited from `base`; None when edits overlap."""
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    mine = edits(base, ours)
    other = edits(base, theirs)
    combined: list[Edit] = []
    i = j = 0
    while i < len(mine) or j < len(other):
        a = mine[i] if i < len(mine) else None
        b = other[j] if j < len(other) else None
        if a is not None and b is not None:
            if a == b:
                combined.append(a)
                i += 1
                j += 1
                continue
            if _overlap(a, b):
                return None
            if a.start <= b.start:
                combined.append(a)
                i += 1
            else:
                combined.append(b)
                j += 1
        elif a is not None:
            combined.append(a)
            i += 1
        else:
            assert b is not None
            combined.append(b)
            j += 1
    parts: list[str] = []
    pos = 0
    for e in combined:
        parts.append(base[pos : e.start])
        parts.append(e.text)
        pos = e.end
    parts.append(base[pos:])
    return "".join(parts)
