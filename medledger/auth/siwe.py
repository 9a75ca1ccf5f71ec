"""Sign-In with Ethereum (EIP-4361): message model, strict parser, signer and verifier.

Text layout (EIP-4361 ABNF; ``LF`` line ends, no trailing newline; optional lines keep this order)::

    [scheme "://"] domain " wants you to sign in with your Ethereum account:"
    address                      (EIP-55 checksummed)
    <empty>
    [statement                   (only if present)
    <empty>]
    <empty>
    "URI: " uri
    "Version: 1"
    "Chain ID: " chain-id
    "Nonce: " nonce              (>= 8 ASCII letters/digits)
    "Issued At: " issued-at      (RFC 3339)
    ["Expiration Time: " expiration-time]
    ["Not Before: " not-before]
    ["Request ID: " request-id]
    ["Resources:"
    *("- " uri)]

So a message without a statement has two empty lines between the address and ``URI:``, one with a statement
has one on each side of it (the ABNF's ``LF [ statement LF ] LF``).

Strictness choices, all deliberate:

* anything that does not match the grammar exactly is ``siwe_malformed``: unknown, repeated or reordered
  lines, ``CR``, a trailing newline, a lowercase/unchecksummed address, a leading-zero chain id, a statement
  outside the ABNF's characters (``reserved / unreserved / " "``; no ``%`` or ``"``), an empty statement
  (absent is written as ``None``), timestamps without an offset or with lowercase ``t``/``z``, more than 4 KiB;
* the signature is verified over the text *as received*; :meth:`SiweMessage.to_text` re-emits canonical text
  (UTC as ``Z``; fraction as 0, 3 or 6 digits), which equals the input for every common wallet output;
* the URI check is exact string equality, not a same-origin prefix rule: the node knows the one login URI it
  issued the nonce for, and a prefix rule invites ``https://node.example.evil.com`` style mistakes;
* only EOA signatures (ecrecover) are supported; EIP-1271 contract wallets would need a chain call.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from medledger.addresses import Address
from medledger.auth._eth import (
    MessageSigner,
    address_from_checksummed,
    personal_digest,
    recover_personal,
    sign_personal,
)
from medledger.auth.errors import SiweFailure

__all__ = [
    "MAX_MESSAGE_BYTES",
    "SiweMessage",
    "format_timestamp",
    "new_nonce",
    "parse_timestamp",
    "sign_siwe",
    "verify_siwe",
]

MAX_MESSAGE_BYTES = 4096
_PREAMBLE = " wants you to sign in with your Ethereum account:"
_NONCE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_NONCE_LENGTH = 22  # 22 draws from 62 symbols: ~131 bits

# RFC 3986 character classes, spelled out ASCII-only (``\w``/``\d`` would admit Unicode).
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_GEN_DELIMS = r":/?#\[\]@"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# authority without userinfo: "user@host" on the first line is a phishing aid and no real login page has one.
_DOMAIN = re.compile(rf"(?:\[[0-9A-Fa-f:.]+\]|[{_UNRESERVED}{_SUB_DELIMS}%]+)(?::[0-9]{{1,5}})?")
_URI = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*:[{_UNRESERVED}{_SUB_DELIMS}{_GEN_DELIMS}%]*")
_STATEMENT = re.compile(rf"[{_UNRESERVED}{_SUB_DELIMS}{_GEN_DELIMS} ]+")
_NONCE = re.compile(r"[A-Za-z0-9]{8,}")
_REQUEST_ID = re.compile(rf"[{_UNRESERVED}{_SUB_DELIMS}%:@]*")
_CHAIN_ID = re.compile(r"[1-9][0-9]{0,19}")
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})"
)


def _malformed(message: str, **details: object) -> SiweFailure:
    return SiweFailure(message, code="siwe_malformed", details=dict(details))


def _exact_address(value: object, **where: object) -> Address:
    # EIP-4361 requires the EIP-55 spelling itself: a lowercase address is malformed, not converted, since
    # the signed text must be what the message says.
    if not isinstance(value, str) or address_from_checksummed(value) is None:
        raise _malformed("address is not an EIP-55 checksummed address", field="address", **where)
    return Address(value)


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 ``date-time`` as an aware datetime; fractions beyond microseconds are truncated.

    Raises ``siwe_malformed`` for anything else (no offset, lowercase separators, impossible dates, leap
    seconds, which ``datetime`` cannot hold).
    """
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        raise _malformed("timestamp is not RFC 3339 date-time", value=text[:64])
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micro = int((m.group(7) or "0").ljust(6, "0")[:6])
    zone = m.group(8)
    try:
        if zone == "Z":
            tz: timezone = UTC
        else:
            oh, om = int(zone[1:3]), int(zone[4:6])
            if oh > 23 or om > 59:
                raise ValueError("offset out of range")
            delta = timedelta(hours=oh, minutes=om)
            tz = timezone(-delta if zone[0] == "-" else delta)
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        raise _malformed("timestamp is not a valid date-time", value=text[:64]) from None


