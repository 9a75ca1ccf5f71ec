"""Fuzz targets shared by the hypothesis tests, the atheris runner and ``bench/fuzz.py``.

Each target is a function of one ``bytes`` input that checks the property for it and raises :class:`Finding`
when the property fails; returning (or raising nothing) means the input was handled as documented:

* ingest (``hl7``, ``dicom``, ``fhir``, ``ingest_file``): ``node.ingest.parse`` / ``parse_file`` return a list
  of ``ParsedRecord`` or raise ``IngestError`` whose code is in ``ALL_CODES``, within ``HANG_CPU_SECONDS`` of CPU;
* ``httpsig``, ``siwe``, ``eip712``: the verifier returns or raises an ``AuthFailure`` / ``MedLedgerError``
  whose code is declared, within ``HANG_CPU_SECONDS`` of CPU, and it never accepts anything but what the harness's own
  key signed (the input is decoded as mutations of validly signed requests, so most inputs stay close to
  valid and reach the signature check).

The same bytes always give the same verdict (fixed clocks, keys and nonces), so a saved input reproduces.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

from eth_account import Account
from starlette.datastructures import Headers

import node.error_codes  # noqa: F401  (declares the relay's codes, as the node does at start-up)
from medledger.auth.errors import AuthFailure, NonceStoreFull
from medledger.auth.httpsig import MemoryNonceStore, sign_request, verify_request
from medledger.auth.siwe import SiweMessage, sign_siwe, verify_siwe
from medledger.chain.typed_data import CONSENT_DOMAIN_NAME, domain, grant_typed_data, sign_typed_data
from medledger.chain.types import GrantTerms
from medledger.errors import MedLedgerError, lookup
from medledger.vocabulary import Purpose
from node.ingest import ParsedRecord, parse, parse_file
from node.ingest.errors import ALL_CODES, INGEST_UNPARSEABLE, IngestError
from node.relay import ConsentRelay, RelayRejected, _check_terms

#: Longest input the fuzzers generate; larger limits (payload_too_large, decompression) have their own tests.
MAX_LEN = 64 * 1024

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "node" / "data"


class Finding(AssertionError):
    """The property failed for an input: ``kind`` is ``exception``, ``hang`` or ``forgery``/``wrong_result``.

    ``signature`` identifies the bug (kind, exception type, innermost frame) so repeated hits count once.
    """

    def __init__(self, kind: str, message: str, signature: str, summary: str = "") -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.signature = signature
        self.summary = summary or message


def _unexpected(exc: BaseException) -> Finding:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = f"{Path(last.filename).name}:{last.lineno}" if last else "?"
    # By function, not line: the signature should survive edits elsewhere in the file.
    key = f"{type(exc).__name__}@{Path(last.filename).name}:{last.name}" if last else type(exc).__name__
    summary = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-6))
    return Finding("exception", f"{type(exc).__name__} at {where}: {str(exc)[:200]}", key, summary)


@dataclass
class Stats:
    """What the targets saw besides findings: which documented codes, and which library exceptions
    ``parse``'s last-resort handler turned into ``ingest_unparseable`` (documented, but a sign that a
    format parser's own checks missed something)."""

    codes: dict[str, int]
    fallbacks: dict[str, int]

    def hit(self, code: str) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1


STATS = Stats({}, {})


class _Hang(BaseException):
    """Raised into a target that used ``HANG_CPU_SECONDS`` of CPU: a BaseException, so the parsers' own
    ``except Exception`` handlers cannot swallow it."""


#: CPU time after which an input is interrupted as a hang. Inputs are at most ``MAX_LEN`` bytes, parsed in well
#: under 0.1 s when valid: a parse that uses this much on a few KB is a complexity bug an attacker can multiply,
#: or a loop that never ends. CPU time rather than wall time, so a loaded machine does not make a finding;
#: libFuzzer's -timeout, which kills the process, stays as the backstop for C code that never yields.
HANG_CPU_SECONDS = 4.0


def _on_hang(signum: int, frame: object) -> None:
    raise _Hang


