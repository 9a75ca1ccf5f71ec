"""The node's error codes in the registry (medledger.errors): the HTTP status of each and a line for the API docs.

In one module rather than next to each raise site, so the node's modules stay free of HTTP concerns and the
API's codes can be read in one place. Grouped by the module that raises them. Importing this module registers
every code the node can answer with: its own and those of the libraries it uses (common package, auth, indexer).
A workflow declares its codes in its own ``errors.py``; nothing here changes for it.
"""

from __future__ import annotations

import indexer.error_codes
import medledger.auth.errors
import medledger.error_codes
from medledger.errors import define

#: The libraries whose codes the node answers with too; importing them registered their codes.
LIBRARIES = (medledger.error_codes, medledger.auth.errors, indexer.error_codes)

# node.api.errors: what the handlers answer for failures outside the error hierarchy.
define("internal_error", 500, "an unexpected failure (details are in the node's log only)")
define("invalid_request", 422, "the request does not match the API schema (details list the problems)")
define("not_found", 404, "no such route, or no such staff member")
define("method_not_allowed", 405, "the route does not take this method")
define("http_error", 400, "another HTTP-level failure; the status is the HTTP layer's")

# node.api.app
define("invalid_record_id", 422, "a record id is not 32 bytes of 0x-prefixed hex")
define("empty_body", 422, "the request body is empty")
define("payload_too_large", 413, "the body (or an ingested file) exceeds max_payload_bytes")

# node.api.params
define("invalid_purpose", 422, "not a known purpose of use")
define("invalid_record_class", 422, "not a known record class (lab, imaging, ...)")

# node.ingest.errors (its ALL_CODES; payload_too_large is above): a bad input, per file or per record.
define("unknown_format", 415, "the body is not HL7 v2, DICOM or FHIR JSON")
define("hl7_missing_msh", 422, "the HL7 message does not start with an MSH segment")
define("hl7_bad_delimiters", 422, "MSH-1/MSH-2 do not define usable delimiters")
define("hl7_segment_order", 422, "HL7 segments in an order the message type does not allow")
define("hl7_unsupported_message", 422, "an HL7 message type the node does not ingest")
define("hl7_missing_patient_id", 422, "no PID segment or no patient identifier")
define("hl7_invalid", 422, "another HL7 structural error (encoding, segment grammar, empty MSH-10, ...)")
define("hl7_invalid_datetime", 422, "an HL7 DTM/DT/TS field is not a real date and time (segment-field given)")
define("hl7_invalid_number", 422, "an HL7 NM value (OBX-5 of an NM result, ...) is not a number")
define("hl7_invalid_base64", 422, "an HL7 ED value declares Base64 but its data is not Base64")
define("hl7_too_many_components", 422, "an HL7 field has more components than its data type defines")
define("dicom_not_dicom", 422, "not a DICOM stream")
define("dicom_truncated", 422, "the DICOM data ends inside an element")
define("dicom_missing_patient_id", 422, "no DICOM PatientID (0010,0020)")
define("dicom_missing_uid", 422, "a required DICOM UID (study, series, SOP instance) is missing")
define("dicom_invalid", 422, "another DICOM error")
define("dicom_invalid_uid", 422, "a DICOM UI value breaks the UID grammar (digits and dots, at most 64)")
define("dicom_invalid_vr", 422, "a DICOM element has a value representation that is not a DICOM VR")
define("dicom_invalid_datetime", 422, "a DICOM DA/TM/DT value is not a real date or time")
define("dicom_unknown_transfer_syntax", 422, "the DICOM Transfer Syntax UID names no known transfer syntax")
define("dicom_pixel_data_short", 422, "DICOM Pixel Data is shorter than Rows x Columns x Samples x Bits x Frames")
define("dicom_pixel_data_invalid", 422, "encapsulated DICOM frames do not match their transfer syntax")
define("dicom_duplicate_tag", 422, "a DICOM data set holds the same tag twice")
define("fhir_invalid_json", 422, "not valid JSON (line and column given)")
define("fhir_duplicate_key", 422, "a JSON object repeats a key")
define("fhir_unsupported_resource", 422, "a FHIR resource type the node does not ingest")
define("fhir_invalid", 422, "a FHIR rule is violated (required element, pattern, reference)")
define("fhir_wrong_type", 422, "a FHIR element has the wrong JSON type")
define("fhir_missing_patient", 422, "the FHIR resource does not reference a patient")
define("fhir_invalid_datetime", 422, "a FHIR date/dateTime/instant names no calendar day (1981-02-29)")
define("fhir_out_of_range", 422, "a FHIR integer/positiveInt/unsignedInt is outside its range (32-bit)")
define("fhir_invalid_id", 422, "a FHIR id breaks [A-Za-z0-9-.]{1,64}")
define("fhir_invalid_base64", 422, "a FHIR base64Binary value (Attachment.data) is not Base64")
define("fhir_invalid_code", 422, "a FHIR code is outside the required value set of its element")
define("fhir_unsafe_narrative", 422, "FHIR narrative XHTML breaks txt-1/txt-2 (script, on* attributes, ...)")
define("fhir_bundle_invalid", 422, "a FHIR Bundle breaks a bdl rule (transaction request, document shape)")
define("ingest_limit_exceeded", 422, "an input exceeds an ingest limit (depth, array, string, repetitions)")
define("ingest_decompression_bomb", 422, "a compressed input inflates beyond the size or ratio limit")
define("ingest_control_character", 422, "a text value holds a control character (NUL, ESC, BEL, ...)")
define("ingest_unparseable", 422, "the parser failed on the input in an unforeseen way; it was refused")

