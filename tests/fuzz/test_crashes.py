"""Every minimized reproducer the fuzzers found, as a regression test: the input must get the documented error.

A reproducer whose fix belongs to a file outside tests/fuzz is a strict xfail with the reason (tests/fuzz/known.py):
when the fix lands the test passes, strict turns that into a failure, and the entry is removed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.known import KNOWN, REPRODUCERS
from tests.fuzz.targets import finding_of, iter_inputs

CRASHES = Path(__file__).parent / "crashes"


def _cases() -> list[object]:
    out = []
    for target, path in iter_inputs(CRASHES):
        signature = REPRODUCERS.get(path.name)
        marks = [pytest.mark.xfail(reason=KNOWN[signature], strict=True)] if signature in KNOWN else []
        out.append(pytest.param(target, path, id=path.name, marks=marks))
    return out


def test_every_reproducer_is_listed():
    assert sorted(p.name for _, p in iter_inputs(CRASHES)) == sorted(REPRODUCERS)


@pytest.mark.parametrize(("target", "path"), _cases())
def test_reproducer_gets_the_documented_error(target: str, path: Path):
    finding = finding_of(target, path.read_bytes())
    assert finding is None, f"{finding}\n{finding.summary}"