def format_timestamp(value: datetime) -> str:
    """RFC 3339 text of an aware datetime: ``Z`` for UTC, fraction as 0, 3 (JavaScript's) or 6 digits."""
    offset = value.utcoffset()
    if offset is None:
        raise _malformed("timestamps must be timezone-aware")
    text = f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    if value.microsecond:
        text += f".{value.microsecond // 1000:03d}" if value.microsecond % 1000 == 0 else f".{value.microsecond:06d}"
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


@dataclass(frozen=True, kw_only=True)
class SiweMessage:
    """One EIP-4361 message. Construction validates every field (``siwe_malformed`` on failure).

    ``statement`` and the optional fields are ``None`` when absent; ``resources=()`` means a ``Resources:``
    line with no entries, which the grammar allows. ``scheme`` is EIP-4361's optional ``scheme://`` prefix
    of the first line.
    """

    domain: str
    address: Address
    statement: str | None = None
    uri: str
    version: str = "1"
    chain_id: int
    nonce: str
    issued_at: datetime
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] | None = None
    scheme: str | None = None

    def __post_init__(self) -> None:
        if self.resources is not None and not isinstance(self.resources, tuple):
            object.__setattr__(self, "resources", tuple(self.resources))
        self._validate()

    def _validate(self) -> None:
        if self.scheme is not None and not _SCHEME.fullmatch(self.scheme):
            raise _malformed("invalid scheme", field="scheme")
        if not isinstance(self.domain, str) or not _DOMAIN.fullmatch(self.domain):
            raise _malformed("domain is not an RFC 3986 host[:port]", field="domain")
        object.__setattr__(self, "address", _exact_address(self.address))
        if self.statement is not None and not _STATEMENT.fullmatch(self.statement):
            raise _malformed("statement is empty or has characters outside the EIP-4361 set", field="statement")
        if not isinstance(self.uri, str) or not _URI.fullmatch(self.uri):
            raise _malformed("uri is not an RFC 3986 URI", field="uri")
        if self.version != "1":
            raise _malformed("version must be 1", field="version")
        if type(self.chain_id) is not int or not 1 <= self.chain_id < 10**20:
            raise _malformed("chain id must be a positive integer", field="chain_id")
        if not isinstance(self.nonce, str) or not _NONCE.fullmatch(self.nonce):
            raise _malformed("nonce must be at least 8 ASCII letters or digits", field="nonce")
        for name in ("issued_at", "expiration_time", "not_before"):
            value = getattr(self, name)
            if value is None and name != "issued_at":
                continue
            if not isinstance(value, datetime) or value.utcoffset() is None:
                raise _malformed("timestamps must be timezone-aware datetimes", field=name)
            if value.utcoffset().total_seconds() % 60:  # type: ignore[union-attr]
                raise _malformed("timestamp offsets must be whole minutes", field=name)
        if self.request_id is not None and not _REQUEST_ID.fullmatch(self.request_id):
            raise _malformed("request id has characters outside RFC 3986 pchar", field="request_id")
        if self.resources is not None:
            for i, resource in enumerate(self.resources):
                if not isinstance(resource, str) or not _URI.fullmatch(resource):
                    raise _malformed("resource is not an RFC 3986 URI", field="resources", index=i)
        if len(self.to_text().encode()) > MAX_MESSAGE_BYTES:
            raise _malformed(f"message exceeds {MAX_MESSAGE_BYTES} bytes")

    def to_text(self) -> str:
        """The EIP-4361 text to sign (no trailing newline)."""
        prefix = f"{self.scheme}://" if self.scheme is not None else ""
        lines = [f"{prefix}{self.domain}{_PREAMBLE}", self.address, ""]
        if self.statement is not None:
            lines.append(self.statement)
        lines += [
            "",
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {format_timestamp(self.issued_at)}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {format_timestamp(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {format_timestamp(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources is not None:
            lines.append("Resources:")
            lines += [f"- {r}" for r in self.resources]
        return "\n".join(lines)

    @classmethod
    def parse(cls, text: str) -> SiweMessage:
        """Parse EIP-4361 text strictly (see the module docstring); raises ``siwe_malformed``."""
        if not isinstance(text, str):
            raise _malformed("message must be text")
        # Character count first: it bounds the cost of encoding before the exact byte check.
        if len(text) > MAX_MESSAGE_BYTES:
            raise _malformed(f"message exceeds {MAX_MESSAGE_BYTES} bytes")
        try:
            size = len(text.encode())
        except UnicodeEncodeError:  # a lone surrogate (JSON "\udc80" decodes to one): no wallet signs that
            raise _malformed("message is not valid Unicode text") from None
        if size > MAX_MESSAGE_BYTES:
            raise _malformed(f"message exceeds {MAX_MESSAGE_BYTES} bytes")
        lines = text.split("\n")
        if len(lines) < 9:
            raise _malformed("message is truncated")
        header = lines[0]
        if not header.endswith(_PREAMBLE):
            raise _malformed("first line must end with the sign-in preamble", line=1)
        origin = header[: -len(_PREAMBLE)]
        before, sep, after = origin.partition("://")
        scheme, domain = (before, after) if sep else (None, origin)
        address = _exact_address(lines[1], line=2)
        if lines[2] != "":
            raise _malformed("expected an empty line after the address", line=3)
        if lines[3] == "":
            statement, i = None, 4
        else:
            statement = lines[3]
            if lines[4] != "":
                raise _malformed("expected an empty line after the statement", line=5)
            i = 5

        def take(tag: str, required: bool) -> str | None:
            nonlocal i
            if i < len(lines) and lines[i].startswith(tag):
                i += 1
                return lines[i - 1][len(tag) :]
            if required:
                raise _malformed(f"expected {tag.strip()!r} line", line=i + 1)
            return None

        uri = take("URI: ", True)
        version = take("Version: ", True)
        chain = take("Chain ID: ", True)
        nonce = take("Nonce: ", True)
        issued = take("Issued At: ", True)
        expiration = take("Expiration Time: ", False)
        not_before = take("Not Before: ", False)
        request_id = take("Request ID: ", False)
        resources: list[str] | None = None
        if i < len(lines) and lines[i] == "Resources:":
            i += 1
            resources = []
            while i < len(lines) and lines[i].startswith("- "):
                resources.append(lines[i][2:])
                i += 1
        if i != len(lines):
            raise _malformed("unexpected line", line=i + 1)
        assert chain is not None and issued is not None  # required lines
        if not _CHAIN_ID.fullmatch(chain):
            raise _malformed("chain id must be a decimal integer without leading zeros", field="chain_id")
        return cls(
            scheme=scheme,
            domain=domain,
            address=address,
            statement=statement,
            uri=uri,  # type: ignore[arg-type]
            version=version,  # type: ignore[arg-type]
            chain_id=int(chain),
            nonce=nonce,  # type: ignore[arg-type]
            issued_at=parse_timestamp(issued),
            expiration_time=parse_timestamp(expiration) if expiration is not None else None,
            not_before=parse_timestamp(not_before) if not_before is not None else None,
            request_id=request_id,
            resources=tuple(resources) if resources is not None else None,
        )


def new_nonce() -> str:
    """A fresh SIWE nonce: 22 random ASCII letters/digits (~131 bits) from :mod:`secrets`."""
    return "".join(secrets.choice(_NONCE_ALPHABET) for _ in range(_NONCE_LENGTH))


def sign_siwe(account: MessageSigner, message: SiweMessage) -> bytes:
    """EIP-191 ``personal_sign`` of ``message.to_text()``: 65 bytes ``r || s || v`` (what wallets return)."""
    return sign_personal(account, message.to_text().encode())


def verify_siwe(
    text: str,
    signature: bytes,
    *,
    domain: str,
    uri: str | None,
    chain_id: int,
    nonce: str | None,
    now: datetime | None = None,
    max_age: timedelta = timedelta(minutes=10),
    skew: timedelta = timedelta(seconds=60),
    scheme: str | None = None,
) -> SiweMessage:
    """Parse and verify a signed SIWE message; return it if every check passes, else raise :class:`SiweFailure`.

    Checks, cheapest first (the signature recovery, ~0.1 ms, runs last so junk costs little):

    * ``siwe_malformed``: text fails :meth:`SiweMessage.parse`;
    * ``siwe_wrong_domain``: the message's domain differs from ``domain`` (host compared case-insensitively,
      port exactly), or its optional scheme differs from ``scheme`` (default ``https``);
    * ``siwe_wrong_uri``: ``uri`` is given and differs from the message's URI (exact string equality);
    * ``siwe_wrong_chain``: chain id differs from ``chain_id``;
    * ``siwe_nonce_mismatch``: ``nonce`` is given and differs. Pass ``None`` only if the caller looks the
      message's nonce up itself (and then it must consume it exactly once);
    * ``siwe_expired``: ``expiration_time <= now``; ``siwe_not_yet_valid``: ``now < not_before``;
    * ``siwe_stale``: ``issued_at`` is older than ``max_age`` or later than ``now + skew`` (the client's
      clock may run a little ahead; expiry and not-before get no such grace);
    * ``siwe_bad_signature``: the signature is not 65 canonical bytes (v = 27/28 or 0/1, low s) or does not
      recover to the message's address.
    """
    if not isinstance(signature, bytes | bytearray | memoryview):
        raise TypeError("signature must be bytes (decode hex before calling)")
    if now is None:
        now = datetime.now(UTC)
    elif now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    message = SiweMessage.parse(text)

    if message.domain.lower() != domain.lower():
        raise SiweFailure(
            "message is for another domain",
            code="siwe_wrong_domain",
            details={"expected": domain, "got": message.domain},
        )
    if message.scheme is not None and message.scheme.lower() != (scheme or "https").lower():
        raise SiweFailure(
            "message is for another scheme",
            code="siwe_wrong_domain",
            details={"expected": scheme or "https", "got": message.scheme},
        )
    if uri is not None and message.uri != uri:
        raise SiweFailure("message is for another URI", code="siwe_wrong_uri", details={"expected": uri})
    if message.chain_id != chain_id:
        raise SiweFailure(
            "message is for another chain",
            code="siwe_wrong_chain",
            details={"expected": chain_id, "got": message.chain_id},
        )
    if nonce is not None and not hmac.compare_digest(message.nonce.encode(), nonce.encode()):
        raise SiweFailure("nonce does not match the one issued", code="siwe_nonce_mismatch")
    if message.expiration_time is not None and message.expiration_time <= now:
        raise SiweFailure("message has expired", code="siwe_expired")
    if message.not_before is not None and now < message.not_before:
        raise SiweFailure("message is not valid yet", code="siwe_not_yet_valid")
    if message.issued_at > now + skew:
        raise SiweFailure("issued-at is in the future", code="siwe_stale")
    if message.issued_at < now - max_age:
        raise SiweFailure("issued-at is too old", code="siwe_stale", details={"max_age_s": max_age.total_seconds()})

    recovered = recover_personal(personal_digest(text.encode()), bytes(signature), allow_v01=True)
    if recovered is None or recovered != address_from_checksummed(message.address):
        raise SiweFailure("signature does not match the message's address", code="siwe_bad_signature")
    return message
