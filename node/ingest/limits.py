"""The resource limits every ingest parser enforces, in one place (documented in docs/node.md, "Ingest limits").

A limit protects the node, not the standard: each is far above what a real message, image header or resource
needs, and low enough that a hostile input cannot exhaust the stack, memory or CPU before it is rejected. All three
parsers check the same names; an input over a limit is refused with ``ingest_limit_exceeded`` (or, for
decompression, ``ingest_decompression_bomb``) naming the limit and where it was hit, never the content.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    #: Nesting of JSON objects/arrays (FHIR) and of DICOM sequences (SQ inside an item inside an SQ ...).
    max_depth: int = 64
    #: Items of one JSON array (FHIR) and items of one DICOM sequence.
    max_array_length: int = 10_000
    #: Characters of one JSON string or one HL7 field (a base64 attachment may be larger: see max_base64_length).
    max_string_length: int = 1 << 20
    #: Characters of one base64Binary value (FHIR Attachment.data, HL7 ED data): bounded by the payload size too.
    max_base64_length: int = 48 << 20
    #: Repetitions of one HL7 field (PID-3~...~...).
    max_repetitions: int = 1_000
    #: Segments of one HL7 message.
    max_segments: int = 10_000
    #: Fields of one HL7 segment.
    max_fields: int = 500
    #: Bytes a compressed stream (Deflated Explicit VR Little Endian) may inflate to.
    max_decompressed_bytes: int = 256 << 20
    #: Inflated size / compressed size; real deflated data sets compress 2-20x, bombs ~1000x.
    max_compression_ratio: int = 200
    #: Bytes the declared image matrix (Rows x Columns x Samples x Bits x Frames) may decode to.
    max_decoded_pixel_bytes: int = 4 << 30


#: The limits the node uses (one instance: a node does not tune them per input).
LIMITS = Limits()
