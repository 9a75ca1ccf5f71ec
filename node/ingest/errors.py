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
HL7_INVALID_DATETIME = "hl7_invalid_datetime"
HL7_INVALID_NUMBER = "hl7_invalid_number"
HL7_INVALID_BASE64 = "hl7_invalid_base64"
HL7_TOO_MANY_COMPONENTS = "hl7_too_many_components"
DICOM_NOT_DICOM = "dicom_not_dicom"
DICOM_TRUNCATED = "dicom_truncated"
DICOM_MISSING_PATIENT_ID = "dicom_missing_patient_id"
DICOM_MISSING_UID = "dicom_missing_uid"
DICOM_INVALID = "dicom_invalid"
DICOM_INVALID_UID = "dicom_invalid_uid"
DICOM_INVALID_VR = "dicom_invalid_vr"
DICOM_INVALID_DATETIME = "dicom_invalid_datetime"
DICOM_UNKNOWN_TRANSFER_SYNTAX = "dicom_unknown_transfer_syntax"
DICOM_PIXEL_DATA_SHORT = "dicom_pixel_data_short"
DICOM_PIXEL_DATA_INVALID = "dicom_pixel_data_invalid"
DICOM_DUPLICATE_TAG = "dicom_duplicate_tag"
FHIR_INVALID_JSON = "fhir_invalid_json"
FHIR_DUPLICATE_KEY = "fhir_duplicate_key"
FHIR_UNSUPPORTED_RESOURCE = "fhir_unsupported_resource"
FHIR_INVALID = "fhir_invalid"
FHIR_WRONG_TYPE = "fhir_wrong_type"
FHIR_MISSING_PATIENT = "fhir_missing_patient"
FHIR_INVALID_DATETIME = "fhir_invalid_datetime"
FHIR_OUT_OF_RANGE = "fhir_out_of_range"
FHIR_INVALID_ID = "fhir_invalid_id"
FHIR_INVALID_BASE64 = "fhir_invalid_base64"
FHIR_INVALID_CODE = "fhir_invalid_code"
FHIR_UNSAFE_NARRATIVE = "fhir_unsafe_narrative"
FHIR_BUNDLE_INVALID = "fhir_bundle_invalid"
INGEST_LIMIT_EXCEEDED = "ingest_limit_exceeded"
INGEST_DECOMPRESSION_BOMB = "ingest_decompression_bomb"
INGEST_CONTROL_CHARACTER = "ingest_control_character"
INGEST_UNPARSEABLE = "ingest_unparseable"
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
        HL7_INVALID_DATETIME,
        HL7_INVALID_NUMBER,
        HL7_INVALID_BASE64,
        HL7_TOO_MANY_COMPONENTS,
        DICOM_NOT_DICOM,
        DICOM_TRUNCATED,
        DICOM_MISSING_PATIENT_ID,
        DICOM_MISSING_UID,
        DICOM_INVALID,
        DICOM_INVALID_UID,
        DICOM_INVALID_VR,
        DICOM_INVALID_DATETIME,
        DICOM_UNKNOWN_TRANSFER_SYNTAX,
        DICOM_PIXEL_DATA_SHORT,
        DICOM_PIXEL_DATA_INVALID,
        DICOM_DUPLICATE_TAG,
        FHIR_INVALID_JSON,
        FHIR_DUPLICATE_KEY,
        FHIR_UNSUPPORTED_RESOURCE,
        FHIR_INVALID,
        FHIR_WRONG_TYPE,
        FHIR_MISSING_PATIENT,
        FHIR_INVALID_DATETIME,
        FHIR_OUT_OF_RANGE,
        FHIR_INVALID_ID,
        FHIR_INVALID_BASE64,
        FHIR_INVALID_CODE,
        FHIR_UNSAFE_NARRATIVE,
        FHIR_BUNDLE_INVALID,
        INGEST_LIMIT_EXCEEDED,
        INGEST_DECOMPRESSION_BOMB,
        INGEST_CONTROL_CHARACTER,
        INGEST_UNPARSEABLE,
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
