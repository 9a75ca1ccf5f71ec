"""Property-based tests (hypothesis, derandomized, bounded) of the fuzz targets' property (tests/fuzz/targets.py):
for any input the ingest parsers and the signature verifiers return a result or raise the documented error with a
declared code, in bounded time, and the verifiers accept only what the harness's key signed.

Each test draws from real inputs (the tests' data files, pydicom's test files, validly signed requests) edited at
random, or builds structured inputs (FHIR JSON, HL7 segments) with hostile values; the coverage-guided search
over the same targets is tests/fuzz/test_atheris.py (short) and bench/fuzz.py (long).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import targets
from tests.fuzz.known import KNOWN

# Derandomized: the same examples on every run and machine, so a failure here is reproducible from the log.
FIXED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def fixed(examples: int) -> settings:
    return settings(FIXED, max_examples=examples)


def check(name: str, data: bytes) -> None:
    """The target's property; findings still open (tests/fuzz/known.py) are covered by their reproducers."""
    try:
        targets.run_one(name, data)
    except targets.Finding as finding:
        if finding.signature in KNOWN:
            return
        raise AssertionError(f"{finding}\n{finding.summary}") from None


def edited(seeds: list[bytes], *, max_edits: int = 4) -> st.SearchStrategy[bytes]:
    """A seed with a few splices: at a position, delete some bytes and insert others."""
    edit = st.tuples(st.integers(0, 2**20), st.integers(0, 24), st.binary(max_size=24))

    def apply(args: tuple[bytes, list[tuple[int, int, bytes]]]) -> bytes:
        data, edits = args
        for pos, delete, insert in edits:
            at = pos % (len(data) + 1)
            data = data[:at] + insert + data[at + delete :]
        return data

    return st.tuples(st.sampled_from(seeds), st.lists(edit, min_size=1, max_size=max_edits)).map(apply)


# ---------------------------------------------------------------------------------------------- ingest


@pytest.mark.parametrize(("fmt", "examples"), [("hl7", 200), ("fhir", 120), ("dicom", 120)])
def test_ingest_edited_real_inputs(fmt: str, examples: int):
    @fixed(examples)
    @given(edited(targets.seeds(fmt)))
    def run(data: bytes) -> None:
        check(fmt, data)

    run()


_MAGIC = [b"", b"MSH|^~\\&|", b"{", b'{"resourceType":"Bundle","entry":[', b"\x00" * 128 + b"DICM", b"\xef\xbb\xbf"]


@fixed(200)
@given(st.sampled_from(_MAGIC), st.binary(max_size=2048))
def test_ingest_arbitrary_bytes_after_a_format_prefix(prefix: bytes, tail: bytes):
    check("hl7", prefix + tail)


@fixed(40)
@given(edited(targets.seeds("ingest_file"), max_edits=2))
def test_parse_file_edited_real_inputs(data: bytes):
    check("ingest_file", data)


_JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["1981-02-29", "2026-13-01", "2026-03-01T25:00:00Z", "<script>x</script>", "-", "\x00"])
)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_FHIR_KEYS = [
    "id", "meta", "text", "identifier", "name", "gender", "birthDate", "status", "code", "subject", "effectiveDateTime",
    "valueQuantity", "valueInteger", "component", "entry", "type", "resource", "request", "fullUrl", "period",
    "content", "attachment", "data", "contentType", "div", "extension", "contained", "issued", "telecom", "address",
]  # fmt: skip


@fixed(150)
@given(
    st.sampled_from(["Patient", "Observation", "Bundle", "Encounter", "DocumentReference", "Composition", "Nope"]),
    st.dictionaries(st.sampled_from(_FHIR_KEYS), _JSON, max_size=8),
)
def test_fhir_structured_resources(resource_type: str, fields: dict[str, object]):
    check("fhir", json.dumps({"resourceType": resource_type, **fields}).encode())


@fixed(20)
@given(st.integers(1, 30_000), st.sampled_from([b"[", b'{"a":', b'{"resourceType":"Patient","x":[']))
def test_json_nested_deeply(depth: int, opener: bytes):
    check("fhir", opener * depth)


_HL7_VALUE = st.text(
    alphabet=st.sampled_from([*"0123456789ABCZaz.-+ ^~\\&|#", "\x00", "\x07", "\x1b", "\r", "\n", "é"]),
    max_size=30,
)


@fixed(150)
@given(st.sampled_from(targets.seeds("hl7")), st.lists(st.tuples(st.integers(0, 400), _HL7_VALUE), max_size=5))
def test_hl7_fields_replaced(seed: bytes, replacements: list[tuple[int, str]]):
    fields = seed.decode("latin-1").split("|")
    for index, value in replacements:
        fields[index % len(fields)] = value
    check("hl7", "|".join(fields).encode("utf-8", "surrogateescape"))


# ------------------------------------------------------------------------------------------- verifiers


@pytest.mark.parametrize("name", ["httpsig", "siwe", "eip712"])
def test_verifier_edits_of_signed_inputs(name: str):
    @fixed(300)
    @given(st.sampled_from(targets.seeds(name)), st.binary(max_size=96))
    def run(seed: bytes, tail: bytes) -> None:
        # The seed selects the signed input and the first edits; the tail decodes as further edits.
        check(name, seed + tail)

    run()


@pytest.mark.parametrize("name", ["httpsig", "siwe", "eip712"])
def test_verifier_arbitrary_bytes(name: str):
    @fixed(200)
    @given(st.binary(max_size=256))
    def run(data: bytes) -> None:
        check(name, data)

    run()


@pytest.mark.parametrize("name", ["httpsig", "siwe", "eip712"])
def test_unedited_signed_inputs_are_accepted(name: str):
    # The harness's own check: without edits every signed input verifies (else the oracle tests nothing).
    before = targets.STATS.codes.get("accepted", 0)
    # httpsig and siwe inputs start with the index of the signed input; eip712 has one signed grant.
    unedited = [s for s in targets.seeds(name) if not any(s[1:])] if name != "eip712" else [b"\x00\x00"]
    for data in unedited:
        targets.run_one(name, data)
    assert unedited and targets.STATS.codes.get("accepted", 0) == before + len(unedited)
