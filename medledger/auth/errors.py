"""Authentication failures with precise, stable codes.

Every rejection raised by :mod:`medledger.auth.siwe` and :mod:`medledger.auth.httpsig` is an
:class:`AuthFailure` whose ``code`` names the exact check that failed, so the node can log it, count it and
return it to the caller (the caller signed the thing; telling it which rule it broke leaks nothing secret).
"""

from __future__ import annotations

from typing import Any

from medledger.errors import MedLedgerError

__all__ = [
    "HTTPSIG_CODES",
    "SIWE_CODES",
    "AuthFailure",
    "NonceStoreFull",
    "SignatureFailure",
    "SiweFailure",
]

SIWE_CODES = frozenset(
    {
        "siwe_malformed",
        "siwe_bad_signature",
        "siwe_wrong_domain",
        "siwe_wrong_uri",
        "siwe_wrong_chain",
        "siwe_expired",
        "siwe_not_yet_valid",
        "siwe_stale",
        "siwe_nonce_mismatch",
    }
)

HTTPSIG_CODES = frozenset(
    {
        "sig_missing",
        "sig_malformed",
        "sig_unsupported",
        "sig_components",
        "sig_digest_mismatch",
        "sig_bad_signature",
        "sig_stale",
        "sig_expired",
        "sig_replayed",
    }
)


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
