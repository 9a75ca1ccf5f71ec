"""Signed institution-to-institution HTTP requests: a strict profile of RFC 9421 with RFC 9530 Content-Digest.

Profile (everything else is rejected):

* key: the institution's secp256k1 ledger key; ``keyid`` is its EIP-55 address;
* ``alg="eth-personal-sign"``: the signature is EIP-191 ``personal_sign`` (65 bytes ``r || s || v``, v = 27/28,
  low s) over the UTF-8 signature base;
* one signature, label ``ml``, covering exactly ``"@method" "@authority" "@path" "@query" "content-digest"``
  in that order, with the parameters ``created``, ``expires`` (``expires - created <= 300``), ``nonce``
  (16..64 chars of ``A-Za-z0-9_-``), ``keyid`` and ``alg``, each exactly once;
* ``Content-Digest`` carries exactly one member, ``sha-256``, also for empty bodies.

Headers as produced by :func:`sign_request`::

    Content-Digest: sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:
    Signature-Input: ml=("@method" "@authority" "@path" "@query" "content-digest");created=1700000000;\
expires=1700000060;nonce="...";keyid="0x...";alg="eth-personal-sign"
    Signature: ml=:<base64 of 65 bytes>:

Signature base (RFC 9421 §2.5; lines joined by ``\\n``, no trailing newline)::

    "@method": POST
    "@authority": node-b.example:8443
    "@path": /v1/records
    "@query": ?since=5
    "content-digest": sha-256=:...:
    "@signature-params": ("@method" "@authority" "@path" "@query" "content-digest");created=...;alg="..."

Why the verifier takes ``authority`` from its own configuration instead of the ``Host`` header: the authority
is what binds a signature to one node. If it came from the request, a request that node B received (or that
was captured on the way to it) could be replayed to node A with ``Host`` set to B's name; A's nonce store has
never seen that nonce, so nothing else would stop it. With the node's own public ``host[:port]`` in the base,
a signature made for B simply does not verify at A.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from medledger.addresses import Address
from medledger.auth._eth import (
    MessageSigner,
    address_from_checksummed,
    personal_digest,
    recover_personal,
    sign_personal,
)
from medledger.auth.errors import NonceStoreFull, SignatureFailure
from medledger.errors import InputError

__all__ = [
    "ALG",
    "COMPONENTS",
    "LABEL",
    "MAX_LIFETIME",
    "MemoryNonceStore",
    "NonceStore",
    "RequestSigner",
    "SignedRequest",
    "authority_of",
    "content_digest",
    "sign_request",
    "signature_base",
    "signature_params",
    "split_url",
    "verify_request",
]

LABEL = "ml"
ALG = "eth-personal-sign"
COMPONENTS = ("@method", "@authority", "@path", "@query", "content-digest")
#: Longest allowed ``expires - created``, seconds.
MAX_LIFETIME = 300
#: Header size limits (characters): canonical values are ~250, 92 and 54; anything far bigger is an attack.
MAX_HEADER_CHARS = {"signature-input": 1024, "signature": 256, "content-digest": 256}
_HEADER_NAMES = {"signature-input": 0, "signature": 1, "content-digest": 2}
_HEADER_TITLES = ("Signature-Input", "Signature", "Content-Digest")
_PARAM_NAMES = ("created", "expires", "nonce", "keyid", "alg")
_COMPONENT_LIST = "(" + " ".join(f'"{c}"' for c in COMPONENTS) + ")"
_DEFAULT_PORTS = {"http": 80, "https": 443}

_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What may appear unencoded in a request target (RFC 3986 pchar, "/" and, in the query, "?"): a client that
# sent anything else would have it re-encoded by its HTTP library, and the signature would cover other bytes.
_PATH = re.compile(r"/[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*")
_QUERY = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*")
_AUTHORITY = re.compile(r"(?:\[[0-9a-f:.]+\]|[a-z0-9\-._~%!$&'()*+,;=]+)(?::[0-9]{1,5})?")
_INT = r"(0|[1-9][0-9]{0,14})"
# The one canonical serialization sign_request emits; matching it is a single regex call. Anything else goes
# through the full Structured-Fields parser, which either accepts an equivalent form or names the problem.
_FAST_INPUT = re.compile(
    rf'ml=({re.escape(_COMPONENT_LIST)};created={_INT};expires={_INT};nonce="([A-Za-z0-9_-]{{16,64}})"'
    rf';keyid="(0x[0-9A-Fa-f]{{40}})";alg="([\x20\x21\x23-\x5b\x5d-\x7e]*)")'
)
_FAST_SIGNATURE = re.compile(r"ml=:([A-Za-z0-9+/]{86}==|[A-Za-z0-9+/]{87}=):")
_FAST_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/]{43}=):")


class RequestSigner(MessageSigner, Protocol):
    """A signer with an address, e.g. ``eth_account``'s ``LocalAccount``."""

    @property
    def address(self) -> str: ...


