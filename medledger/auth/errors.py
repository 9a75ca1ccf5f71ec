"""Authentication failures with precise, stable codes.

Every rejection raised by :mod:`medledger.auth.siwe` and :mod:`medledger.auth.httpsig` is an
:class:`AuthFailure` whose ``code`` names the exact check that failed, so the node can log it, count it and
return it to the caller (the caller signed the thing; telling it which rule it broke leaks nothing secret).
"""

from __future__ import annotations

from typing import Any

from medledger.errors import MedLedgerError, define

__all__ = [
    "HTTPSIG_CODES",
    "SIWE_CODES",
    "AuthFailure",
    "NonceStoreFull",
    "SignatureFailure",
    "SiweFailure",
]

#: Sign-In with Ethereum (medledger.auth.siwe): each code names the check the message or signature failed.
SIWE_CODES = frozenset(
    entry.code
    for entry in (
        define("siwe_malformed", 401, "the sign-in message does not follow the EIP-4361 grammar exactly"),
        define("siwe_bad_signature", 401, "the sign-in signature is malformed or not by the message's address"),
        define("siwe_wrong_domain", 401, "the sign-in message is for another domain"),
        define("siwe_wrong_uri", 401, "the sign-in message is for another URI"),
        define("siwe_wrong_chain", 401, "the sign-in message is for another chain"),
        define("siwe_expired", 401, "the sign-in message has expired"),
        define("siwe_not_yet_valid", 401, "the sign-in message is not valid yet"),
        define("siwe_stale", 401, "the sign-in message was issued too long ago or in the future"),
        define("siwe_nonce_mismatch", 401, "the sign-in message's nonce is not the one issued"),
    )
)

#: Signed HTTP requests (medledger.auth.httpsig, an RFC 9421 profile).
HTTPSIG_CODES = frozenset(
    entry.code
    for entry in (
        define("sig_missing", 401, "the request is not signed (Signature-Input, Signature or Content-Digest missing)"),
        define("sig_malformed", 401, "a signature header or parameter is malformed"),
        define("sig_unsupported", 401, "the signature uses an algorithm or digest outside the profile"),
        define("sig_components", 401, "the signature does not cover exactly the profile's components"),
        define("sig_digest_mismatch", 401, "Content-Digest does not match the body"),
        define("sig_bad_signature", 401, "the signature does not verify for its keyid"),
        define("sig_stale", 401, "the signature was created too far from now"),
        define("sig_expired", 401, "the signature has expired"),
        define("sig_replayed", 401, "the signature's nonce was already used"),
    )
)

define("unauthenticated", 401, "no valid credential: missing, malformed, unknown, expired or revoked")
define("nonce_store_full", 503, "the replay cache is full; retry later")


class AuthFailure(MedLedgerError):
    """A credential was rejected. ``code`` is one of :data:`SIWE_CODES` or :data:`HTTPSIG_CODES`.

    ``http_status`` is the status an HTTP surface should answer with: every code here means "not
    authenticated", never "server broken".
    """

    code = "unauthenticated"
    http_status = 401
    #: Codes this class may carry; a typo in a raise site fails loudly in tests instead of shipping.
    allowed_codes: frozenset[str] = SIWE_CODES | HTTPSIG_CODES

    def __init__(self, message: str, *, code: str, details: dict[str, Any] | None = None) -> None:
        if code not in self.allowed_codes:
            raise ValueError(f"{type(self).__name__} does not define code {code!r}")
        super().__init__(message, code=code, details=details)


class SiweFailure(AuthFailure):
    """A Sign-In with Ethereum message or signature was rejected."""

    allowed_codes = SIWE_CODES


class SignatureFailure(AuthFailure):
    """A signed HTTP request (RFC 9421 profile) was rejected."""

    allowed_codes = HTTPSIG_CODES


class NonceStoreFull(MedLedgerError):
    """The in-process replay cache is at capacity; the request is refused rather than risk accepting a replay.

    This is the server's problem, not the caller's (503, retry later), hence not an :class:`AuthFailure`.
    """

    code = "nonce_store_full"
    http_status = 503
