"""FHIR JSON (R4B and R5) → canonical records.

Validation has two levels, chosen per call with ``validate``:

``"fast"``
    One pass over the parsed JSON against field metadata compiled (once, cached) from the fhir.resources models:
    every key must be a known element, every value must have the element's JSON type (a string where a number
    is required is rejected, which pydantic would silently coerce), arrays must be arrays, required elements
    and one-of-many ``[x]`` choices must be satisfied, dates must match the FHIR date/dateTime/instant/time
    grammars and name real calendar days, integers must be in range, ids and codes must follow their grammars,
    the codes of the mapped elements must be in their required value sets (:mod:`node.ingest.valuesets`),
    base64Binary must be Base64, narrative must pass txt-1/txt-2 (:mod:`node.ingest.narrative`), Bundles must
    keep the bdl rules, inputs must stay within :mod:`node.ingest.limits` and hold no control characters, and
    references used for the patient must resolve. This costs a few µs per KiB and is the node's default: it
    enforces everything that matters to safety and correctness.
``"full"``
    The fast checks, then complete fhir.resources (pydantic) model validation. Roughly 10-20x slower; it adds
    the models' remaining rules (uri patterns, ...) and never accepts what "fast" rejects.

Version rule (documented because R4B and R5 disagree on some elements, e.g. ``Encounter.class``): an explicit
``fhir_version`` argument wins; else a ``meta.profile`` canonical carrying a version (``|4.3.0``, ``|5.0.0``) or
a versioned spec URL (``hl7.org/fhir/R4B/``, ``hl7.org/fhir/R5/``) decides; else the resource is checked against
R5 and, if that fails, against R4B. If both fail, the error of the version that got further is reported.

Bundles (``transaction``, ``collection``, ``document``) are all-or-nothing: every entry is validated and mapped
before any record is returned, and an entry of an unsupported resource type fails the whole bundle, so a caller
never stores part of a bundle. A document's supporting resources (:data:`DOCUMENT_SUPPORTING`: its authors,
attesters, custodian) are not records: the Composition's record carries the whole document as its payload.
A single resource's payload is its original bytes; a bundle entry's payload is the canonical JSON of that entry's
resource (sorted keys, no insignificant whitespace, decimals written exactly as received), because the original
bundle bytes cannot be split per entry without re-serialising anyway.

What is specific to each supported resource type (its record class and the category rules refining it, the
element referring to the patient, where its type code and clinical time come from) is one :class:`ResourceKind`
entry in :data:`RESOURCES`; supporting another type is one entry there. Patients map to the common demographic
model with :func:`from_fhir_patient`.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from itertools import accumulate
from typing import Any, Literal

import fhir.resources as fhir_r5
import fhir.resources.R4B as fhir_r4b
from pydantic import ValidationError

from medledger.demographics import (
    Address,
    Demographics,
    Identifier,
    Sex,
    Telecom,
    make_identifier,
    parse_birth_date,
    person_name,
)
from medledger.records import MEDIA_FHIR_JSON, PatientIdentity
from medledger.vocabulary import RecordClass
from node.ingest.errors import (
    FHIR_BUNDLE_INVALID,
    FHIR_DUPLICATE_KEY,
    FHIR_INVALID,
    FHIR_INVALID_BASE64,
    FHIR_INVALID_CODE,
    FHIR_INVALID_DATETIME,
    FHIR_INVALID_ID,
    FHIR_INVALID_JSON,
    FHIR_MISSING_PATIENT,
    FHIR_OUT_OF_RANGE,
    FHIR_UNSAFE_NARRATIVE,
    FHIR_UNSUPPORTED_RESOURCE,
    FHIR_WRONG_TYPE,
    INGEST_CONTROL_CHARACTER,
    INGEST_LIMIT_EXCEEDED,
    IngestError,
)
from node.ingest.limits import LIMITS, Limits
from node.ingest.narrative import narrative_problem
from node.ingest.parsed import ParsedRecord
from node.ingest.valuesets import HTTP_VERBS, required_codes

Version = Literal["R4B", "R5"]
Validation = Literal["full", "fast"]

#: Assigning authority used when a patient is known only by a FHIR logical id (``Patient/123``), not a business
#: identifier: the id is stable within the sending server, so it is usable as an MRN scoped to that source.
FHIR_LOGICAL_ID_AUTHORITY = "urn:medledger:fhir-logical-id"

SUPPORTED_BUNDLE_TYPES = frozenset({"transaction", "collection", "document"})

# A patient as a record refers to them: the node's key for them and their demographics.
_Patient = tuple[PatientIdentity, Demographics]


@dataclass(frozen=True, slots=True)
class CategoryRule:
    """Refines a resource's record class from its category codes: any of ``any_of`` and none of ``none_of``."""

    any_of: frozenset[str]
    record_class: RecordClass
    none_of: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ResourceKind:
    """Everything resource-specific about ingesting one FHIR resource type.

    ``patient_element`` holds the patient reference (None: the resource is the Patient itself). The type code is
    ``<resourceType>/<code>``, the code being the first coding of the first non-empty ``code_elements`` (the first
    item if it is a list). The clinical time is the first of ``time_elements`` present (a dotted path walks into
    objects; a Period or Timing gives its start or first event). The first matching ``category_rules`` entry
    replaces ``record_class``. Every kind gets the same validation (structure, then the models for "full").
    """

    record_class: RecordClass
    patient_element: str | None = "subject"
    code_elements: tuple[str, ...] = ()
    time_elements: tuple[str, ...] = ()
    category_rules: tuple[CategoryRule, ...] = ()
    time_paths: tuple[tuple[str, ...], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "time_paths", tuple(tuple(e.split(".")) for e in self.time_elements))


_CODE = ("code",)
_ONSET = ("onsetDateTime", "onsetPeriod", "recordedDate")