def _timed(run: Callable[[], Any], what: str) -> Any:
    # SIGPROF (process CPU time, user and system), not SIGALRM: libFuzzer uses SIGALRM for its own -timeout.
    armed = threading.current_thread() is threading.main_thread()
    if armed:
        previous = signal.signal(signal.SIGPROF, _on_hang)
        signal.setitimer(signal.ITIMER_PROF, HANG_CPU_SECONDS)
    try:
        return run()
    except _Hang as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        inner = frames[-2] if len(frames) > 1 else None  # [-1] is _on_hang
        where = f"{Path(inner.filename).name}:{inner.name}" if inner else what
        summary = "".join(traceback.format_tb(exc.__traceback__, limit=-6))
        raise Finding("hang", f"{what} used {HANG_CPU_SECONDS} s of CPU, interrupted in {where}", f"hang@{where}",
                      summary) from None  # fmt: skip
    finally:
        if armed:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)


# ------------------------------------------------------------------------------------------------ ingest


def _check_ingest_outcome(run: Callable[[], list[ParsedRecord]], what: str) -> list[ParsedRecord] | None:
    try:
        records = _timed(run, what)
    except IngestError as exc:
        if exc.code not in ALL_CODES:
            raise Finding("exception", f"IngestError with undeclared code {exc.code!r}", f"code@{exc.code}") from None
        STATS.hit(exc.code)
        if exc.code == INGEST_UNPARSEABLE and "exception" in exc.details:
            name = str(exc.details["exception"])
            STATS.fallbacks[name] = STATS.fallbacks.get(name, 0) + 1
        return None
    except Finding:
        raise
    except BaseException as exc:  # everything else, RecursionError and MemoryError included, breaks the contract
        raise _unexpected(exc) from None
    if not isinstance(records, list) or not records or not all(isinstance(r, ParsedRecord) for r in records):
        raise Finding("wrong_result", f"{what} returned {type(records).__name__}, not ParsedRecords", "result@ingest")
    STATS.hit("accepted")
    return records


def target_ingest(data: bytes) -> None:
    """``parse`` with the node's default FHIR mode (fast); for FHIR also ``full``, which must never accept
    what ``fast`` rejects (issue 13)."""
    fast = _check_ingest_outcome(lambda: parse(data, validate="fast"), "parse")
    if data.lstrip()[:1] in (b"{", b"["):
        full = _check_ingest_outcome(lambda: parse(data, validate="full"), "parse-full")
        if full is not None and fast is None:
            raise Finding("wrong_result", "validate='full' accepted what 'fast' rejected", "full-accepts-more")


_TMP = Path(tempfile.mkdtemp(prefix="medledger-fuzz-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def target_ingest_file(data: bytes) -> None:
    """``parse_file`` on a file holding the input (the file-system size check, then ``parse``)."""
    path = _TMP / f"input-{os.getpid()}.bin"
    path.write_bytes(data)
    _check_ingest_outcome(lambda: parse_file(path, validate="fast"), "parse_file")


def _files(folder: Path, pattern: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob(pattern))]


@cache
def dicom_seeds() -> tuple[bytes, ...]:
    """pydicom's own test files that fit the fuzzers' input size: every transfer syntax and odd case it ships."""
    from pydicom.data import DATA_ROOT, get_testdata_file

    # get_testdata_files() would also try to download pydicom's large optional files; these ship with it.
    out = []
    for local in sorted((Path(DATA_ROOT) / "test_files").glob("*.dcm")):
        if local.stat().st_size <= MAX_LEN:
            path = get_testdata_file(local.name)
            assert isinstance(path, str)
            out.append(Path(path).read_bytes())
    return tuple(out + _corpus("dicom"))


#: The ingest corpus (tests/ingest_corpus: valid inputs and one file per defect): inputs at the checks' edges.
CORPUS = REPO / "tests" / "ingest_corpus"


def _corpus(fmt: str) -> list[bytes]:
    folder = CORPUS / fmt
    if not folder.is_dir():
        return []
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.stat().st_size <= MAX_LEN]


