"""The canonical record: one shape for every clinical input (HL7 v2, DICOM, FHIR), whatever its format.

The record id is derived, not random: ``keccak256(custodian ‖ source system ‖ source id)``. Re-ingesting the
same message or file therefore yields the same id, which makes ingest idempotent and lets the chain's
duplicate check catch a second anchoring of the same source record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from eth_utils import keccak

from medledger.addresses import address_bytes
from medledger.vocabulary import RecordClass

MEDIA_HL7V2 = "application/hl7-v2"
MEDIA_DICOM = "application/dicom"
MEDIA_FHIR_JSON = "application/fhir+json"


def record_id_for(custodian: str, source_system: str, source_id: str) -> bytes:
    """The 32-byte id of a source record held by ``custodian`` (an address)."""
    sep = b"\x1f"  # unit separator: cannot occur in either text part, so the parts cannot run together
    return keccak(address_bytes(custodian) + source_system.encode() + sep + source_id.encode())


@dataclass(frozen=True)
class PatientIdentity:
    """Who a record is about, as the source system knows them (not yet a ledger address)."""

    mrn: str
    assigning_authority: str = ""
    family_name: str = ""
    given_name: str = ""
    birth_date: str = ""  # ISO 8601 date, may be partial ("1980", "1980-05")
    sex: str = ""


@dataclass(frozen=True)
class CanonicalRecord:
    """A parsed, validated clinical record ready to be encrypted, stored and anchored.

    ``payload`` is the original bytes exactly as received (the HL7 message, the DICOM file, the FHIR JSON):
    the ledger commits to what the source produced, not to a re-serialisation.
    """

    patient: PatientIdentity
    record_class: RecordClass
    type_code: str  # e.g. "ORU^R01", "CT", "Observation/8867-4"
    clinical_time: datetime | None
    source_system: str
    source_id: str
    media_type: str
    payload: bytes = field(repr=False)
    summary: dict[str, str] = field(default_factory=dict)  # non-identifying index fields (e.g. modality)

    def record_id(self, custodian: str) -> bytes:
        return record_id_for(custodian, self.source_system, self.source_id)