class NonceStore(Protocol):
    """Replay cache for request nonces, consulted last by :func:`verify_request`."""

    def claim(self, signer: str, nonce: str, expires: int) -> bool:
        """Record ``(signer, nonce)`` until ``expires`` (unix s); ``False`` if it was already recorded.

        Must be atomic: two concurrent claims of the same pair may not both return ``True``.
        """
        ...


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request whose signature verified: who signed it and the signature's parameters."""

    signer: Address
    nonce: str
    created: int
    expires: int


def _fail(code: str, message: str, **details: object) -> SignatureFailure:
    return SignatureFailure(message, code=code, details=dict(details))


# --------------------------------------------------------------------------------------------- components


def split_url(url: str) -> tuple[str, str, str]:
    """``(authority, path, query)`` of an http(s) URL as they go into the signature base.

    authority is lowercase ``host[:port]`` without the scheme's default port; path is the raw path (``/`` if
    empty); query is the raw query string without ``?``. Raises :class:`InputError` for URLs whose request
    target an HTTP client would rewrite (unencoded spaces or non-ASCII, dot segments) or that carry userinfo
    or a fragment, because the signature would then not cover what is sent.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"invalid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise InputError("URL scheme must be http or https")
    if not parts.hostname or "@" in parts.netloc:
        raise InputError("URL must have a host and no userinfo")
    if parts.fragment or url.endswith("#"):
        raise InputError("URL must not have a fragment")
    host = parts.hostname  # lowercased by urlsplit
    if ":" in host:
        host = f"[{host}]"
    authority = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    if not _AUTHORITY.fullmatch(authority):
        raise InputError("URL host has characters that must be encoded")
    path = parts.path or "/"
    if not _PATH.fullmatch(path):
        raise InputError("URL path must be percent-encoded ASCII starting with '/'")
    segments = path.split("/")
    if "." in segments or ".." in segments:
        raise InputError("URL path must not contain '.' or '..' segments")
    if not _QUERY.fullmatch(parts.query):
        raise InputError("URL query must be percent-encoded ASCII")
    return authority, path, parts.query


def authority_of(url: str) -> str:
    """The ``@authority`` value of a URL; use it on a node's own public base URL to get ``authority``."""
    return split_url(url)[0]