@cache
def hl7_seeds() -> tuple[bytes, ...]:
    return tuple(_files(DATA / "hl7", "*.hl7") + _corpus("hl7"))


@cache
def fhir_seeds() -> tuple[bytes, ...]:
    return tuple(_files(DATA / "fhir", "*.json") + _corpus("fhir"))


# ------------------------------------------------------------------------------------- mutation decoding


class Reader:
    """Consumes fuzz bytes as small integers and chunks; past the end it yields zeros / empty chunks, so every
    input decodes (atheris' FuzzedDataProvider does the same, but the hypothesis tests need no atheris)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0

    def byte(self) -> int:
        if self.i >= len(self.data):
            return 0
        self.i += 1
        return self.data[self.i - 1]

    def int(self, nbytes: int) -> int:
        return int.from_bytes(bytes(self.byte() for _ in range(nbytes)), "big")

    def chunk(self) -> bytes:
        n = self.byte()
        out = self.data[self.i : self.i + n]
        self.i += len(out)
        return out

    def rest(self) -> bytes:
        out = self.data[self.i :]
        self.i = len(self.data)
        return out


def mutate_text(value: str, r: Reader) -> str:
    """One edit chosen by the input: replace, insert, delete, overwrite one character, or duplicate a slice.

    Chunks decode with ``surrogateescape``: a JSON body can carry lone surrogates (``"\\udc80"``), and
    verifiers receive such ``str`` values from the API.
    """
    op = r.byte() % 5
    pos = r.int(2) % (len(value) + 1)
    chunk = r.chunk().decode("utf-8", "surrogateescape")
    if op == 0:
        return chunk
    if op == 1:
        return value[:pos] + chunk + value[pos:]
    if op == 2:
        return value[:pos] + value[pos + 1 + r.byte() :]
    if op == 3:
        return value[:pos] + (chunk[:1] or "\x00") + value[pos + 1 :]
    end = pos + r.byte()
    return value[:end] + value[pos:end] + value[end:]


def mutate_bytes(value: bytes, r: Reader) -> bytes:
    op = r.byte() % 4
    pos = r.int(2) % (len(value) + 1)
    chunk = r.chunk()
    if op == 0:
        return chunk
    if op == 1:
        return value[:pos] + chunk + value[pos:]
    if op == 2:
        return value[:pos] + value[pos + 1 + r.byte() :]
    flipped = bytearray(value)
    if flipped:
        flipped[pos % len(flipped)] ^= r.byte() or 1
    return bytes(flipped)


def encode_edits(*edits: tuple[int, int, int, bytes]) -> bytes:
    """The input bytes that select fields (``field`` bit index) and apply one edit each: for seeds."""
    mask = 0
    body = b""
    for bit, op, pos, chunk in sorted(edits):
        mask |= 1 << bit
        body += bytes((op,)) + pos.to_bytes(2, "big") + bytes((len(chunk),)) + chunk
    return mask.to_bytes(2, "big") + body


# -------------------------------------------------------------------------------------- signed requests

KEY = Account.from_key(bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"))
NOW = 1_767_225_600
AUTHORITY = "node-b.medledger.example:8443"

_REQUESTS = (
    ("POST", "/v1/records/query", "patient=0xabc&limit=10", b'{"hello": "world"}'),
    ("GET", "/v1/records/0x" + "ab" * 32, "", b""),
    ("DELETE", "/", "a=%20b&c", b"\x00\xff" * 40),
)


@dataclass(frozen=True)
class _Signed:
    method: str
    path: str
    query: str
    body: bytes
    headers: tuple[tuple[str, str], ...]


@cache
def _signed_requests() -> tuple[_Signed, ...]:
    out = []
    for i, (method, path, query, body) in enumerate(_REQUESTS):
        url = f"https://{AUTHORITY}{path}" + (f"?{query}" if query else "")
        headers = sign_request(KEY, method, url, body, now=NOW, nonce=f"fuzz-nonce-{i:06d}-abcdef", ttl=60 + i)
        out.append(_Signed(method, path, query, body, tuple(headers.items())))
    return tuple(out)


def _declared(exc: MedLedgerError) -> bool:
    return lookup(exc.code) is not None


def target_httpsig(data: bytes) -> None:
    """``verify_request`` on a mutated signed request: field mask (2 bytes), then one edit per chosen field.

    Fields: 0 method, 1 path, 2 query, 3 body, 4..6 the three headers, 7 path as bytes (ASGI raw_path),
    8 an extra copy of a header, 9 header name case, 10 authority, 11 clock.
    """
    r = Reader(data)
    signed = _signed_requests()[r.byte() % len(_REQUESTS)]
    mask = r.int(2)
    method, path, query, body = signed.method, signed.path, signed.query, signed.body
    headers = [list(h) for h in signed.headers]
    authority, now = AUTHORITY, NOW + 5
    if mask & 1:
        method = mutate_text(method, r)
    if mask & 2:
        path = mutate_text(path, r)
    if mask & 4:
        query = mutate_text(query, r)
    if mask & 8:
        body = mutate_bytes(body, r)
    for bit in (4, 5, 6):
        if mask & (1 << bit):
            h = headers[bit - 4]
            # Starlette decodes header values as latin-1: a header never holds characters above U+00FF.
            h[1] = mutate_text(h[1], r).encode("utf-8", "surrogateescape").decode("latin-1")
    if mask & 256:
        headers.append(list(headers[r.byte() % 3]))
    if mask & 512:
        h = headers[r.byte() % len(headers)]
        h[0] = h[0].upper() if r.byte() % 2 else h[0].lower()
    if mask & 1024:  # the node's own configured authority: any text, but valid Unicode
        authority = _valid_unicode(mutate_text(authority, r))
    if mask & 2048:
        now = NOW + r.int(2) - 32768
    raw_path: str | bytes = path.encode("utf-8", "surrogateescape") if mask & 128 else path
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    store = MemoryNonceStore(clock=lambda: NOW)
    try:
        result = _timed(
            lambda: verify_request(
                method, raw_path, query, Headers(raw=raw), body, authority=authority, now=now, nonces=store
            ),
            "verify_request",
        )
    except (AuthFailure, NonceStoreFull) as exc:
        if not _declared(exc):
            raise Finding("exception", f"undeclared code {exc.code!r}", f"code@{exc.code}") from None
        STATS.hit(exc.code)
        return
    except Finding:
        raise
    except BaseException as exc:
        raise _unexpected(exc) from None
    # Accepted: it must be exactly what the key signed (method case aside: verifiers uppercase the token).
    same = (
        str(result.signer) == KEY.address
        and method.upper() == signed.method
        # An empty path is "/" (RFC 9110 §4.2.3); ASGI never passes one, the verifier maps it.
        and ((raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path) or "/") == signed.path
        and query == signed.query
        and hashlib.sha256(body).digest() == hashlib.sha256(signed.body).digest()
        and authority.lower() == AUTHORITY
        and result.nonce in dict(signed.headers)["Signature-Input"]
    )
    if not same:
        raise Finding("forgery", "verify_request accepted a request the key did not sign", "forgery@httpsig")
    STATS.hit("accepted")


# ------------------------------------------------------------------------------------------------- SIWE

SIWE_NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
SIWE_DOMAIN = "node-a.medledger.example"
SIWE_URI = "https://node-a.medledger.example/v1/auth/siwe"
SIWE_CHAIN = 1337
SIWE_NONCE = "Abc123Xyz789Qrs456"


_IST = timezone(timedelta(hours=5, minutes=30))


@cache
def _siwe_messages() -> tuple[tuple[str, bytes], ...]:
    base: dict[str, Any] = {
        "domain": SIWE_DOMAIN,
        "address": KEY.address,
        "uri": SIWE_URI,
        "chain_id": SIWE_CHAIN,
        "nonce": SIWE_NONCE,
        "issued_at": SIWE_NOW - timedelta(seconds=30),
    }
    variants = [
        {"statement": "Sign in to MedLedger node A."},
        {},
        {
            "scheme": "https",
            "statement": "I accept the terms: https://example.com/tos",
            "expiration_time": SIWE_NOW + timedelta(minutes=5),
            "not_before": SIWE_NOW - timedelta(minutes=1),
            "request_id": "req-42",
            "resources": ("ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/", "https://a.example/x"),
        },
        {"issued_at": (SIWE_NOW - timedelta(seconds=45, microseconds=877000)).astimezone(_IST)},
        {"resources": ()},
    ]
    out = []
    for extra in variants:
        message = SiweMessage(**{**base, **extra})
        out.append((message.to_text(), sign_siwe(KEY, message)))
    return tuple(out)


def target_siwe(data: bytes) -> None:
    """``verify_siwe`` on a mutated signed message; also ``SiweMessage.parse`` round trip (parse ∘ to_text).

    Input: variant (1 byte), field mask (2 bytes), then edits: 0 text, 1 signature, 2 v byte, 3 clock,
    4 expected domain, 5 expected nonce, 6 a second text edit.
    """
    r = Reader(data)
    text, signature = _siwe_messages()[r.byte() % 5]
    original_text, original_sig = text, signature
    mask = r.int(2)
    now, dom, nonce = SIWE_NOW, SIWE_DOMAIN, SIWE_NONCE
    if mask & 1:
        text = mutate_text(text, r)
    if mask & 2:
        signature = mutate_bytes(signature, r)
    if mask & 4 and signature:
        signature = signature[:-1] + bytes((r.byte(),))
    if mask & 8:
        now = SIWE_NOW + timedelta(seconds=r.int(2) - 32768)
    # The expected domain and nonce are the node's own values (never the client's): any text, but valid Unicode.
    if mask & 16:
        dom = _valid_unicode(mutate_text(dom, r))
    if mask & 32:
        nonce = _valid_unicode(mutate_text(nonce, r))
    if mask & 64:
        text = mutate_text(text, r)
    try:
        message = _timed(
            lambda: verify_siwe(text, signature, domain=dom, uri=SIWE_URI, chain_id=SIWE_CHAIN, nonce=nonce, now=now),
            "verify_siwe",
        )
    except AuthFailure as exc:
        if not _declared(exc):
            raise Finding("exception", f"undeclared code {exc.code!r}", f"code@{exc.code}") from None
        STATS.hit(exc.code)
        _check_siwe_round_trip(text)
        return
    except Finding:
        raise
    except BaseException as exc:
        raise _unexpected(exc) from None
    # v = 0/1 is the same signature as 27/28 (hardware wallets); any other difference is a forgery.
    v_ok = signature[64] in (original_sig[64], original_sig[64] - 27)
    if text != original_text or signature[:64] != original_sig[:64] or not v_ok or message.address != KEY.address:
        raise Finding("forgery", "verify_siwe accepted a message or signature the key did not sign", "forgery@siwe")
    STATS.hit("accepted")
    _check_siwe_round_trip(text)


def _valid_unicode(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _check_siwe_round_trip(text: str) -> None:
    try:
        message = SiweMessage.parse(text)
    except AuthFailure:
        return
    except BaseException as exc:
        raise _unexpected(exc) from None
    try:
        again = SiweMessage.parse(message.to_text())
    except BaseException as exc:
        raise Finding("wrong_result", f"to_text() of a parsed message fails: {exc}", "siwe-roundtrip") from None
    if again != message:
        raise Finding("wrong_result", "parse(to_text(m)) != m", "siwe-roundtrip-eq")


# ------------------------------------------------------------------------------------------- EIP-712 relay

RELAY_CHAIN = 1337
CONSENT_CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
GRANTEE = Account.from_key(b"\x07" * 32).address
#: The relay checks deadlines against the wall clock; the harness signs against a fixed one a day ahead.
_DEADLINE = (int(time.time()) // 86400 + 2) * 86400


@cache
def _relay() -> ConsentRelay:
    # The pre-chain checks use only the chain id and the consent domain; the chain clients are not reached
    # (they are called after every check here has passed), so the instance is built without them.
    relay = object.__new__(ConsentRelay)
    relay.chain_id = RELAY_CHAIN
    relay.consent_domain = domain(CONSENT_DOMAIN_NAME, RELAY_CHAIN, CONSENT_CONTRACT)
    return relay


@cache
def _signed_grant() -> tuple[GrantTerms, int, int, bytes]:
    terms = GrantTerms(GRANTEE, 0b1011, Purpose(1), NOW, _DEADLINE + 30 * 86400)
    nonce = 3
    typed = grant_typed_data(_relay().consent_domain, KEY.address, terms, nonce, _DEADLINE)
    return terms, nonce, _DEADLINE, sign_typed_data(KEY, typed)


def _relay_checks(patient: str, terms: GrantTerms, nonce: int, deadline: int, signature: bytes, chain: int | None):
    """``ConsentRelay.grant`` up to the chain calls, in its order."""
    from medledger.addresses import checksummed

    relay = _relay()
    p = checksummed(patient, "patient")
    relay._check_common(chain, deadline, signature)
    _check_terms(p, terms)
    typed = grant_typed_data(relay.consent_domain, p, terms, nonce, deadline)
    relay._check_signer(typed, signature, p)
    return p


def target_eip712(data: bytes) -> None:
    """The relay's checks of an EIP-712 signed grant, with fields mutated as an API body could carry them.

    Input: field mask (2 bytes), then: 0 patient, 1 grantee, 2 classes, 3 purpose, 4 valid_from, 5 valid_until,
    6 nonce, 7 deadline, 8 signature, 9 chain id, 10 high-s twin of the signature.
    """
    r = Reader(data)
    terms, nonce, deadline, signature = _signed_grant()
    original = (terms, nonce, deadline, signature)
    patient = KEY.address
    mask = r.int(2)
    grantee, classes, purpose = terms.grantee, terms.classes, int(terms.purpose)
    vf, vu = terms.valid_from, terms.valid_until
    chain: int | None = None
    if mask & 1:
        patient = mutate_text(patient, r)
    if mask & 2:
        grantee = mutate_text(grantee, r)
    # Ranges as node/api/schemas.py admits them: the relay sees nothing outside these.
    if mask & 4:
        classes = max(1, (classes ^ r.int(32)) % 2**256)
    if mask & 8:
        purpose = max(1, r.byte())
    if mask & 16:
        vf = r.int(8)
    if mask & 32:
        vu = r.int(8)
    if mask & 64:
        nonce = nonce ^ r.int(2)
    if mask & 128:
        deadline = deadline + r.int(3) - 2**23
    if mask & 256:
        signature = mutate_bytes(signature, r)
    if mask & 512:
        chain = r.int(4)
    if mask & 1024 and len(signature) == 65:
        n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
        s = int.from_bytes(signature[32:64], "big")
        signature = signature[:32] + ((n - s) % 2**256).to_bytes(32, "big") + bytes(((55 - signature[64]) % 256,))
    try:
        purpose_value: Purpose | int = Purpose(purpose)
    except ValueError:
        purpose_value = purpose
    new_terms = GrantTerms(grantee, classes, purpose_value, vf, vu)  # type: ignore[arg-type]
    try:
        _timed(lambda: _relay_checks(patient, new_terms, nonce, deadline, signature, chain), "relay checks")
    except (RelayRejected, MedLedgerError) as exc:
        if not _declared(exc):
            raise Finding("exception", f"undeclared code {exc.code!r}", f"code@{exc.code}") from None
        STATS.hit(exc.code)
        return
    except Finding:
        raise
    except BaseException as exc:
        raise _unexpected(exc) from None
    accepted = (new_terms, nonce, deadline, signature)
    same_terms = new_terms.as_tuple() == original[0].as_tuple()
    if patient != KEY.address or not same_terms or accepted[1:3] != original[1:3]:
        raise Finding("forgery", "relay checks accepted a grant the patient did not sign", "forgery@eip712")
    if signature != original[3]:
        # The same key signed these terms, but these are other signature bytes: the high-s twin (or another
        # encoding). The contract (OpenZeppelin ECDSA) reverts it, so accepting it spends gas on a transaction
        # that fails, which these checks exist to prevent; and two byte strings for one approval is malleability.
        raise Finding("forgery", "relay checks accepted a non-canonical signature", "malleable@eip712")
    STATS.hit("accepted")


# -------------------------------------------------------------------------------------------- registry

TARGETS: dict[str, Callable[[bytes], None]] = {
    "hl7": target_ingest,
    "dicom": target_ingest,
    "fhir": target_ingest,
    "ingest_file": target_ingest_file,
    "httpsig": target_httpsig,
    "siwe": target_siwe,
    "eip712": target_eip712,
}


def seeds(name: str) -> list[bytes]:
    """Real inputs to start from: the tests' data files, pydicom's test files, valid signed requests."""
    if name == "hl7":
        return list(hl7_seeds())
    if name == "dicom":
        return list(dicom_seeds())
    if name == "fhir":
        return [*fhir_seeds(), json.dumps({"resourceType": "Patient", "id": "p1"}).encode()]
    if name == "ingest_file":
        return list(hl7_seeds())[:12] + list(fhir_seeds())[:12] + list(dicom_seeds())[:8]
    if name == "httpsig":
        out = [bytes((i,)) + b"\x00\x00" for i in range(len(_REQUESTS))]
        # Valid variants through the Structured-Fields slow path and near misses of each header.
        out.append(b"\x00" + encode_edits((5, 1, 0, b" ")))
        out.append(b"\x00" + encode_edits((4, 1, 120, b" ")))
        out.append(b"\x01" + encode_edits((6, 0, 0, b"sha-512=:AAAA:, sha-256=:x:")))
        out.append(b"\x02" + encode_edits((8, 0, 0, b"")))
        out.append(b"\x00" + encode_edits((0, 0, 0, b"post"), (9, 0, 0, b"")))
        return out
    if name == "siwe":
        out = [bytes((i,)) + b"\x00\x00" for i in range(5)]
        out.append(b"\x00" + encode_edits((2, 0, 0, b"\x00")))  # v = 0 (hardware wallets)
        out.append(b"\x02" + encode_edits((0, 1, 10, b"\r")))
        out.append(b"\x01" + encode_edits((0, 1, 100, b"\xed\xb2\x80")))
        return out
    if name == "eip712":
        return [b"\x00\x00", (1024).to_bytes(2, "big"), (256).to_bytes(2, "big") + b"\x03\x00\x40\x01\x01"]
    raise KeyError(name)


def run_one(name: str, data: bytes) -> None:
    """Check one input; :class:`Finding` if the property fails."""
    TARGETS[name](data[:MAX_LEN])


def iter_inputs(folder: Path) -> Iterator[tuple[str, Path]]:
    """Saved reproducers ``<target>-<n>.bin`` in ``folder``, with their target."""
    for path in sorted(folder.glob("*.bin")):
        yield path.name.rsplit("-", 1)[0], path


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def finding_of(name: str, data: bytes) -> Finding | None:
    try:
        run_one(name, data)
    except Finding as finding:
        return finding
    return None


def minimize(name: str, data: bytes, signature: str, *, seconds: float = 20.0) -> bytes:
    """A shorter input with the same finding: drop ever smaller chunks while the signature stays (ddmin-like)."""
    deadline = time.monotonic() + seconds
    best = data
    chunk = max(1, len(best) // 2)
    while chunk >= 1 and time.monotonic() < deadline:
        i, shrunk = 0, False
        while i < len(best) and time.monotonic() < deadline:
            candidate = best[:i] + best[i + chunk :]
            found = finding_of(name, candidate)
            if found is not None and found.signature == signature:
                best, shrunk = candidate, True
            else:
                i += chunk
        if not shrunk:
            chunk //= 2
    # Then smaller byte values, which make the reproducer easier to read (lengths and masks shrink too).
    for i in range(len(best)):
        for value in (0, 1):
            if time.monotonic() >= deadline or best[i] <= value:
                break
            candidate = best[:i] + bytes((value,)) + best[i + 1 :]
            found = finding_of(name, candidate)
            if found is not None and found.signature == signature:
                best = candidate
                break
    return best