#: The resource types the node ingests (plus Bundle, which carries them).
RESOURCES: dict[str, ResourceKind] = {
    "Patient": ResourceKind(RecordClass.DEMOGRAPHICS, patient_element=None),
    # R5 Encounter.class is a list, R4B's a Coding; R5 actualPeriod, R4B period.
    "Encounter": ResourceKind(
        RecordClass.ENCOUNTER, code_elements=("class",), time_elements=("actualPeriod", "period")
    ),
    "Observation": ResourceKind(
        RecordClass.LAB,
        code_elements=_CODE,
        time_elements=("effectiveDateTime", "effectiveInstant", "effectivePeriod", "effectiveTiming", "issued"),
        category_rules=(CategoryRule(frozenset({"vital-signs"}), RecordClass.VITAL_SIGNS, frozenset({"laboratory"})),),
    ),
    "DiagnosticReport": ResourceKind(
        RecordClass.DIAGNOSTIC_REPORT,
        code_elements=_CODE,
        time_elements=("effectiveDateTime", "effectivePeriod", "issued"),
        category_rules=(CategoryRule(frozenset({"imaging", "RAD", "LP29684-5"}), RecordClass.IMAGING),),
    ),
    # R4B DocumentReference has its time in context.period; R5's context is a list of references.
    "DocumentReference": ResourceKind(
        RecordClass.CLINICAL_NOTE, code_elements=("type",), time_elements=("date", "context.period")
    ),
    "Composition": ResourceKind(RecordClass.CLINICAL_NOTE, code_elements=("type",), time_elements=("date",)),
    "Condition": ResourceKind(RecordClass.CONDITION, code_elements=_CODE, time_elements=_ONSET),
    # R4B medicationCodeableConcept, R5 medication (a CodeableReference).
    "MedicationRequest": ResourceKind(
        RecordClass.MEDICATION,
        code_elements=("medicationCodeableConcept", "medication"),
        time_elements=("authoredOn",),
    ),
    "AllergyIntolerance": ResourceKind(
        RecordClass.ALLERGY, patient_element="patient", code_elements=_CODE, time_elements=_ONSET
    ),
    "Immunization": ResourceKind(
        RecordClass.IMMUNIZATION,
        patient_element="patient",
        code_elements=("vaccineCode",),
        time_elements=("occurrenceDateTime",),
    ),
    "Procedure": ResourceKind(
        RecordClass.PROCEDURE,
        code_elements=_CODE,
        time_elements=("occurrenceDateTime", "occurrencePeriod", "performedDateTime", "performedPeriod"),
    ),
}

_MODEL_LOOKUP: dict[str, Callable[[str], type]] = {
    "R5": fhir_r5.get_fhir_model_class,
    "R4B": fhir_r4b.get_fhir_model_class,
}

# --- JSON parsing -------------------------------------------------------------------------------------------


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# Nesting is measured before decoding once an input has this many brackets. The node's recursion limit is
# 100,000 (py_ecc raises it), so the C decoder does not stop a deep input with a RecursionError: at ~90,000
# levels it overflows the C stack and the process dies. 10,000 levels decode safely (and are then refused by the
# structural check's max_depth), so only inputs that could nest deeper pay for the measurement (~35 ms per 4 MB).
_DEPTH_PRECHECK_BRACKETS = 10_000
_JSON_STRING = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_DEPTH_STEP = [0] * 256
for _open, _close in (b"[]", b"{}"):
    _DEPTH_STEP[_open], _DEPTH_STEP[_close] = 1, -1


def _json_depth(data: bytes) -> int:
    """The deepest bracket nesting of ``data``, strings excluded, in C-speed passes (4 MB in ~15 ms).

    Escaped backslashes and quotes are dropped first, so every remaining quote opens or closes a string; all
    but quotes and brackets are deleted; strings then read ``""`` unless they hold brackets (rare: those are
    removed by a regex). Up to the first syntax error this tokenizes exactly as the decoder does, so a deep
    prefix cannot hide behind a later error.
    """
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = data.translate(None, _NOT_STRUCTURE)
    if b'"' in structure:
        without = structure.replace(b'""', b"")
        # Only if no quote is left were all strings empty of brackets (a greedy pairing cannot cross one that is
        # not): otherwise remove the strings properly.
        structure = without if b'"' not in without else _JSON_STRING.sub(b"", structure)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, structure)), default=0)