# node.pipeline: a record's error in an ingest reply, never a response status of its own.
define("store_failed", 500, "the record's ciphertext could not be stored (nothing was written for it)")

# node.auth, node.identity
define("forbidden", 403, "the requester may not do this (staff role, or another patient's record)")
define("token_expired", 401, "the patient token has expired: sign in again")
define("siwe_nonce_invalid", 401, "the sign-in nonce is unknown, already used or expired: ask for a new one")
define("not_a_member", 403, "the signer of the request is not a current consortium member")
define("role_required", 403, "the signing member lacks the consortium role the request needs")

# node.consent, node.ledger_view, node.access_journal
define("consent_denied", 403, "no grant or open break-glass window authorizes this access")
define("ledger_unavailable", 503, "the node's view of the ledger is too old to decide on consent; retry")
define("access_log_unavailable", 503, "the access could not be journaled, so nothing was released; retry")

# node.release
define("record_not_found", 404, "no such record at this node (or not the requester's)")
define("record_erased", 410, "the record was destroyed at the patient's request; details carry the erasure")
define("record_not_anchored", 409, "the record is not anchored yet, so its commitment cannot be verified")
define("patient_not_linked", 409, "the record's patient has no ledger address yet, so the access cannot be logged")
define("requester_key_missing", 409, "the requester has no registered encryption key to wrap the record key to")
# The node's own store holds a ciphertext its key does not open: a fault of this server, not of the caller.
define("ciphertext_corrupted", 500, "the stored ciphertext does not decrypt: this node's store is corrupted")

# node.remote: another institution's node (the custodian) failed; its refusals keep their own code and status.
define("custodian_unreachable", 502, "the custodian's node cannot be reached")
define("custodian_error", 502, "the custodian's node answered with a server error or a malformed reply")
define("ciphertext_mismatch", 502, "the custodian's ciphertext does not match its commitment or does not decrypt")
define("custodian_refused", 400, "the custodian refused without a code (answered with its 4xx status)")

# node.relay: signed patient requests relayed to the chain.
define("relay_rejected", 422, "a signed patient request failed a check; nothing was sent to the chain")
define("invalid_grant", 422, "the grant is invalid (grantee, classes, purpose or validity)")
define("unknown_grant", 404, "no such grant")
define("not_grant_patient", 403, "the grant belongs to another patient")
define("grant_already_revoked", 409, "the grant is already revoked or replaced")
define("invalid_encryption_key", 422, "an X25519 public key is 32 bytes")
define("wrong_chain", 401, "the signature is for another chain or contract")
define("signature_expired", 401, "the signature's deadline has passed")
define("deadline_too_far", 422, "the signature's deadline is too far ahead")
define("invalid_signature", 401, "the signature is malformed or not the patient's")
define("nonce_mismatch", 409, "the signature's account nonce is not the patient's current one")
define("relayer_not_authorized", 503, "this node may not relay to the chain (not a member, or lacks the role)")

# node.emergency
define("invalid_reason", 422, "a break-glass reason must be 10..1000 characters")
define("invalid_duration", 422, "a break-glass window lasts 60 seconds to 24 hours")
define("not_emergency_member", 403, "this institution is not an EMERGENCY member of the consortium")
define("break_glass_already_open", 409, "a break-glass window on this patient is already open")
define("break_glass_refused", 409, "the chain refused to open the break-glass window")

# node.erasure
define("erasure_refused", 409, "the erasure cannot proceed")
define("not_record_patient", 403, "the record belongs to another patient")
define("record_busy", 409, "the record is being anchored right now; retry in a few seconds")

# node.directory
define("patient_not_found", 404, "no such patient at this node")
define("patient_link_conflict", 409, "the patient is already linked to another ledger address")
define("patient_key_not_registered", 409, "the address has no X25519 key registered on chain")
define("patient_mrn_missing", 422, "a patient needs an MRN")
define("invalid_public_key", 422, "a patient encryption key is a 32-byte X25519 public key")

# node.notifications
define("notification_invalid", 422, "a notice, recipient or contact destination is malformed")
define("channel_unavailable", 422, "this node does not deliver notifications over that channel")
define("too_many_contacts", 409, "the recipient already has the most notification contacts allowed")
define("contact_not_found", 404, "no such notification contact of the signed-in patient")

# node.service: a route of a module this node does not run (a configuration fault).
define("module_disabled", 500, "this node does not run the module the request needs")

# node.keystore, node.anchorer, node.chain_outbox: the node's own machinery; a caller never causes them.
define("keystore_bad_password", 500, "the keystore password is wrong", api=False)
define("anchorer_conflict", 500, "a second anchorer runs on this node's database")
define("outbox_conflict", 500, "a second chain-outbox worker runs on this node's database")
define("chain_write_invalid", 422, "an enqueued chain write is malformed (kind, key, address, call data or gas)")
define("chain_write_conflict", 409, "a different chain write was enqueued under the same kind and key")
define("chain_write_kind_taken", 500, "a chain write kind is registered twice")

# node.api.ratelimit
define(
    "rate_limited",
    429,
    "too many requests from this identity (staff token, patient, institution or client "
    "address): retry after the Retry-After seconds",
)

# node.api.errors, node.storage.local: the node's own infrastructure failing, never the request's fault.
define(
    "database_unavailable",
    503,
    "the node's database cannot be reached (restarting, failing over); nothing was done: retry shortly",
)
define(
    "insufficient_storage",
    507,
    "the blob store's file system is full; nothing was stored for this request: retry once space is freed",
)
