"""Ingest failures, each with a stable machine-readable code.

Messages are one line and locate the problem (segment, field, JSON path, byte offset) without repeating
clinical content: a rejected message is logged and returned to the sender, so it must not leak PHI.
"""

from __future__ import annotations

from typing import Any

from medledger.errors import InputError

# Every code an ingest error can carry; tests and the API documentation enumerate these.
HL7_MISSING_MSH = "hl7_missing_msh"
HL7_BAD_DELIMITERS = "hl7_bad_delimiters"
HL7_SEGMENT_ORDER = "hl7_segment_order"
HL7_UNSUPPORTED_MESSAGE = "hl7_unsupported_message"
HL7_MISSING_PATIENT_ID = "hl7_missing_patient_id"
HL7_INVALID = "hl7_invalid"
DICOM_NOT_DICOM = "dicom_not_dicom"
DICOM_TRUNCATED = "dicom_truncated"
DICOM_MISSING_PATIENT_ID = "dicom_missing_patient_id"
DICOM_MISSING_UID = "dicom_missing_uid"
DICOM_INVALID = "dicom_invalid"
FHIR_INVALID_JSON = "fhir_invalid_json"
FHIR_DUPLICATE_KEY = "fhir_duplicate_key"
FHIR_UNSUPPORTED_RESOURCE = "fhir_unsupported_resource"
FHIR_INVALID = "fhir_invalid"
FHIR_WRONG_TYPE = "fhir_wrong_type"
FHIR_MISSING_PATIENT = "fhir_missing_patient"
PAYLOAD_TOO_LARGE = "payload_too_large"
UNKNOWN_FORMAT = "unknown_format"

ALL_CODES = frozenset(
    {
        HL7_MISSING_MSH,
        HL7_BAD_DELIMITERS,
        HL7_SEGMENT_ORDER,
        HL7_UNSUPPORTED_MESSAGE,
        HL7_MISSING_PATIENT_ID,
        HL7_INVALID,
        DICOM_NOT_DICOM,
        DICOM_TRUNCATED,
        DICOM_MISSING_PATIENT_ID,
        DICOM_MISSING_UID,
        DICOM_INVALID,
        FHIR_INVALID_JSON,
        FHIR_DUPLICATE_KEY,
        FHIR_UNSUPPORTED_RESOURCE,
        FHIR_INVALID,
        FHIR_WRONG_TYPE,
        FHIR_MISSING_PATIENT,
        PAYLOAD_TOO_LARGE,
        UNKNOWN_FORMAT,
    }
)


class IngestError(InputError):
    """An input could not be ingested. ``code`` is one of :data:`ALL_CODES`; ``details`` locates the problem."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        if code not in ALL_CODES:
            raise ValueError(f"unknown ingest error code {code!r}")
        # One line, always: a multi-line message would break log parsing and the CLI's one-line error contract.
        super().__init__(" ".join(message.split()), code=code, details=details)
