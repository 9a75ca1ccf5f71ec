"""Findings the fuzzers made that are not fixed yet, by signature (see ``Finding.signature``), with where the fix
belongs. The property tests and the short atheris runs skip these (their reproducers under ``crashes/`` are
strict xfail tests, so a fix turns them into failures until the entry and the mark are removed); anything
else the fuzzers find fails the suite.
"""

from __future__ import annotations

KNOWN: dict[str, str] = {
    "UnicodeEncodeError@siwe.py:parse": (
        "medledger/auth/siwe.py: SiweMessage.parse encodes the text to measure it; a message with a lone "
        "surrogate (JSON '\\udc80', which the API's json.loads passes through) raises UnicodeEncodeError "
        "instead of siwe_malformed"
    ),
    "malleable@eip712": (
        "node/relay.py: _check_signer recovers with eth_account, which accepts the high-s twin of a valid "
        "signature; the contract's ECDSA rejects it, so the relay submits a transaction that reverts "
        "(should be invalid_signature before any gas is spent, as medledger/auth/_eth.py does for SIWE/httpsig)"
    ),
}

#: Reproducer files under crashes/ and the signature each one must produce while it is not fixed.
REPRODUCERS: dict[str, str] = {
    "siwe-1.bin": "UnicodeEncodeError@siwe.py:parse",
    "eip712-1.bin": "malleable@eip712",
}
