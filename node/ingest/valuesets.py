"""Required value-set bindings of the FHIR ``code`` elements the node maps or relies on, per FHIR version.

fhir.resources lists only the first few codes of a binding (``enum_values`` ends in ``"+"``), so its models cannot
enforce these; the codes here are copied from the R4B (4.3.0) and R5 (5.0.0) value sets. Only elements with a
*required* binding are listed: for those a code outside the set is invalid, not merely unusual. The fast check
refuses such a code with ``fhir_invalid_code``. ``Bundle.entry.request.method`` is checked with the Bundle rules
(bdl-3) instead, so its error names the rule.
"""

from __future__ import annotations

from typing import Literal

_Version = Literal["R4B", "R5"]


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


_BOTH: dict[tuple[str, str], frozenset[str]] = {
    ("Patient", "gender"): _codes("male female other unknown"),
    ("Narrative", "status"): _codes("generated extensions additional empty"),
    ("HumanName", "use"): _codes("usual official temp nickname anonymous old maiden"),
    ("Identifier", "use"): _codes("usual official temp secondary old"),
    ("ContactPoint", "system"): _codes("phone fax email pager url sms other"),
    ("ContactPoint", "use"): _codes("home work temp old mobile"),
    ("Address", "use"): _codes("home work temp old billing"),
    ("Address", "type"): _codes("postal physical both"),
    ("DocumentReference", "status"): _codes("current superseded entered-in-error"),
    ("Immunization", "status"): _codes("completed entered-in-error not-done"),
    ("Procedure", "status"): _codes(
        "preparation in-progress not-done on-hold stopped completed entered-in-error unknown"
    ),
    ("MedicationRequest", "intent"): _codes(
        "proposal plan order original-order reflex-order filler-order instance-order option"
    ),
    ("MedicationRequest", "priority"): _codes("routine urgent asap stat"),
    ("AllergyIntolerance", "criticality"): _codes("low high unable-to-assess"),
    ("AllergyIntolerance", "category"): _codes("food medication environment biologic"),
    ("Bundle", "type"): _codes(
        "document message transaction transaction-response batch batch-response history searchset collection "
        "subscription-notification"
    ),
}

_BY_VERSION: dict[_Version, dict[tuple[str, str], frozenset[str]]] = {
    "R4B": {
        ("Observation", "status"): _codes(
            "registered preliminary final amended corrected cancelled entered-in-error unknown"
        ),
        ("DiagnosticReport", "status"): _codes(
            "registered partial preliminary final amended corrected appended cancelled entered-in-error unknown"
        ),
        ("Encounter", "status"): _codes(
            "planned arrived triaged in-progress onleave finished cancelled entered-in-error unknown"
        ),
        ("DocumentReference", "docStatus"): _codes("preliminary final amended entered-in-error"),
        ("Composition", "status"): _codes("preliminary final amended entered-in-error"),
        ("MedicationRequest", "status"): _codes(
            "active on-hold cancelled completed entered-in-error stopped draft unknown"
        ),
        ("AllergyIntolerance", "type"): _codes("allergy intolerance"),
    },
    "R5": {
        ("Observation", "status"): _codes(
            "registered specimen-in-process preliminary final amended corrected appended cancelled "
            "entered-in-error unknown cannot-be-obtained"
        ),
        ("DiagnosticReport", "status"): _codes(
            "registered partial preliminary modified final amended corrected appended cancelled entered-in-error "
            "unknown"
        ),
        ("Encounter", "status"): _codes(
            "planned in-progress on-hold discharged completed cancelled discontinued entered-in-error unknown"
        ),
        ("DocumentReference", "docStatus"): _codes(
            "registered partial preliminary final amended corrected appended cancelled entered-in-error "
            "deprecated unknown"
        ),
        ("Composition", "status"): _codes(
            "registered partial preliminary final amended corrected appended cancelled entered-in-error "
            "deprecated unknown"
        ),
        ("MedicationRequest", "status"): _codes(
            "active on-hold ended stopped completed cancelled entered-in-error draft unknown"
        ),
    },
}

#: The methods of Bundle.entry.request (http-verb, required): checked by the bdl-3 rule.
HTTP_VERBS = _codes("GET HEAD POST PUT DELETE PATCH")


def required_codes(model: type, element: str) -> frozenset[str] | None:
    """The codes allowed for ``element`` of ``model`` (a fhir.resources class), or None if no required binding
    is enforced."""
    version: _Version = "R4B" if ".R4B." in model.__module__ else "R5"
    key = (model.__name__, element)
    return _BY_VERSION[version].get(key) or _BOTH.get(key)
