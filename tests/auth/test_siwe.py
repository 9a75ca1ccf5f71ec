from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from medledger.addresses import Address
from medledger.auth.errors import AuthFailure, SiweFailure
from medledger.auth.siwe import (
    MAX_MESSAGE_BYTES,
    SiweMessage,
    format_timestamp,
    new_nonce,
    parse_timestamp,
    sign_siwe,
    verify_siwe,
)

# The example message of EIP-4361 ("Example message"), byte for byte.
EIP_EXAMPLE = (
    "example.com wants you to sign in with your Ethereum account:\n"
    "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n"
    "\n"
    "I accept the ExampleOrg Terms of Service: https://example.com/tos\n"
    "\n"
    "URI: https://example.com/login\n"
    "Version: 1\n"
    "Chain ID: 1\n"
    "Nonce: 32891756\n"
    "Issued At: 2021-09-30T16:25:24Z\n"
    "Resources:\n"
    "- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
    "- https://example.com/my-web2-claim.json"
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DOMAIN = "node-a.medledger.example"
URI = "https://node-a.medledger.example/v1/auth/siwe"
CHAIN = 1337
ACCOUNT = Account.from_key(bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"))
OTHER = Account.from_key(b"\x07" * 32)


def make(**overrides) -> SiweMessage:
    fields = {
        "domain": DOMAIN,
        "address": ACCOUNT.address,
        "statement": "Sign in to MedLedger node A.",
        "uri": URI,
        "chain_id": CHAIN,
        "nonce": "Abc123Xyz789Qrs456",
        "issued_at": NOW - timedelta(seconds=30),
    }
    fields.update(overrides)
    return SiweMessage(**fields)


def verify(text: str, signature: bytes, **overrides) -> SiweMessage:
    kwargs = {"domain": DOMAIN, "uri": URI, "chain_id": CHAIN, "nonce": "Abc123Xyz789Qrs456", "now": NOW}
    kwargs.update(overrides)
    return verify_siwe(text, signature, **kwargs)


def signed(message: SiweMessage, account=ACCOUNT) -> tuple[str, bytes]:
    return message.to_text(), sign_siwe(account, message)


def code_of(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    assert isinstance(excinfo.value, SiweFailure)
    return excinfo.value.code


# --------------------------------------------------------------------------------------------- format


def test_eip_example_parses_and_reemits_identically():
    message = SiweMessage.parse(EIP_EXAMPLE)
    assert message.domain == "example.com"
    assert message.address == "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2" and type(message.address) is Address
    assert message.statement == "I accept the ExampleOrg Terms of Service: https://example.com/tos"
    assert message.uri == "https://example.com/login"
    assert message.version == "1"
    assert message.chain_id == 1
    assert message.nonce == "32891756"
    assert message.issued_at == datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)
    assert message.expiration_time is None and message.not_before is None and message.request_id is None
    assert message.resources == (
        "ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/",
        "https://example.com/my-web2-claim.json",
    )
    assert message.to_text() == EIP_EXAMPLE


def test_all_optional_fields_round_trip():
    text = (
        "https://node-a.medledger.example:8443 wants you to sign in with your Ethereum account:\n"
        f"{ACCOUNT.address}\n"
        "\n"
        "Sign in to MedLedger node A.\n"
        "\n"
        f"URI: {URI}\n"
        "Version: 1\n"
        "Chain ID: 1337\n"
        "Nonce: Abc123Xyz789Qrs456\n"
        "Issued At: 2026-03-01T11:59:30.123Z\n"
        "Expiration Time: 2026-03-01T13:00:00+01:00\n"
        "Not Before: 2026-03-01T11:59:00.000001Z\n"
        "Request ID: req-42:a@b\n"
        "Resources:\n"
        "- https://node-a.medledger.example/v1/records\n"
        "- urn:medledger:consent"
    )
    message = SiweMessage.parse(text)
    assert message.scheme == "https"
    assert message.domain == "node-a.medledger.example:8443"
    assert message.issued_at == datetime(2026, 3, 1, 11, 59, 30, 123000, tzinfo=UTC)
    assert message.expiration_time == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert message.expiration_time.utcoffset() == timedelta(hours=1)
    assert message.not_before == datetime(2026, 3, 1, 11, 59, 0, 1, tzinfo=UTC)
    assert message.request_id == "req-42:a@b"
    assert message.to_text() == text
    assert SiweMessage.parse(message.to_text()) == message


def test_no_statement_has_two_blank_lines_and_round_trips():
    message = make(statement=None)
    text = message.to_text()
    assert f"{ACCOUNT.address}\n\n\nURI: " in text
    assert SiweMessage.parse(text) == message


def test_empty_resources_list_round_trips():
    message = make(resources=[])
    assert message.resources == ()
    assert message.to_text().endswith("\nResources:")
    assert SiweMessage.parse(message.to_text()) == message


def test_constructed_message_round_trips_through_text():
    message = make(
        expiration_time=NOW + timedelta(minutes=5),
        not_before=NOW - timedelta(minutes=1),
        request_id="",
        resources=("https://x.example/a",),
    )
    assert SiweMessage.parse(message.to_text()) == message


def test_timestamps():
    assert format_timestamp(parse_timestamp("2021-09-30T16:25:24Z")) == "2021-09-30T16:25:24Z"
    assert format_timestamp(parse_timestamp("2021-09-30T16:25:24.500Z")) == "2021-09-30T16:25:24.500Z"
    assert format_timestamp(parse_timestamp("2021-09-30T16:25:24-05:30")) == "2021-09-30T16:25:24-05:30"
    # Nanoseconds (Go's RFC3339Nano) are accepted and truncated to microseconds.
    assert parse_timestamp("2021-09-30T16:25:24.123456789Z").microsecond == 123456
    tz = timezone(timedelta(hours=2))
    assert format_timestamp(datetime(2021, 1, 2, 3, 4, 5, tzinfo=tz)) == "2021-01-02T03:04:05+02:00"
    for bad in (
        "2021-09-30 16:25:24Z",
        "2021-09-30T16:25:24",
        "2021-09-30t16:25:24z",
        "2021-02-30T16:25:24Z",
        "2021-09-30T24:00:00Z",
        "2021-09-30T16:25:60Z",
        "2021-09-30T16:25:24+24:00",
        "2021-09-30T16:25:24.Z",
        "2021-09-30T16:25:24.1234567890Z",
        "\uff12\uff10\uff12\uff11-09-30T16:25:24Z",  # full-width digits
    ):
        with pytest.raises(SiweFailure) as exc:
            parse_timestamp(bad)
        assert exc.value.code == "siwe_malformed", bad


def test_new_nonce_is_long_random_alphanumeric():
    nonces = {new_nonce() for _ in range(200)}
    assert len(nonces) == 200
    for nonce in nonces:
        assert len(nonce) >= 16 and nonce.isascii() and nonce.isalnum()


# ------------------------------------------------------------------------------------------ malformed


def _replace_line(text: str, index: int, new: str | None) -> str:
    lines = text.split("\n")
    if new is None:
        del lines[index]
    else:
        lines[index] = new
    return "\n".join(lines)


MALFORMED = {
    "trailing newline": EIP_EXAMPLE + "\n",
    "crlf": EIP_EXAMPLE.replace("\n", "\r\n"),
    "lowercase address": EIP_EXAMPLE.replace(
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
    ),
    "bad checksum": EIP_EXAMPLE.replace(
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756CC2"
    ),
    "short address": EIP_EXAMPLE.replace("0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2", "0xC02aaA39b223"),
    "short nonce": EIP_EXAMPLE.replace("Nonce: 32891756", "Nonce: 3289175"),
    "non-alphanumeric nonce": EIP_EXAMPLE.replace("Nonce: 32891756", "Nonce: 3289-1756"),
    "non-ascii nonce": EIP_EXAMPLE.replace("Nonce: 32891756", "Nonce: 3289175é"),
    "version 2": EIP_EXAMPLE.replace("Version: 1", "Version: 2"),
    "chain leading zero": EIP_EXAMPLE.replace("Chain ID: 1", "Chain ID: 01"),
    "chain not a number": EIP_EXAMPLE.replace("Chain ID: 1", "Chain ID: one"),
    "chain zero": EIP_EXAMPLE.replace("Chain ID: 1", "Chain ID: 0"),
    "bad issued-at": EIP_EXAMPLE.replace("2021-09-30T16:25:24Z", "2021-09-30T16:25:24"),
    "unknown line": EIP_EXAMPLE.replace("Version: 1\n", "Version: 1\nColour: blue\n"),
    "reordered lines": EIP_EXAMPLE.replace("Version: 1\nChain ID: 1", "Chain ID: 1\nVersion: 1"),
    "duplicate line": EIP_EXAMPLE.replace("Nonce: 32891756\n", "Nonce: 32891756\nNonce: 32891756\n"),
    "optional fields reordered": EIP_EXAMPLE.replace(
        "Issued At: 2021-09-30T16:25:24Z\n",
        "Issued At: 2021-09-30T16:25:24Z\nNot Before: 2021-09-30T16:25:24Z\nExpiration Time: 2021-09-30T17:25:24Z\n",
    ),
    "resources before request id": EIP_EXAMPLE + "\nRequest ID: 42",
    "missing uri": _replace_line(EIP_EXAMPLE, 5, None),
    "missing blank after address": _replace_line(EIP_EXAMPLE, 2, None),
    "missing blank after statement": _replace_line(EIP_EXAMPLE, 4, None),
    "single blank without statement (old siwe-py layout)": _replace_line(_replace_line(EIP_EXAMPLE, 3, None), 3, None),
    "empty statement": _replace_line(EIP_EXAMPLE, 3, ""),
    "statement with percent": _replace_line(EIP_EXAMPLE, 3, "100% sure"),
    "statement with control char": _replace_line(EIP_EXAMPLE, 3, "tab\there"),
    "wrong preamble": EIP_EXAMPLE.replace("wants you to sign in", "wants you to log in"),
    "userinfo in domain": EIP_EXAMPLE.replace("example.com wants", "evil@example.com wants"),
    "space in domain": EIP_EXAMPLE.replace("example.com wants", "exa mple.com wants"),
    "uri without scheme": EIP_EXAMPLE.replace("URI: https://example.com/login", "URI: example.com/login"),
    "uri with space": EIP_EXAMPLE.replace("URI: https://example.com/login", "URI: https://example.com/log in"),
    "resource without dash": EIP_EXAMPLE.replace("- https://example.com/my", "https://example.com/my"),
    "bad request id": EIP_EXAMPLE.replace("Resources:", "Request ID: a b\nResources:"),
    "truncated": "\n".join(EIP_EXAMPLE.split("\n")[:6]),
    "empty": "",
    "oversize": EIP_EXAMPLE + "\n- https://example.com/" + "a" * MAX_MESSAGE_BYTES,
}


@pytest.mark.parametrize("text", MALFORMED.values(), ids=MALFORMED.keys())
def test_parse_rejects_malformed(text):
    with pytest.raises(SiweFailure) as exc:
        SiweMessage.parse(text)
    assert code_of(exc) == "siwe_malformed"


def test_oversize_is_measured_in_bytes():
    # 1,400 three-byte characters: under 4,096 characters, over 4,096 bytes; refused before any parsing.
    with pytest.raises(SiweFailure) as exc:
        SiweMessage.parse(EIP_EXAMPLE + "€" * 1400)
    assert code_of(exc) == "siwe_malformed"
    assert "exceeds" in exc.value.message
    # Just under the limit parses.
    padding = MAX_MESSAGE_BYTES - len(EIP_EXAMPLE.encode()) - len("\n- https://x.example/")
    text = EIP_EXAMPLE + "\n- https://x.example/" + "a" * padding
    assert len(text.encode()) == MAX_MESSAGE_BYTES
    assert SiweMessage.parse(text).to_text() == text


def test_parse_rejects_non_text():
    with pytest.raises(SiweFailure) as exc:
        SiweMessage.parse(EIP_EXAMPLE.encode())  # type: ignore[arg-type]
    assert code_of(exc) == "siwe_malformed"


@pytest.mark.parametrize(
    "overrides",
    [
        {"address": ACCOUNT.address.lower()},
        {"nonce": "short"},
        {"nonce": "has space in it"},
        {"version": "2"},
        {"chain_id": 0},
        {"chain_id": True},
        {"chain_id": "1337"},
        {"issued_at": datetime(2026, 3, 1, 12, 0)},
        {"expiration_time": datetime(2026, 3, 1, 12, 0)},
        {"issued_at": datetime(2026, 3, 1, tzinfo=timezone(timedelta(seconds=30)))},
        {"statement": ""},
        {"statement": "line\nbreak"},
        {"domain": "host/path"},
        {"uri": "not a uri"},
        {"request_id": "a b"},
        {"resources": ("ok:x", "bad uri")},
        {"scheme": "1http"},
        {"resources": tuple(f"https://x.example/{i:04d}" for i in range(200))},
    ],
)
def test_constructor_validates(overrides):
    with pytest.raises(SiweFailure) as exc:
        make(**overrides)
    assert code_of(exc) == "siwe_malformed"


# ----------------------------------------------------------------------------------------- verifying


def test_sign_and_verify_round_trip():
    message = make(expiration_time=NOW + timedelta(minutes=5), not_before=NOW - timedelta(minutes=1))
    text, signature = signed(message)
    assert len(signature) == 65 and signature[64] in (27, 28)
    assert verify(text, signature) == message


def test_signature_is_plain_personal_sign_of_the_text():
    message = make()
    signature = sign_siwe(ACCOUNT, message)
    assert Account.recover_message(encode_defunct(text=message.to_text()), signature=signature) == ACCOUNT.address
    # A wallet's personal_sign of the same text verifies too (same EIP-191 envelope, deterministic RFC 6979).
    assert ACCOUNT.sign_message(encode_defunct(text=message.to_text())).signature == signature


def test_verify_accepts_v_0_1_from_hardware_wallets():
    text, signature = signed(make())
    assert verify(text, signature[:64] + bytes([signature[64] - 27])) is not None


def test_verify_defaults_now_to_the_clock():
    message = make(issued_at=datetime.now(UTC))
    text, signature = signed(message)
    assert verify_siwe(text, signature, domain=DOMAIN, uri=URI, chain_id=CHAIN, nonce=message.nonce) == message


def test_verify_optional_uri_and_nonce_checks_can_be_skipped():
    text, signature = signed(make())
    assert verify(text, signature, uri=None, nonce=None).nonce == "Abc123Xyz789Qrs456"


def test_domain_comparison_is_case_insensitive_for_the_host():
    text, signature = signed(make())
    assert verify(text, signature, domain=DOMAIN.upper()) is not None


def test_explicit_scheme_must_match():
    message = make(scheme="https")
    text, signature = signed(message)
    assert verify(text, signature) == message
    assert verify(text, signature, scheme="HTTPS") == message
    with pytest.raises(SiweFailure) as exc:
        verify(text, signature, scheme="http")
    assert code_of(exc) == "siwe_wrong_domain"
    text, signature = signed(make(scheme="http"))
    with pytest.raises(SiweFailure) as exc:
        verify(text, signature)
    assert code_of(exc) == "siwe_wrong_domain"


FAILURES = [
    ("siwe_wrong_domain", {}, {"domain": "node-b.medledger.example"}),
    ("siwe_wrong_domain", {"domain": DOMAIN + ":8443"}, {}),
    ("siwe_wrong_uri", {}, {"uri": URI + "/"}),
    ("siwe_wrong_uri", {"uri": "https://node-a.medledger.example/v1/auth/siwe?x=1"}, {}),
    ("siwe_wrong_chain", {}, {"chain_id": 1}),
    ("siwe_nonce_mismatch", {}, {"nonce": "Abc123Xyz789Qrs457"}),
    ("siwe_expired", {"expiration_time": NOW}, {}),
    ("siwe_expired", {"expiration_time": NOW - timedelta(seconds=1)}, {}),
    ("siwe_not_yet_valid", {"not_before": NOW + timedelta(seconds=1)}, {}),
    ("siwe_stale", {"issued_at": NOW - timedelta(minutes=10, seconds=1)}, {}),
    ("siwe_stale", {"issued_at": NOW - timedelta(minutes=3)}, {"max_age": timedelta(minutes=2)}),
    ("siwe_stale", {"issued_at": NOW + timedelta(seconds=61)}, {}),
    ("siwe_stale", {"issued_at": NOW + timedelta(seconds=5)}, {"skew": timedelta(0)}),
]


@pytest.mark.parametrize(("code", "message_overrides", "verify_overrides"), FAILURES)
def test_verify_failure_codes(code, message_overrides, verify_overrides):
    text, signature = signed(make(**message_overrides))
    with pytest.raises(SiweFailure) as exc:
        verify(text, signature, **verify_overrides)
    assert code_of(exc) == code
    assert isinstance(exc.value, AuthFailure) and exc.value.http_status == 401
    assert exc.value.to_dict()["code"] == code


def test_boundaries_that_pass():
    # issued exactly max_age ago, issued exactly skew ahead, not-before exactly now, expiring a microsecond later
    for overrides in (
        {"issued_at": NOW - timedelta(minutes=10)},
        {"issued_at": NOW + timedelta(seconds=60)},
        {"not_before": NOW},
        {"expiration_time": NOW + timedelta(microseconds=1)},
    ):
        text, signature = signed(make(**overrides))
        assert verify(text, signature) is not None, overrides


def test_malformed_text_is_reported_before_anything_else():
    with pytest.raises(SiweFailure) as exc:
        verify("hello", b"\x00" * 65)
    assert code_of(exc) == "siwe_malformed"


def test_bad_signature_codes():
    message = make()
    text, signature = signed(message)
    other_text, other_signature = signed(message, OTHER)
    assert other_text == text
    cases = {
        "signed by another key": other_signature,
        "too short": signature[:64],
        "too long": signature + b"\x00",
        "empty": b"",
        "bad v": signature[:64] + b"\x1d",
        "zero r": b"\x00" * 32 + signature[32:],
        "high s": signature[:32]
        + (
            0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 - int.from_bytes(signature[32:64], "big")
        ).to_bytes(32, "big")
        + bytes([55 - signature[64]]),
        "flipped bit": signature[:10] + bytes([signature[10] ^ 1]) + signature[11:],
    }
    for name, bad in cases.items():
        with pytest.raises(SiweFailure) as exc:
            verify(text, bad)
        assert code_of(exc) == "siwe_bad_signature", name


def test_high_s_twin_is_a_valid_ecdsa_signature_but_rejected():
    # The high-s twin recovers to the same key via Account.recover_message; refusing it keeps signatures unique.
    message = make()
    text, signature = signed(message)
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    twin = (
        signature[:32] + (n - int.from_bytes(signature[32:64], "big")).to_bytes(32, "big") + bytes([55 - signature[64]])
    )
    with pytest.raises(SiweFailure):
        verify(text, twin)


def test_signature_covers_the_exact_text():
    message = make()
    text, signature = signed(message)
    tampered = text.replace("Sign in to MedLedger node A.", "Sign in to MedLedger node A!")
    with pytest.raises(SiweFailure) as exc:
        verify(tampered, signature)
    assert code_of(exc) == "siwe_bad_signature"


def test_message_for_another_address_fails_signature_check():
    message = make(address=OTHER.address)
    text = message.to_text()
    with pytest.raises(SiweFailure) as exc:
        verify(text, sign_siwe(ACCOUNT, message))
    assert code_of(exc) == "siwe_bad_signature"


def test_verify_argument_errors_are_programming_errors():
    text, signature = signed(make())
    with pytest.raises(TypeError):
        verify(text, signature.hex())
    with pytest.raises(ValueError):
        verify(text, signature, now=datetime(2026, 3, 1, 12, 0))


def test_message_is_frozen():
    message = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.nonce = "x" * 10  # type: ignore[misc]


def test_unknown_error_code_is_refused():
    with pytest.raises(ValueError):
        SiweFailure("x", code="sig_replayed")
