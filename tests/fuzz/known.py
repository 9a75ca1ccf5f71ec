"""Findings the fuzzers made that are not fixed yet, by signature (see ``Finding.signature``), with where the fix
belongs. The property tests and the short atheris runs skip these (their reproducers under ``crashes/`` are
strict xfail tests, so a fix turns them into failures until the entry and the mark are removed); anything
else the fuzzers find fails the suite.
"""

from __future__ import annotations

KNOWN: dict[str, str] = {}

#: Reproducer files under crashes/ and the signature each one produced before its fix (kept as regression tests:
#: each must now give the documented error). Fixed: a SIWE message with a lone surrogate (siwe_malformed, not
#: UnicodeEncodeError); the relay accepting the high-s twin of a valid EIP-712 signature (invalid_signature
#: before any gas is spent, medledger.chain.typed_data.recover_signer); the DICOM inflate loop that never ended
#: past the end of a deflate stream (node/ingest/dicom.py stops at eof).
REPRODUCERS: dict[str, str] = {
    "siwe-1.bin": "UnicodeEncodeError@siwe.py:parse",
    "eip712-1.bin": "malleable@eip712",
    "dicom-1.bin": "hang@dicom.py:_inflate",
}
