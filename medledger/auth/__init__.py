"""Authentication primitives shared by institution nodes (verifiers) and clients (signers).

* :mod:`medledger.auth.siwe`: Sign-In with Ethereum (EIP-4361) for patients and staff wallets;
* :mod:`medledger.auth.httpsig`: institution-to-institution requests signed with the ledger key, a strict
  profile of RFC 9421 HTTP Message Signatures with RFC 9530 ``Content-Digest``.

Pure library: no web framework, database or network. Every rejection is an
:class:`~medledger.auth.errors.AuthFailure` with a precise ``code``.
"""

from __future__ import annotations

from medledger.auth.errors import AuthFailure, NonceStoreFull, SignatureFailure, SiweFailure
from medledger.auth.httpsig import (
    MemoryNonceStore,
    NonceStore,
    SignedRequest,
    authority_of,
    sign_request,
    verify_request,
)
from medledger.auth.siwe import SiweMessage, new_nonce, sign_siwe, verify_siwe

__all__ = [
    "AuthFailure",
    "MemoryNonceStore",
    "NonceStore",
    "NonceStoreFull",
    "SignatureFailure",
    "SignedRequest",
    "SiweFailure",
    "SiweMessage",
    "authority_of",
    "new_nonce",
    "sign_request",
    "sign_siwe",
    "verify_request",
    "verify_siwe",
]