def load_json(data: bytes) -> Any:
    """Parse strictly: duplicate keys, NaN/Infinity and invalid UTF-8 are errors; decimals keep their digits.
    Nesting deeper than the max_depth limit is refused before the decoder runs."""
    if (
        len(data) > _DEPTH_PRECHECK_BRACKETS  # fewer bytes cannot hold that many brackets: skip even the counts
        and data.count(b"[") + data.count(b"{") > _DEPTH_PRECHECK_BRACKETS
        and _json_depth(data) > LIMITS.max_depth
    ):
        raise IngestError(
            INGEST_LIMIT_EXCEEDED,
            f"JSON nested deeper than {LIMITS.max_depth} levels (limit max_depth)",
            limit="max_depth",
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"FHIR JSON is not valid UTF-8 (byte {exc.start})"
        raise IngestError(FHIR_INVALID_JSON, message, offset=exc.start) from None
    try:
        # Decimal keeps "1.50" as written: FHIR decimals carry precision, and the canonical entry JSON must too.
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_float=Decimal, parse_constant=_reject_constant)
    except _DuplicateKeyError as exc:
        key = _safe_key(exc.key)
        raise IngestError(FHIR_DUPLICATE_KEY, f"duplicate JSON key {key!r}", key=key) from None
    except RecursionError:
        # The C decoder recurses per nesting level: a deeply nested document exhausts the stack before any
        # FHIR check could run. Nothing legitimate nests anywhere near that deep (max_depth is far lower).
        raise IngestError(
            INGEST_LIMIT_EXCEEDED,
            f"JSON nested too deeply to parse (limit max_depth {LIMITS.max_depth})",
            limit="max_depth",
        ) from None
    except json.JSONDecodeError as exc:
        raise IngestError(
            FHIR_INVALID_JSON,
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except ValueError as exc:
        raise IngestError(FHIR_INVALID_JSON, f"invalid JSON: {exc}") from None


def canonical_json(value: Any) -> bytes:
    """Sorted-key, compact JSON; Decimals are written with their original digits (json.dumps cannot)."""
    return "".join(_canon(value)).encode()


def _canon(value: Any) -> list[str]:
    out: list[str] = []
    _canon_into(value, out)
    return out


def _canon_into(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        first = True
        for key in sorted(value):
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _canon_into(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _canon_into(item, out)
        out.append("]")
    elif isinstance(value, Decimal):
        out.append(str(value))
    else:
        out.append(json.dumps(value, ensure_ascii=False))


# --- structural checking against compiled model metadata ---------------------------------------------------

# Primitive kinds are below _K_OBJECT (the list check relies on it); the string-valued ones are _STRING_KINDS.
_K_STRING, _K_BOOL, _K_INT, _K_INT64, _K_DECIMAL, _K_DATE, _K_DATETIME, _K_INSTANT, _K_TIME = range(9)
_K_ID, _K_POSINT, _K_UINT, _K_BASE64, _K_XHTML, _K_CODE = range(9, 15)
_K_OBJECT, _K_RESOURCE, _K_COMMENTS = 20, 21, 22

_DATE_RE = re.compile(r"\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?")
_TZ = r"(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))"
_DATETIME_RE = re.compile(
    r"\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])(T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?" + _TZ + r")?)?)?"
)
_INSTANT_RE = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?" + _TZ
)
_TIME_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d{1,9})?")
_INT64_RE = re.compile(r"-?\d{1,19}")
_ID_RE = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_BASE64_SPACE = re.compile(r"\s+")
# FHIR strings SHALL NOT hold code points below 32 but tab, CR and LF. Raw ones are already invalid JSON, so only
# \u00XX escapes can bring them in; the raw text is searched once and strings are checked only after a hit.
_CONTROL_ESCAPE = re.compile(rb"\\u00[01][0-9a-fA-F]")
_CONTROL_CHAR = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FORMAT_RES = {
    _K_DATE: _DATE_RE,
    _K_DATETIME: _DATETIME_RE,
    _K_INSTANT: _INSTANT_RE,
    _K_TIME: _TIME_RE,
    _K_ID: _ID_RE,
}
_FORMAT_CODES = {_K_ID: FHIR_INVALID_ID}
_DATE_KINDS = frozenset({_K_DATE, _K_DATETIME, _K_INSTANT})
_STRING_KINDS = frozenset({_K_STRING, _K_DATE, _K_DATETIME, _K_INSTANT, _K_TIME, _K_ID, _K_BASE64, _K_XHTML, _K_CODE})
_INT_RANGES = {_K_INT: (-(2**31), 2**31 - 1), _K_POSINT: (1, 2**31 - 1), _K_UINT: (0, 2**31 - 1)}
_KIND_NAMES = {
    _K_STRING: "a string",
    _K_BOOL: "a boolean",
    _K_INT: "an integer",
    _K_INT64: "an integer64 string",
    _K_DECIMAL: "a number",
    _K_DATE: "a date string",
    _K_DATETIME: "a dateTime string",
    _K_INSTANT: "an instant string",
    _K_TIME: "a time string",
    _K_ID: "an id ([A-Za-z0-9-.]{1,64})",
    _K_POSINT: "a positiveInt",
    _K_UINT: "an unsignedInt",
    _K_BASE64: "a base64Binary string",
    _K_XHTML: "an XHTML string",
    _K_CODE: "a code",
    _K_OBJECT: "an object",
    _K_RESOURCE: "a resource object",
}
_META_KINDS = {
    "Date": _K_DATE,
    "DateTime": _K_DATETIME,
    "Instant": _K_INSTANT,
    "Time": _K_TIME,
    "Id": _K_ID,
    "Base64Binary": _K_BASE64,
    "Xhtml": _K_XHTML,
    "Code": _K_CODE,
}
_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _calendar_day_exists(value: str) -> bool:
    """``YYYY-MM-DD...`` names a real day (the grammars allow 31 in every month). Called only for days > 28."""
    year, month, day = int(value[:4]), int(value[5:7]), int(value[8:10])
    if day > _DAYS[month]:
        return False
    return not (month == 2 and day == 29 and not (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)))


@dataclass(slots=True)
class _Field:
    kind: int
    is_list: bool
    model: type | None  # for _K_OBJECT
    codes: frozenset[str] | None = None  # for _K_CODE bound to a required value set (node.ingest.valuesets)


@dataclass(slots=True)
class _Spec:
    fields: dict[str, _Field]
    required: tuple[str, ...]
    choices: tuple[tuple[str, frozenset[str], bool], ...]


