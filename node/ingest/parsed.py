"""The record type the parsers return: a canonical record plus the patient's demographics."""

from __future__ import annotations

from dataclasses import dataclass, field

from medledger.demographics import Demographics
from medledger.records import CanonicalRecord

EMPTY_DEMOGRAPHICS = Demographics()


@dataclass(frozen=True)
class ParsedRecord(CanonicalRecord):
    """A :class:`CanonicalRecord` with ``demographics``: the patient as the source describes them (names, sex,
    birth date, every identifier, addresses, telecoms), in the one model all three parsers produce.

    ``patient`` is unchanged (the one identifier the node keys the patient on, with the source's raw name, birth
    date and sex strings); ``demographics`` adds to it and is not yet stored by the pipeline. For a clinical
    FHIR resource whose patient is not in the same bundle it holds only what the reference says (an identifier).
    """

    demographics: Demographics = field(default=EMPTY_DEMOGRAPHICS, repr=False)  # repr=False: names are PHI
