"""Ingest rules the corpus does not spell out file by file: limits too large to commit as files, the document
Bundle's payload, the narrative rules' accepted side, and the last-line guarantee that no exception escapes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import node.ingest
from node.ingest import IngestError, parse
from node.ingest.fhir import _json_depth, canonical_json
from node.ingest.limits import LIMITS
from node.ingest.narrative import narrative_problem
from tests.ingest_corpus.generate import (
    DEVICE,
    OBX_NM,
    ORGANIZATION,
    PATIENT,
    PID,
    PRACTITIONER,
    ROLE,
    document,
    oru,
    with_,
)

CORPUS = Path(__file__).resolve().parents[1] / "ingest_corpus"


def _error(data: bytes, **options: object) -> IngestError:
    with pytest.raises(IngestError) as info:
        parse(data, **options)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize("mode", ["fast", "full"])
def test_fhir_string_longer_than_the_limit(mode: str) -> None:
    doc = with_(PATIENT, name=[{"family": "x" * (LIMITS.max_string_length + 1)}])
    error = _error(json.dumps(doc).encode(), validate=mode)
    assert error.code == "ingest_limit_exceeded"
    assert error.details["path"] == "Patient.name[0].family"


def test_hl7_field_longer_than_the_limit() -> None:
    error = _error(oru(OBX_NM, pid=PID.replace("Tester", "x" * (LIMITS.max_string_length + 1))))
    assert error.code == "ingest_limit_exceeded"
    assert error.details["field"] == "PID-5"


def test_document_keeps_its_authors_in_the_composition_record() -> None:
    bundle = document(PRACTITIONER, ORGANIZATION, ROLE, DEVICE)
    records = parse(json.dumps(bundle).encode())
    assert [r.summary["resource_type"] for r in records] == ["Composition", "Patient"]
    composition = records[0]
    assert composition.payload == canonical_json(json.loads(json.dumps(bundle)))
    assert b'"Practitioner"' in composition.payload and b'"Device"' in composition.payload
    assert composition.patient.mrn == "MRN-F1"


@pytest.mark.parametrize(
    "div",
    [
        '<div xmlns="http://www.w3.org/1999/xhtml">text</div>',
        "<div xmlns='http://www.w3.org/1999/xhtml'><p>a<br/>b</p><!-- a comment --></div>",
        '<div xmlns="http://www.w3.org/1999/xhtml"><a href="https://example.org/x?a=1&amp;b=2">x</a></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><span style="color: red">1 &lt; 2 &#x2264; 3</span></div>',
        '<div xmlns="http://www.w3.org/1999/xhtml"><img src="#photo"/></div>',
    ],
)
def test_narrative_that_is_allowed(div: str) -> None:
    assert narrative_problem(div) is None


@pytest.mark.parametrize("error", [KeyError("x"), OSError("x"), AttributeError("x"), IndexError("x")])
def test_no_exception_escapes_parse(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    # Stands in for a parser library failing in a way no check foresaw.
    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(node.ingest, "parse_hl7", broken)
    failure = _error(oru(OBX_NM))
    assert failure.code == "ingest_unparseable"
    assert failure.details["exception"] == type(error).__name__


def test_recursion_and_memory_errors_are_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for error in (RecursionError(), MemoryError()):

        def broken(*args: object, _error: BaseException = error, **kwargs: object) -> None:
            raise _error

        monkeypatch.setattr(node.ingest, "parse_hl7", broken)
        assert _error(oru(OBX_NM)).code == "ingest_limit_exceeded"


def test_the_deflate_bomb_is_refused_without_inflating_it() -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    error = _error((CORPUS / "dicom" / "deflate_bomb_1gib.dcm").read_bytes())
    assert error.code == "ingest_decompression_bomb"
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 64 * 1024  # stopped after a few MiB of its 1 GiB


def _parsed_depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_parsed_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_parsed_depth, value), default=0)
    return 0


def _random_json(rng: random.Random, depth: int = 0) -> object:
    # Strings full of brackets, quotes and backslashes: what could desynchronise a scan that skips strings.
    roll = rng.random()
    if depth > 8 or roll < 0.3:
        return "".join(rng.choice('[]{}"\\a') for _ in range(rng.randint(0, 6)))
    if roll < 0.65:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {"".join(rng.choice('[]{}"\\k') for _ in range(3)): _random_json(rng, depth + 1) for _ in range(3)}


def test_json_depth_before_decoding_matches_the_decoded_depth() -> None:
    rng = random.Random(13)
    for _ in range(3000):
        data = json.dumps(_random_json(rng)).encode()
        assert _json_depth(data) == _parsed_depth(json.loads(data)), data