class _Fail(Exception):
    """A structural failure; ``path`` is built innermost-first as the exception unwinds (free on success)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.path: list[str] = []


_SPECS: dict[type, _Spec] = {}


def _field_from_annotation(annotation: Any) -> _Field:
    is_list = False
    ann = annotation
    while True:
        origin = typing.get_origin(ann)
        if origin is typing.Union or origin is types.UnionType:
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            ann = args[0]
        elif origin in (list, typing.List):  # noqa: UP006 - fhir.resources annotates with typing.List
            is_list = True
            ann = typing.get_args(ann)[0]
        else:
            break
    metadata: tuple[Any, ...] = ()
    if typing.get_origin(ann) is typing.Annotated:
        ann, *meta = typing.get_args(ann)
        metadata = tuple(meta)
    meta_names = {type(m).__name__ for m in metadata}
    if hasattr(ann, "get_model_klass"):
        model = ann.get_model_klass()
        if model.__name__ == "Resource" or ann.__name__ == "ResourceType":
            return _Field(_K_RESOURCE, is_list, None)
        return _Field(_K_OBJECT, is_list, model)
    for name, kind in _META_KINDS.items():
        if name in meta_names:
            return _Field(kind, is_list, None)
    if ann is bool:
        return _Field(_K_BOOL, is_list, None)
    if ann is int:
        if "Integer64" in meta_names:
            return _Field(_K_INT64, is_list, None)
        if "PositiveInt" in meta_names:
            return _Field(_K_POSINT, is_list, None)
        if "UnsignedInt" in meta_names:
            return _Field(_K_UINT, is_list, None)
        return _Field(_K_INT, is_list, None)
    if ann is Decimal or ann is float:
        return _Field(_K_DECIMAL, is_list, None)
    return _Field(_K_STRING, is_list, None)


def _spec_for(model: type) -> _Spec:
    spec = _SPECS.get(model)
    if spec is not None:
        return spec
    fields: dict[str, _Field] = {}
    required: list[str] = []
    choices: dict[str, tuple[list[str], bool]] = {}
    for name, info in model.model_fields.items():  # type: ignore[attr-defined]
        alias = info.alias or name
        if alias == "fhir_comments":
            fields[alias] = _Field(_K_COMMENTS, False, None)
            continue
        fields[alias] = _field_from_annotation(info.annotation)
        if fields[alias].kind == _K_CODE:
            fields[alias].codes = required_codes(model, alias)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("element_required") or info.is_required():
            required.append(alias)
        group = extra.get("one_of_many")
        if isinstance(group, str):
            members, _ = choices.setdefault(group, ([], bool(extra.get("one_of_many_required"))))
            members.append(alias)
    spec = _Spec(fields, tuple(required), tuple((g, frozenset(m), r) for g, (m, r) in choices.items()))
    _SPECS[model] = spec
    return spec


def _is_resource_model(model: type, version: Version) -> bool:
    return isinstance(model, type) and issubclass(model, _MODEL_LOOKUP[version]("Resource"))


def _is_known_resource_type(rtype: str) -> bool:
    for version, lookup in _MODEL_LOOKUP.items():
        try:
            if _is_resource_model(lookup(rtype), version):  # type: ignore[arg-type]
                return True
        except (KeyError, ValueError, ImportError, AttributeError):
            continue
    return False


class _Checker:
    """Walks parsed JSON against one FHIR version's models; counts visited nodes to compare failed versions.

    It also enforces the value rules the fast path owns: calendar-valid dates, integer ranges, id and code
    grammars, required value sets, Base64 and narrative. The resource limits and control characters are
    :class:`_LimitedChecker`'s, used only for inputs that could break a limit (see :func:`_needs_limits`), so
    the common small resource pays nothing for them.
    """

    def __init__(self, version: Version) -> None:
        self.version = version
        self.lookup = _MODEL_LOOKUP[version]
        self.visited = 0

    def resource_model(self, obj: dict[str, Any]) -> type:
        rtype = obj.get("resourceType")
        if not isinstance(rtype, str):
            raise _Fail(FHIR_INVALID, "resourceType must be a string naming a FHIR resource")
        try:
            model = self.lookup(rtype)
        except (KeyError, ValueError, ImportError, AttributeError):
            raise _Fail(FHIR_INVALID, f"unknown resourceType {_quoted_name(rtype)} in FHIR {self.version}") from None
        if not _is_resource_model(model, self.version):
            raise _Fail(FHIR_INVALID, f"{_quoted_name(rtype)} is not a FHIR resource type")
        return model

    def check_resource(self, obj: Any) -> type:
        if type(obj) is not dict:
            raise _Fail(FHIR_WRONG_TYPE, "expected a resource object")
        model = self.resource_model(obj)
        self.check_object(obj, model, is_resource=True)
        return model

    def check_object(self, obj: dict[str, Any], model: type, *, is_resource: bool = False) -> None:
        self.visited += 1
        spec = _spec_for(model)
        fields = spec.fields
        if not obj:
            raise _Fail(FHIR_INVALID, "empty object (FHIR forbids empty elements)")
        for key, value in obj.items():
            field = fields.get(key)
            if field is None:
                if is_resource and key == "resourceType":
                    continue
                exc = _Fail(FHIR_INVALID, f"unknown element for {model.__name__}")
                exc.path.append(_safe_key(key))
                raise exc
            try:
                if field.is_list:
                    if type(value) is not list:
                        raise _Fail(FHIR_WRONG_TYPE, f"expected an array, got {_json_type(value)}")
                    if not value:
                        raise _Fail(FHIR_INVALID, "empty array (FHIR forbids empty arrays)")
                    primitive_or_ext = field.kind < _K_OBJECT or key[0] == "_"
                    for i, item in enumerate(value):
                        if item is None and primitive_or_ext:
                            continue  # null placeholders pair primitive arrays with their _extension arrays
                        try:
                            self.check_value(item, field)
                        except _Fail as exc:
                            exc.path.append(f"[{i}]")
                            raise
                else:
                    if type(value) is list:
                        raise _Fail(FHIR_WRONG_TYPE, "expected a single value, got an array")
                    self.check_value(value, field)
            except _Fail as exc:
                exc.path.append(key)
                raise
        for name in spec.required:
            if name not in obj and "_" + name not in obj:
                exc = _Fail(FHIR_INVALID, f"missing required element of {model.__name__}")
                exc.path.append(name)
                raise exc
        for group, members, group_required in spec.choices:
            present = obj.keys() & members  # set intersection in C: choice groups (Extension.value[x]) are large
            if len(present) > 1:
                raise _Fail(FHIR_INVALID, f"more than one {group}[x] given: {', '.join(sorted(present))}")
            if group_required and not present:
                raise _Fail(FHIR_INVALID, f"missing required {group}[x] of {model.__name__}")

    def check_value(self, value: Any, field: _Field) -> None:
        kind = field.kind
        vtype = type(value)
        if kind == _K_STRING:  # the most frequent kind first: plain strings need only these two checks
            if vtype is not str:
                raise _Fail(FHIR_WRONG_TYPE, f"expected a string, got {_json_type(value)}")
            if not value.strip():
                raise _Fail(FHIR_INVALID, "empty string (FHIR forbids empty or blank values)")
        elif kind == _K_OBJECT:
            if vtype is not dict:
                raise _Fail(FHIR_WRONG_TYPE, f"expected an object, got {_json_type(value)}")
            self.check_object(value, field.model)  # type: ignore[arg-type]
        elif kind in _STRING_KINDS:
            if vtype is not str:
                raise _Fail(FHIR_WRONG_TYPE, f"expected {_KIND_NAMES[kind]}, got {_json_type(value)}")
            stripped = value.strip()
            if not stripped:
                raise _Fail(FHIR_INVALID, "empty string (FHIR forbids empty or blank values)")
            if kind == _K_CODE:
                # The code grammar \S+( \S+)* without a regex: str.strip returns the very object when there is
                # nothing to strip, and isprintable is False for every whitespace but the ASCII space.
                if stripped is not value or "  " in value or not value.isprintable():
                    raise _Fail(FHIR_INVALID, "not a code in FHIR format (no leading, trailing or double spaces)")
                if field.codes is not None and value not in field.codes:
                    raise _Fail(FHIR_INVALID_CODE, "code outside the element's required value set")
                return
            pattern = _FORMAT_RES.get(kind)
            if pattern is not None:
                if pattern.fullmatch(value) is None:
                    raise _Fail(_FORMAT_CODES.get(kind, FHIR_INVALID), f"not {_KIND_NAMES[kind]} in FHIR format")
                if kind in _DATE_KINDS and len(value) >= 10 and value[8:10] > "28" and not _calendar_day_exists(value):
                    raise _Fail(FHIR_INVALID_DATETIME, f"not a calendar day: {_KIND_NAMES[kind]} names no such date")
            elif kind == _K_BASE64:
                _check_base64(value)
            elif kind == _K_XHTML:
                problem = narrative_problem(value)
                if problem is not None:
                    raise _Fail(FHIR_UNSAFE_NARRATIVE, problem)
        elif kind == _K_DECIMAL:
            if vtype is not Decimal and vtype is not int:
                raise _Fail(FHIR_WRONG_TYPE, f"expected a number, got {_json_type(value)}")
        elif kind in _INT_RANGES:
            if vtype is not int:
                raise _Fail(FHIR_WRONG_TYPE, f"expected {_KIND_NAMES[kind]}, got {_json_type(value)}")
            low, high = _INT_RANGES[kind]
            if not low <= value <= high:
                raise _Fail(FHIR_OUT_OF_RANGE, f"{_KIND_NAMES[kind]} outside {low}..{high}")
        elif kind == _K_BOOL:
            if vtype is not bool:
                raise _Fail(FHIR_WRONG_TYPE, f"expected a boolean, got {_json_type(value)}")
        elif kind == _K_INT64:
            # R5 integer64 is a JSON string (JavaScript numbers lose precision above 2^53); accept a number too.
            if not (vtype is int or (vtype is str and _INT64_RE.fullmatch(value))):
                raise _Fail(FHIR_WRONG_TYPE, f"expected an integer64, got {_json_type(value)}")
            if not -(2**63) <= int(value) < 2**63:
                raise _Fail(FHIR_OUT_OF_RANGE, "integer64 outside the signed 64-bit range")
        elif kind == _K_RESOURCE:
            self.check_resource(value)
        elif kind == _K_COMMENTS and not (vtype is str or (vtype is list and all(type(c) is str for c in value))):
            raise _Fail(FHIR_WRONG_TYPE, "fhir_comments must be a string or an array of strings")


class _LimitedChecker(_Checker):
    """:class:`_Checker` plus the ingest limits (:mod:`node.ingest.limits`) and the control-character rule."""

    def __init__(self, version: Version, limits: Limits = LIMITS) -> None:
        super().__init__(version)
        self.depth = 0
        self.limits = limits

    def check_object(self, obj: dict[str, Any], model: type, *, is_resource: bool = False) -> None:
        self.depth += 1
        if self.depth > self.limits.max_depth:
            raise _Fail(INGEST_LIMIT_EXCEEDED, f"nesting deeper than {self.limits.max_depth} levels (limit max_depth)")
        for key, value in obj.items():
            if type(value) is list and len(value) > self.limits.max_array_length:
                exc = _Fail(
                    INGEST_LIMIT_EXCEEDED,
                    f"array of {len(value)} items, more than {self.limits.max_array_length} (limit max_array_length)",
                )
                exc.path.append(_safe_key(key))
                raise exc
        super().check_object(obj, model, is_resource=is_resource)
        self.depth -= 1

    def check_value(self, value: Any, field: _Field) -> None:
        if type(value) is str:
            limit = self.limits.max_base64_length if field.kind == _K_BASE64 else self.limits.max_string_length
            if len(value) > limit:
                raise _Fail(
                    INGEST_LIMIT_EXCEEDED,
                    f"string of {len(value)} characters, more than {limit} (limit max_string_length)",
                )
            if _CONTROL_CHAR.search(value):
                raise _Fail(INGEST_CONTROL_CHARACTER, "string holds a control character (FHIR allows tab, CR, LF)")
        super().check_value(value, field)


def _needs_limits(data: bytes, limits: Limits = LIMITS) -> bool:
    """Whether ``data`` could break a limit or hold a control character; if not, the plain checker suffices.

    A string longer than max_string_length needs that many bytes, an array of N items at least 2N-1, nesting
    deeper than max_depth at least that many ``{``; a control character in valid JSON needs a ``\\u00XX``
    escape. Each test is one pass in C over the raw bytes.
    """
    return (
        len(data) > min(limits.max_string_length, 2 * limits.max_array_length)
        or data.count(b"{") > limits.max_depth
        or (b"\\u00" in data and _CONTROL_ESCAPE.search(data) is not None)
    )


def _check_base64(value: str) -> None:
    # FHIR R4B/R5 base64Binary allows whitespace between the groups; the data itself must be whole 4-char groups.
    compact = _BASE64_SPACE.sub("", value)
    if len(compact) % 4 or _BASE64_RE.fullmatch(compact) is None:
        raise _Fail(FHIR_INVALID_BASE64, "not Base64 (RFC 4648 alphabet, whole 4-character groups)")


_SAFE_KEY = re.compile(r"_?[A-Za-z][A-Za-z0-9]{0,63}(\[x\])?")


def _safe_key(key: str) -> str:
    """An unknown key as it may appear in an error path: element names only, never arbitrary (possibly PHI) text."""
    return key if _SAFE_KEY.fullmatch(key) else "<unknown key>"


def _quoted_name(name: str) -> str:
    return repr(name) if _SAFE_KEY.fullmatch(name) else "(not a type name)"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _fail_to_error(exc: _Fail, root: str, version: Version) -> IngestError:
    root = root if _SAFE_KEY.fullmatch(root) else "Resource"
    path = root + "".join(p if p.startswith("[") else "." + p for p in reversed(exc.path))
    return IngestError(exc.code, f"{path}: {exc.message} (FHIR {version})", path=path, fhir_version=version)


# --- version selection --------------------------------------------------------------------------------------


def _version_hint(obj: dict[str, Any]) -> Version | None:
    meta = obj.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    if not isinstance(profiles, list):
        return None
    for profile in profiles:
        if not isinstance(profile, str):
            continue
        if "|4.3" in profile or "/fhir/R4B/" in profile:
            return "R4B"
        if "|5.0" in profile or "/fhir/R5/" in profile:
            return "R5"
    return None


def _check_structure(obj: Any, fhir_version: Version | None, *, limited: bool = True) -> tuple[Version, type]:
    """Choose the FHIR version (module docstring rule) and run the structural check; returns (version, model)."""
    if type(obj) is not dict:
        raise IngestError(FHIR_INVALID, "FHIR JSON must be an object with a resourceType")
    rtype = obj.get("resourceType")
    if not isinstance(rtype, str):
        raise IngestError(FHIR_INVALID, "resourceType must be a string", path="resourceType")
    version = fhir_version or _version_hint(obj)
    candidates: tuple[Version, ...] = (version,) if version else ("R5", "R4B")
    failures: list[tuple[int, _Fail, Version]] = []
    for candidate in candidates:
        checker = _LimitedChecker(candidate) if limited else _Checker(candidate)
        try:
            return candidate, checker.check_resource(obj)
        except _Fail as exc:
            failures.append((checker.visited, exc, candidate))
        except RecursionError:
            raise IngestError(INGEST_LIMIT_EXCEEDED, "nesting too deep (limit max_depth)", limit="max_depth") from None
    # The version that walked further before failing is the one the sender most plausibly meant.
    _, exc, candidate = max(failures, key=lambda f: f[0])
    raise _fail_to_error(exc, rtype, candidate)


def _full_validate(obj: dict[str, Any], model: type, version: Version) -> None:
    try:
        model.model_validate(obj)  # type: ignore[attr-defined]
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        loc = obj["resourceType"] + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise IngestError(
            FHIR_INVALID,
            f"{loc}: {err['msg']} (FHIR {version}, {exc.error_count()} error(s))",
            path=loc,
            fhir_version=version,
            errors=exc.error_count(),
        ) from None
    except (ValueError, TypeError) as exc:
        # A model validator's own message may quote the value it refused: name the failure, not the value.
        message = f"{obj['resourceType']}: the model refused a value ({type(exc).__name__}, FHIR {version})"
        raise IngestError(FHIR_INVALID, message) from None


# --- mapping to canonical records ---------------------------------------------------------------------------


def _first_code(concept: Any) -> str:
    """The first coding's code of a CodeableConcept (or R5 CodeableReference.concept / a bare Coding)."""
    if not isinstance(concept, dict):
        return ""
    if "concept" in concept:
        concept = concept["concept"]
        if not isinstance(concept, dict):
            return ""
    if "code" in concept and "coding" not in concept:
        return str(concept["code"])
    for coding in concept.get("coding") or ():
        if isinstance(coding, dict) and coding.get("code"):
            return str(coding["code"])
    return ""


def _category_codes(resource: dict[str, Any]) -> set[str]:
    categories = resource.get("category") or []
    if isinstance(categories, dict):
        categories = [categories]
    return {
        c.get("code")
        for cat in categories
        if isinstance(cat, dict)
        for c in cat.get("coding") or ()
        if isinstance(c, dict)
    }


def _type_code(resource: dict[str, Any], kind: ResourceKind) -> str:
    rtype: str = resource["resourceType"]
    value = None
    for element in kind.code_elements:
        value = resource.get(element)
        if value:
            break
    if isinstance(value, list):
        value = value[0] if value else None
    code = _first_code(value)
    return f"{rtype}/{code}" if code else rtype


def parse_fhir_datetime(value: str, assume_tz: tzinfo = UTC) -> datetime:
    """FHIR date/dateTime/instant → aware UTC datetime; partial dates take their first instant in ``assume_tz``."""
    if "T" in value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    parts = [int(p) for p in value.split("-")]
    year, month, day = parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1
    return datetime(year, month, day, tzinfo=assume_tz).astimezone(UTC)


def _clinical_time(resource: dict[str, Any], kind: ResourceKind, assume_tz: tzinfo) -> datetime | None:
    for path in kind.time_paths:
        value: Any = resource
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, dict):
            value = value.get("start") or (value.get("event") or [None])[0]
        if isinstance(value, str):
            return parse_fhir_datetime(value, assume_tz)
    return None