def content_digest(body: bytes) -> str:
    """RFC 9530 ``Content-Digest`` value of ``body``: ``sha-256=:<base64>:``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def signature_params(*, created: int, expires: int, nonce: str, keyid: str, alg: str = ALG) -> str:
    """Serialized inner list of the profile: the ``@signature-params`` value and the ``ml=`` member value."""
    return f'{_COMPONENT_LIST};created={created};expires={expires};nonce="{nonce}";keyid="{keyid}";alg="{alg}"'


def signature_base(*, method: str, authority: str, path: str, query: str, digest: str, params: str) -> str:
    """RFC 9421 §2.5 signature base of the profile's components.

    ``query`` is the raw query string without ``?``; ``digest`` the ``Content-Digest`` value; ``params`` the
    serialized ``@signature-params`` inner list (see :func:`signature_params`).
    """
    return (
        f'"@method": {method}\n"@authority": {authority}\n"@path": {path}\n"@query": ?{query}\n'
        f'"content-digest": {digest}\n"@signature-params": {params}'
    )


def _method(method: str) -> str:
    # Uppercase on both sides: httpx uppercases methods when sending, so the signer must sign that form.
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        raise InputError("HTTP method must be a token")
    return method.upper()


# ---------------------------------------------------------------------------------------------- signing


def sign_request(
    account: RequestSigner,
    method: str,
    url: str,
    body: bytes = b"",
    *,
    now: int | None = None,
    ttl: int = 60,
    nonce: str | None = None,
) -> dict[str, str]:
    """Sign a request; returns the ``Content-Digest``, ``Signature-Input`` and ``Signature`` headers to add.

    ``url`` must be the exact URL sent (see :func:`split_url`), ``body`` the exact body bytes. ``ttl`` sets
    ``expires = created + ttl``, 1..300 s. ``now`` (unix seconds) and ``nonce`` (default: 32 random
    base64url characters) are for tests and fixed vectors; never reuse a nonce.
    """
    if type(ttl) is not int or not 1 <= ttl <= MAX_LIFETIME:
        raise InputError(f"ttl must be 1..{MAX_LIFETIME} seconds")
    if nonce is None:
        nonce = secrets.token_urlsafe(24)
    elif not _NONCE.fullmatch(nonce):
        raise InputError("nonce must be 16..64 characters of A-Za-z0-9_-")
    method = _method(method)
    authority, path, query = split_url(url)
    keyid = account.address
    if not isinstance(keyid, str) or address_from_checksummed(keyid) is None:
        raise InputError("account.address must be an EIP-55 checksummed address")
    created = int(time.time()) if now is None else now
    digest = content_digest(bytes(body))
    params = signature_params(created=created, expires=created + ttl, nonce=nonce, keyid=keyid)
    base = signature_base(method=method, authority=authority, path=path, query=query, digest=digest, params=params)
    signature = sign_personal(account, base.encode())
    return {
        "Content-Digest": digest,
        "Signature-Input": f"{LABEL}={params}",
        "Signature": f"{LABEL}=:{base64.b64encode(signature).decode()}:",
    }


# ------------------------------------------------------------------------------- Structured Fields subset


class _SfError(Exception):
    pass


_KEY_START = frozenset("abcdefghijklmnopqrstuvwxyz*")
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.*")
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~:/0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_B64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


@dataclass(frozen=True, slots=True)
class _Bytes:
    value: bytes


@dataclass(frozen=True, slots=True)
class _Token:
    value: str


_Bare = int | str | bool | _Bytes | _Token
_Params = list[tuple[str, _Bare]]


class _SfParser:
    """RFC 8941 Dictionary parser, minus decimals, plus a refusal of duplicate keys at every level.

    RFC 8941 lets a later duplicate silently win; for a security header that is an ambiguity to refuse.
    """

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise _SfError(f"expected {ch!r} at {self.i}")
        self.i += 1

    def key(self) -> str:
        c = self.peek()
        if not c or c not in _KEY_START:
            raise _SfError(f"expected a key at {self.i}")
        start = self.i
        while self.peek() and self.peek() in _KEY_CHARS:
            self.i += 1
        return self.s[start : self.i]

    def bare(self) -> _Bare:
        c = self.peek()
        if c == '"':
            self.i += 1
            out = []
            while True:
                c = self.peek()
                self.i += 1
                if c == "":
                    raise _SfError("unterminated string")
                if c == "\\":
                    esc = self.peek()
                    if esc not in ('"', "\\") or not esc:
                        raise _SfError("bad escape in string")
                    out.append(esc)
                    self.i += 1
                elif c == '"':
                    return "".join(out)
                elif not " " <= c <= "~":
                    raise _SfError("control or non-ASCII character in string")
                else:
                    out.append(c)
        if c == "-" or (c.isdigit() and c.isascii()):
            start = self.i
            self.i += 1
            while self.peek().isdigit() and self.peek().isascii():
                self.i += 1
            if self.peek() == ".":
                raise _SfError("decimals are not used in this profile")
            text = self.s[start : self.i]
            digits = text.removeprefix("-")
            # Leading zeros parse in RFC 8941 but re-serialize differently, so the signed text would differ.
            if not digits or len(digits) > 15 or (len(digits) > 1 and digits[0] == "0"):
                raise _SfError("bad integer")
            return int(text)
        if c == ":":
            self.i += 1
            end = self.s.find(":", self.i)
            if end < 0:
                raise _SfError("unterminated byte sequence")
            raw = self.s[self.i : end]
            self.i = end + 1
            if not set(raw) <= _B64_CHARS:
                raise _SfError("bad base64")
            try:
                return _Bytes(base64.b64decode(raw, validate=True))
            except ValueError:
                raise _SfError("bad base64") from None
        if c == "?":
            self.i += 1
            flag = self.peek()
            if flag not in ("0", "1") or not flag:
                raise _SfError("bad boolean")
            self.i += 1
            return flag == "1"
        if c and ((c.isalpha() and c.isascii()) or c == "*"):
            start = self.i
            while self.peek() and self.peek() in _TOKEN_CHARS:
                self.i += 1
            return _Token(self.s[start : self.i])
        raise _SfError(f"expected an item at {self.i}")

    def params(self) -> _Params:
        out: _Params = []
        seen: set[str] = set()
        while self.peek() == ";":
            self.i += 1
            while self.peek() == " ":
                self.i += 1
            name = self.key()
            if name in seen:
                raise _SfError(f"duplicate parameter {name!r}")
            seen.add(name)
            if self.peek() == "=":
                self.i += 1
                out.append((name, self.bare()))
            else:
                out.append((name, True))
        return out

    def member_value(self) -> tuple[_Bare | list[tuple[_Bare, _Params]], _Params]:
        if self.peek() != "(":
            return self.bare(), self.params()
        self.i += 1
        items: list[tuple[_Bare, _Params]] = []
        while True:
            while self.peek() == " ":
                self.i += 1
            if self.peek() == ")":
                self.i += 1
                return items, self.params()
            items.append((self.bare(), self.params()))
            if self.peek() not in (" ", ")"):
                raise _SfError(f"expected ' ' or ')' at {self.i}")

    def dictionary(self) -> dict[str, tuple[_Bare | list[tuple[_Bare, _Params]], _Params]]:
        out: dict[str, tuple[_Bare | list[tuple[_Bare, _Params]], _Params]] = {}
        while True:
            name = self.key()
            if name in out:
                raise _SfError(f"duplicate member {name!r}")
            if self.peek() == "=":
                self.i += 1
                out[name] = self.member_value()
            else:
                out[name] = (True, self.params())
            while self.peek() in (" ", "\t") and self.peek():
                self.i += 1
            if not self.peek():
                return out
            self.expect(",")
            while self.peek() in (" ", "\t") and self.peek():
                self.i += 1
            if not self.peek():
                raise _SfError("trailing comma")


def _dictionary(value: str, header: str) -> dict[str, tuple[_Bare | list[tuple[_Bare, _Params]], _Params]]:
    try:
        return _SfParser(value).dictionary()
    except _SfError as exc:
        raise _fail("sig_malformed", f"{header} is not a valid structured field: {exc}", header=header) from None


def _only_ml_member(members: Mapping[str, object], header: str) -> None:
    if LABEL not in members or len(members) != 1:
        raise _fail(
            "sig_unsupported",
            f"{header} must carry exactly one signature, labelled {LABEL!r}",
            header=header,
            labels=sorted(members)[:8],
        )


@dataclass(frozen=True, slots=True)
class _Input:
    created: int
    expires: int
    nonce: str
    keyid: str
    alg: str
    params: str  # canonical serialization: the @signature-params value


def _parse_input_slow(value: str) -> _Input:
    members = _dictionary(value, "Signature-Input")
    _only_ml_member(members, "Signature-Input")
    inner, params = members[LABEL]
    if not isinstance(inner, list):
        raise _fail("sig_malformed", "Signature-Input member must be an inner list of components")
    names = []
    for item, item_params in inner:
        if not isinstance(item, str):
            raise _fail("sig_malformed", "component identifiers must be strings")
        if item_params:
            raise _fail("sig_components", "component parameters are not part of this profile", component=item)
        names.append(item)
    if tuple(names) != COMPONENTS:
        raise _fail(
            "sig_components",
            "covered components must be exactly " + _COMPONENT_LIST,
            covered=names[:16],
        )
    got = dict(params)
    unknown = sorted(set(got) - set(_PARAM_NAMES))
    if unknown:
        raise _fail("sig_malformed", "unknown signature parameters", params=unknown[:8])
    missing = [p for p in _PARAM_NAMES if p not in got]
    if missing:
        raise _fail("sig_malformed", "missing signature parameters", params=missing)
    created, expires, nonce, keyid, alg = (got[p] for p in _PARAM_NAMES)
    if type(created) is not int or type(expires) is not int or created < 0 or expires < 0:
        raise _fail("sig_malformed", "created and expires must be non-negative integers")
    if not (isinstance(nonce, str) and isinstance(keyid, str) and isinstance(alg, str)):
        raise _fail("sig_malformed", "nonce, keyid and alg must be strings")
    if not _NONCE.fullmatch(nonce):
        raise _fail("sig_malformed", "nonce must be 16..64 characters of A-Za-z0-9_-")
    # Re-serialize (RFC 8941 §4.1) in the order received: that, not the raw text, is what was signed.
    rendered = []
    for name, v in params:
        rendered.append(f";{name}={v}" if isinstance(v, int) else f';{name}="{_sf_string(v)}"')  # type: ignore[arg-type]
    return _Input(created, expires, nonce, keyid, alg, _COMPONENT_LIST + "".join(rendered))


def _sf_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _parse_input(value: str) -> _Input:
    m = _FAST_INPUT.fullmatch(value)
    if m is None:
        return _parse_input_slow(value)
    params, created, expires, nonce, keyid, alg = m.groups()
    return _Input(int(created), int(expires), nonce, keyid, alg, params)


def _parse_signature(value: str) -> bytes:
    m = _FAST_SIGNATURE.fullmatch(value)
    if m is not None:
        raw = m.group(1)
        signature = base64.b64decode(raw)
    else:
        members = _dictionary(value, "Signature")
        _only_ml_member(members, "Signature")
        item, params = members[LABEL]
        if not isinstance(item, _Bytes) or params:
            raise _fail("sig_malformed", "Signature member must be a byte sequence without parameters")
        signature = item.value
        raw = value[len(LABEL) + 2 : -1]
    # One encoding per signature: padding present, unused bits zero.
    if len(signature) != 65 or base64.b64encode(signature).decode() != raw:
        raise _fail("sig_malformed", "Signature must be the canonical base64 of 65 bytes")
    return signature


def _check_digest(value: str, body: bytes) -> None:
    m = _FAST_DIGEST.fullmatch(value)
    if m is None:
        members = _dictionary(value, "Content-Digest")
        if set(members) != {"sha-256"}:
            raise _fail("sig_unsupported", "Content-Digest must carry sha-256 only", algorithms=sorted(members)[:8])
        raise _fail("sig_malformed", "Content-Digest sha-256 must be the canonical base64 of 32 bytes")
    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    if m.group(1) != expected:
        raise _fail("sig_digest_mismatch", "Content-Digest does not match the body")


# -------------------------------------------------------------------------------------------- verifying


def _headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    # One pass over all fields: finds ours case-insensitively and catches a header sent twice (a Starlette
    # ``Headers`` yields every field line from ``items()``), which a plain ``get`` would hide.
    found: list[str | None] = [None, None, None]
    for name, value in headers.items():
        idx = _HEADER_NAMES.get(name.lower())
        if idx is None:
            continue
        if found[idx] is not None:
            raise _fail("sig_malformed", f"{_HEADER_TITLES[idx]} appears more than once", header=_HEADER_TITLES[idx])
        limit = MAX_HEADER_CHARS[name.lower()]
        if len(value) > limit:
            raise _fail("sig_malformed", f"{_HEADER_TITLES[idx]} is too long", header=_HEADER_TITLES[idx], limit=limit)
        found[idx] = value.strip(" \t")
    missing = [_HEADER_TITLES[i] for i, v in enumerate(found) if v is None]
    if missing:
        raise _fail("sig_missing", "request is not signed: missing " + ", ".join(missing), headers=missing)
    return found[0], found[1], found[2]  # type: ignore[return-value]


def _target(value: str | bytes, pattern: re.Pattern[str], what: str) -> str:
    if isinstance(value, bytes | bytearray):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise _fail("sig_malformed", f"request {what} is not ASCII") from None
    if not pattern.fullmatch(value):
        raise _fail("sig_malformed", f"request {what} has characters outside RFC 3986")
    return value


def verify_request(
    method: str,
    path: str | bytes,
    query: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    authority: str,
    now: int | None = None,
    max_skew: int = 60,
    nonces: NonceStore | None = None,
) -> SignedRequest:
    """Verify a signed request; return its signer and parameters, or raise :class:`SignatureFailure`.

    Arguments map to an ASGI request: ``method``; ``path`` = ``scope["raw_path"]`` (the path as sent, not
    percent-decoded); ``query`` = ``scope["query_string"]`` (without ``?``); ``headers`` any mapping whose
    ``items()`` yields every header line (Starlette ``Headers``, a dict); ``body`` the raw body bytes.
    ``authority`` is this node's own public ``host[:port]`` (lowercase, no default port; see
    :func:`authority_of`), never the request's ``Host`` header (see the module docstring).

    Checks and codes, in order: ``sig_missing`` (a header absent); ``sig_malformed`` (header repeated, over
    size, not the Structured-Field subset, duplicate/unknown/missing parameter, bad nonce or keyid,
    non-canonical base64, lifetime negative or over 300 s); ``sig_unsupported`` (label other than ``ml``,
    several signatures, ``alg`` other than ``eth-personal-sign``, a digest algorithm other than sha-256);
    ``sig_components`` (covered components not exactly the profile's, in order); ``sig_expired`` (``expires <
    now``); ``sig_stale`` (``created`` more than ``max_skew`` s from ``now``, either way);
    ``sig_digest_mismatch``; ``sig_bad_signature`` (does not recover to ``keyid``); ``sig_replayed``
    (``nonces.claim`` returned ``False``; called only after every other check passed, so a forged request
    cannot burn a legitimate nonce). ``nonces=None`` disables replay protection: only for tests.
    ``now`` (unix s) defaults to the wall clock; a store evicts by its own clock, so inject both or neither.
    """
    sig_input, sig_value, digest_value = _headers(headers)
    params = _parse_input(sig_input)
    if params.alg != ALG:
        raise _fail("sig_unsupported", f"alg must be {ALG!r}", alg=params.alg[:64])
    keyid_bytes = address_from_checksummed(params.keyid)
    if keyid_bytes is None:
        raise _fail("sig_malformed", "keyid must be an EIP-55 checksummed address")
    signature = _parse_signature(sig_value)
    if params.expires < params.created or params.expires - params.created > MAX_LIFETIME:
        raise _fail("sig_malformed", f"signature lifetime must be 0..{MAX_LIFETIME} s")
    if now is None:
        now = int(time.time())
    if params.expires < now:
        raise _fail("sig_expired", "signature has expired", expires=params.expires, now=now)
    if abs(params.created - now) > max_skew:
        raise _fail("sig_stale", "signature created too far from now", created=params.created, now=now)
    method = method.upper() if isinstance(method, str) and _TOKEN.fullmatch(method) else ""
    if not method:
        raise _fail("sig_malformed", "request method is not a token")
    path_text = _target(path or "/", _PATH, "path")
    query_text = _target(query, _QUERY, "query")
    _check_digest(digest_value, body)
    base = signature_base(
        method=method,
        authority=authority.lower(),
        path=path_text,
        query=query_text,
        digest=digest_value,
        params=params.params,
    )
    if recover_personal(personal_digest(base.encode()), signature) != keyid_bytes:
        raise _fail("sig_bad_signature", "signature does not verify for keyid", keyid=params.keyid)
    if nonces is not None and not nonces.claim(params.keyid, params.nonce, params.expires):
        raise _fail("sig_replayed", "nonce already used", keyid=params.keyid)
    return SignedRequest(Address(params.keyid), params.nonce, params.created, params.expires)


# ----------------------------------------------------------------------------------------- nonce store


class MemoryNonceStore:
    """Thread-safe in-process :class:`NonceStore` with expiry-ordered eviction and a hard size bound.

    An entry is kept until ``expires + grace`` by ``clock`` (``grace`` absorbs a verifier clock that lags the
    store's). When ``max_entries`` live entries exist, :meth:`claim` raises :class:`NonceStoreFull` instead
    of forgetting live nonces (which would reopen replay): at the profile's limits a node accepting 2,000
    requests/s holds at most ~720,000 entries (lifetime <= 300 s plus skew), below the default bound.
    Only for one process; several workers need a shared (database) store.
    """

    def __init__(self, max_entries: int = 1_000_000, *, grace: int = 5, clock: Callable[[], float] = time.time) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._grace = grace
        self._clock = clock
        self._expiry: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def _evict(self, now: float) -> None:
        heap, expiry = self._heap, self._expiry
        cutoff = now - self._grace
        while heap and heap[0][0] < cutoff:
            _, key = heapq.heappop(heap)
            expiry.pop(key, None)

    def claim(self, signer: str, nonce: str, expires: int) -> bool:
        """Record ``(signer, nonce)`` until ``expires``; ``False`` if it is already recorded."""
        # Addresses are fixed-length, so concatenation is an unambiguous key and cheaper than a tuple.
        key = signer + nonce
        with self._lock:
            self._evict(self._clock())
            if key in self._expiry:
                return False
            if len(self._expiry) >= self._max:
                raise NonceStoreFull("replay cache is full; retry shortly", details={"max_entries": self._max})
            self._expiry[key] = expires
            heapq.heappush(self._heap, (expires, key))
            return True