def _identity_from_patient(patient: dict[str, Any]) -> PatientIdentity:
    identifiers = [i for i in patient.get("identifier") or () if isinstance(i, dict) and i.get("value")]
    chosen = next(
        (i for i in identifiers if any(c.get("code") == "MR" for c in (i.get("type") or {}).get("coding") or ())),
        identifiers[0] if identifiers else None,
    )
    if chosen is not None:
        mrn, authority = str(chosen["value"]), str(chosen.get("system") or "")
    elif patient.get("id"):
        mrn, authority = str(patient["id"]), FHIR_LOGICAL_ID_AUTHORITY
    else:
        message = "Patient has neither an identifier nor an id"
        raise IngestError(FHIR_MISSING_PATIENT, message, path="Patient.identifier")
    names = [n for n in patient.get("name") or () if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    given = name.get("given") or []
    return PatientIdentity(
        mrn=mrn,
        assigning_authority=authority,
        family_name=str(name.get("family") or ""),
        given_name=" ".join(str(g) for g in given if g),
        birth_date=str(patient.get("birthDate") or ""),
        sex=str(patient.get("gender") or ""),
    )


# --- demographics -------------------------------------------------------------------------------------------

_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _texts(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _identifier(identifier: dict[str, Any]) -> Identifier | None:
    concept = identifier.get("type")
    codings = _dicts(concept.get("coding")) if isinstance(concept, dict) else []
    coding = next((c for c in codings if c.get("system") == _V2_0203), codings[0] if codings else {})
    return make_identifier(_text(identifier.get("value")), _text(identifier.get("system")), _text(coding.get("code")))


def from_fhir_patient(patient: Mapping[str, Any]) -> Demographics:
    """The demographics of a FHIR (R4B or R5) Patient resource, parsed JSON as :func:`load_json` returns it.

    Without a business identifier the logical id stands in (authority :data:`FHIR_LOGICAL_ID_AUTHORITY`), as it does
    for the record's patient key.
    """
    names = (person_name(_text(n.get("family")), _texts(n.get("given"))) for n in _dicts(patient.get("name")))
    identifiers = [i for i in map(_identifier, _dicts(patient.get("identifier"))) if i is not None]
    if not identifiers and _text(patient.get("id")):
        identifiers.append(Identifier(_text(patient.get("id")), FHIR_LOGICAL_ID_AUTHORITY))
    addresses = (
        Address(
            lines=tuple(line.strip() for line in _texts(a.get("line")) if line.strip()),
            city=_text(a.get("city")),
            district=_text(a.get("district")),
            state=_text(a.get("state")),
            postal_code=_text(a.get("postalCode")),
            country=_text(a.get("country")),
            use=_text(a.get("use")),
        )
        for a in _dicts(patient.get("address"))
    )
    telecoms = (
        Telecom(_text(t.get("system")), _text(t.get("value")), _text(t.get("use")))
        for t in _dicts(patient.get("telecom"))
        if _text(t.get("value"))
    )
    return Demographics(
        names=tuple(n for n in names if n is not None),
        sex=Sex.from_fhir(_text(patient.get("gender"))),
        birth_date=parse_birth_date(_text(patient.get("birthDate"))),
        identifiers=tuple(identifiers),
        addresses=tuple(a for a in addresses if a),
        telecoms=tuple(telecoms),
    )


@lru_cache(maxsize=4096)
def _known_only_by(identifier: Identifier | None) -> Demographics:
    """Cached so that records about one patient share one object, which pickle then sends once per bulk chunk
    instead of once per record (the parent process unpickles every record on the ingest hot path)."""
    return Demographics(identifiers=(identifier,) if identifier is not None else ())


def _identity_from_reference(resource: dict[str, Any], element: str, patients: dict[str, _Patient]) -> _Patient:
    rtype = resource["resourceType"]
    ref = resource.get(element)
    if isinstance(ref, list):  # R5 Composition.subject is 0..*: the first reference names the patient
        ref = next((r for r in ref if isinstance(r, dict)), None)
    if not isinstance(ref, dict):
        raise IngestError(FHIR_MISSING_PATIENT, f"{rtype}.{element}: no patient reference", path=f"{rtype}.{element}")
    literal = ref.get("reference")
    if isinstance(literal, str):
        if literal in patients:
            return patients[literal]
        kind, _, ident = literal.rpartition("/")
        if kind.rsplit("/", 1)[-1] != "Patient" or not ident:
            raise IngestError(
                FHIR_MISSING_PATIENT,
                f"{rtype}.{element}.reference: must refer to a Patient (Patient/<id> or a bundle Patient entry)",
                path=f"{rtype}.{element}.reference",
            )
        if "Patient/" + ident in patients:
            return patients["Patient/" + ident]
    # The patient is not in this input: the reference's identifier (or logical id) is all that is known of them.
    identifier = ref.get("identifier")
    if isinstance(identifier, dict) and identifier.get("value"):
        authority = str(identifier.get("system") or "")
        identity = PatientIdentity(mrn=str(identifier["value"]), assigning_authority=authority)
        return identity, _known_only_by(_identifier(identifier))
    if isinstance(literal, str):
        mrn = literal.rpartition("/")[2]
        identity = PatientIdentity(mrn=mrn, assigning_authority=FHIR_LOGICAL_ID_AUTHORITY)
        return identity, _known_only_by(Identifier(mrn, FHIR_LOGICAL_ID_AUTHORITY))
    raise IngestError(
        FHIR_MISSING_PATIENT,
        f"{rtype}.{element}: reference has neither a reference nor an identifier",
        path=f"{rtype}.{element}",
    )


def _record_class(resource: dict[str, Any], kind: ResourceKind) -> RecordClass:
    if kind.category_rules:
        codes = _category_codes(resource)
        for rule in kind.category_rules:
            if codes & rule.any_of and not codes & rule.none_of:
                return rule.record_class
    return kind.record_class


def _patient_entry(patient: dict[str, Any]) -> _Patient:
    return _identity_from_patient(patient), from_fhir_patient(patient)


def _to_record(
    resource: dict[str, Any],
    *,
    patients: dict[str, _Patient],
    source_system: str,
    source_id: str,
    payload: bytes,
    version: Version,
    assume_tz: tzinfo,
) -> ParsedRecord:
    rtype = resource["resourceType"]
    kind = RESOURCES[rtype]
    if kind.patient_element is None:
        patient, demographics = _patient_entry(resource)
    else:
        patient, demographics = _identity_from_reference(resource, kind.patient_element, patients)
    summary = {"resource_type": rtype, "fhir_version": version}
    status = resource.get("status")
    if isinstance(status, str):
        summary["status"] = status
    return ParsedRecord(
        patient=patient,
        record_class=_record_class(resource, kind),
        type_code=_type_code(resource, kind),
        clinical_time=_clinical_time(resource, kind, assume_tz),
        source_system=source_system,
        source_id=source_id,
        media_type=MEDIA_FHIR_JSON,
        payload=payload,
        summary=summary,
        demographics=demographics,
    )


def _require_supported(rtype: str, path: str) -> None:
    if rtype not in RESOURCES:
        raise IngestError(
            FHIR_UNSUPPORTED_RESOURCE,
            f"{path}: resource type {rtype} is not ingested; supported: Bundle, {', '.join(sorted(RESOURCES))}",
            path=path,
            resource_type=rtype,
        )


def _content_id(rtype: str, payload: bytes) -> str:
    return f"{rtype}/sha256:{hashlib.sha256(payload).hexdigest()}"


def parse_fhir(
    data: bytes,
    *,
    source_system: str = "",
    validate: Validation = "full",
    fhir_version: Version | None = None,
    assume_tz: tzinfo = UTC,
) -> list[ParsedRecord]:
    """Parse one FHIR JSON resource or Bundle into canonical records (see the module docstring for the rules).

    ``assume_tz`` applies only to date-only values (dateTimes with a time carry their own offset in FHIR).
    """
    if validate not in ("full", "fast"):
        raise ValueError(f"validate must be 'full' or 'fast', not {validate!r}")
    obj = load_json(data)
    limited = _needs_limits(data)
    if type(obj) is not dict or not isinstance(obj.get("resourceType"), str):
        raise IngestError(FHIR_INVALID, "FHIR JSON must be an object with a string resourceType", path="resourceType")
    rtype = obj["resourceType"]
    if rtype != "Bundle":
        # Reject unsupported types before the (costlier) structural check, but only for real resource types:
        # an unknown name is a schema error, not merely an unsupported one.
        if rtype not in RESOURCES and _is_known_resource_type(rtype):
            _require_supported(rtype, rtype)
        version, model = _check_structure(obj, fhir_version, limited=limited)
        if validate == "full":
            _full_validate(obj, model, version)
        source_id = f"{rtype}/{obj['id']}" if obj.get("id") else _content_id(rtype, data)
        return [
            _to_record(
                obj,
                patients={},
                source_system=source_system,
                source_id=source_id,
                payload=data,
                version=version,
                assume_tz=assume_tz,
            )
        ]
    return _parse_bundle(obj, source_system, validate, fhir_version, assume_tz, limited)


#: Resources a FHIR document carries to say who wrote, attested or keeps it (Composition.author, attester,
#: custodian): ingested as part of the document's payload, never as records of their own.
DOCUMENT_SUPPORTING = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "Device", "RelatedPerson", "Location"}
)


def _bundle_fail(rule: str, message: str, path: str) -> IngestError:
    return IngestError(FHIR_BUNDLE_INVALID, f"{path}: {message} ({rule})", path=path, rule=rule)


def _check_bundle_rules(bundle: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """The Bundle invariants (bdl-1..bdl-11) that apply to the bundle types the node ingests; bdl-7 (unique
    fullUrl) is checked while mapping entries."""
    btype = bundle["type"]
    if "total" in bundle and btype not in ("searchset", "history"):
        raise _bundle_fail("bdl-1", "total is only allowed in a searchset or history", "Bundle.total")
    for i, entry in enumerate(entries):
        path = f"Bundle.entry[{i}]"
        if "search" in entry and btype != "searchset":
            raise _bundle_fail("bdl-2", "entry.search is only allowed in a searchset", path + ".search")
        request = entry.get("request")
        if btype in ("batch", "transaction", "history"):
            if not isinstance(request, dict):
                raise _bundle_fail("bdl-3", f"entry.request is mandatory in a {btype}", path + ".request")
            if request.get("method") not in HTTP_VERBS:
                raise _bundle_fail(
                    "bdl-3",
                    "entry.request.method is not GET, HEAD, POST, PUT, DELETE or PATCH",
                    path + ".request.method",
                )
        elif request is not None:
            raise _bundle_fail("bdl-3", "entry.request is only allowed in a batch, transaction or history", path)
        if "response" in entry and btype not in ("batch-response", "transaction-response", "history"):
            raise _bundle_fail("bdl-4", "entry.response is only allowed in a response or history", path + ".response")
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and "/_history/" in full_url:
            raise _bundle_fail("bdl-8", "fullUrl cannot be a version-specific reference", path + ".fullUrl")
    if btype == "document":
        identifier = bundle.get("identifier")
        if not isinstance(identifier, dict) or not identifier.get("system") or not identifier.get("value"):
            raise _bundle_fail(
                "bdl-9", "a document must have an identifier with a system and a value", "Bundle.identifier"
            )
        if not bundle.get("timestamp"):
            raise _bundle_fail("bdl-10", "a document must have a timestamp", "Bundle.timestamp")
        if entries[0]["resource"]["resourceType"] != "Composition":
            raise _bundle_fail("bdl-11", "a document must have a Composition as its first resource", "Bundle.entry[0]")


def _parse_bundle(
    bundle: dict[str, Any],
    source_system: str,
    validate: Validation,
    fhir_version: Version | None,
    assume_tz: tzinfo,
    limited: bool = True,
) -> list[ParsedRecord]:
    btype = bundle.get("type")
    if btype not in SUPPORTED_BUNDLE_TYPES:
        raise IngestError(
            FHIR_UNSUPPORTED_RESOURCE,
            f"Bundle.type {_quoted_name(str(btype))} is not ingested; supported: "
            f"{', '.join(sorted(SUPPORTED_BUNDLE_TYPES))}",
            path="Bundle.type",
        )
    document = btype == "document"
    # Type gate first: an unsupported entry is reported as such even if it would also fail the schema check.
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise IngestError(FHIR_INVALID, "Bundle has no entries", path="Bundle.entry")
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise IngestError(FHIR_INVALID, f"Bundle.entry[{i}].resource: missing", path=f"Bundle.entry[{i}].resource")
        rtype = resource["resourceType"]
        if not (document and rtype in DOCUMENT_SUPPORTING) and _is_known_resource_type(rtype):
            _require_supported(rtype, f"Bundle.entry[{i}].resource")
    version, model = _check_structure(bundle, fhir_version, limited=limited)
    _check_bundle_rules(bundle, entries)
    if validate == "full":
        _full_validate(bundle, model, version)

    # Patients first, so clinical entries can resolve their subject by fullUrl or Patient/<id> in any order.
    patients: dict[str, _Patient] = {}
    for entry in entries:
        resource = entry["resource"]
        if resource["resourceType"] == "Patient":
            identity = _patient_entry(resource)
            if entry.get("fullUrl"):
                patients[entry["fullUrl"]] = identity
            if resource.get("id"):
                patients["Patient/" + resource["id"]] = identity

    records: list[ParsedRecord] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        resource = entry["resource"]
        rtype = resource["resourceType"]
        if document and rtype in DOCUMENT_SUPPORTING:
            continue  # in the Composition's payload (the whole document) below
        # A document is attested as a whole: its Composition's record is the entire document (authors,
        # attesters and custodian included), the other clinical entries are records of their own.
        payload = canonical_json(bundle if document and i == 0 else resource)
        if entry.get("fullUrl"):
            source_id = entry["fullUrl"]
        elif resource.get("id"):
            source_id = f"{rtype}/{resource['id']}"
        else:
            source_id = _content_id(rtype, payload)
        if source_id in seen:
            raise IngestError(
                FHIR_BUNDLE_INVALID,
                f"Bundle.entry[{i}]: duplicate entry id (fullUrl or type/id) within the bundle (bdl-7)",
                path=f"Bundle.entry[{i}]",
                rule="bdl-7",
            )
        seen.add(source_id)
        try:
            records.append(
                _to_record(
                    resource,
                    patients=patients,
                    source_system=source_system,
                    source_id=source_id,
                    payload=payload,
                    version=version,
                    assume_tz=assume_tz,
                )
            )
        except IngestError as exc:
            path = f"Bundle.entry[{i}].resource"
            raise IngestError(exc.code, f"{path}: {exc.message}", **{**exc.details, "entry": i}) from None
    return records
