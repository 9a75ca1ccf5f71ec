from __future__ import annotations

import base64
import threading

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from starlette.datastructures import Headers

from medledger.addresses import Address
from medledger.auth.errors import AuthFailure, NonceStoreFull, SignatureFailure
from medledger.auth.httpsig import (
    ALG,
    MAX_HEADER_CHARS,
    MemoryNonceStore,
    SignedRequest,
    authority_of,
    content_digest,
    sign_request,
    signature_base,
    signature_params,
    split_url,
    verify_request,
)
from medledger.errors import InputError

KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ACCOUNT = Account.from_key(KEY)
OTHER = Account.from_key(b"\x07" * 32)
NOW = 1_767_225_600
AUTHORITY = "node-b.medledger.example:8443"
URL = "https://node-b.medledger.example:8443/v1/records/query?patient=0xabc&limit=10"
PATH = "/v1/records/query"
QUERY = "patient=0xabc&limit=10"
BODY = b'{"hello": "world"}'
NONCE = "T3stN0nce_fixed-000001"
COMPONENTS = '("@method" "@authority" "@path" "@query" "content-digest")'


def sign(method="POST", url=URL, body=BODY, *, now=NOW, account=ACCOUNT, **kwargs) -> dict[str, str]:
    return sign_request(account, method, url, body, now=now, **kwargs)


def verify(headers, *, method="POST", path=PATH, query=QUERY, body=BODY, **kwargs) -> SignedRequest:
    kwargs.setdefault("authority", AUTHORITY)
    kwargs.setdefault("now", NOW + 5)
    return verify_request(method, path, query, headers, body, **kwargs)


def failure(headers, **kwargs) -> SignatureFailure:
    with pytest.raises(SignatureFailure) as exc:
        verify(headers, **kwargs)
    assert isinstance(exc.value, AuthFailure) and exc.value.http_status == 401
    return exc.value


def resign(params: str, *, method="POST", authority=AUTHORITY, path=PATH, query=QUERY, body=BODY, account=ACCOUNT):
    """Headers for a hand-built ``@signature-params`` value, correctly signed: isolates the check under test."""
    digest = content_digest(body)
    base = signature_base(method=method, authority=authority, path=path, query=query, digest=digest, params=params)
    signature = bytes(account.sign_message(encode_defunct(primitive=base.encode())).signature)
    return {
        "Content-Digest": digest,
        "Signature-Input": f"ml={params}",
        "Signature": f"ml=:{base64.b64encode(signature).decode()}:",
    }


def params_text(**overrides) -> str:
    values = {"created": NOW, "expires": NOW + 60, "nonce": NONCE, "keyid": ACCOUNT.address, "alg": ALG}
    values.update(overrides)
    return signature_params(**values)


# ------------------------------------------------------------------------------------- pinned layout


def test_signature_base_layout_is_pinned():
    headers = sign(nonce=NONCE)
    expected_base = (
        '"@method": POST\n'
        '"@authority": node-b.medledger.example:8443\n'
        '"@path": /v1/records/query\n'
        '"@query": ?patient=0xabc&limit=10\n'
        '"content-digest": sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:\n'
        '"@signature-params": ("@method" "@authority" "@path" "@query" "content-digest")'
        ';created=1767225600;expires=1767225660;nonce="T3stN0nce_fixed-000001"'
        ';keyid="0x2c7536E3605D9C16a7a3D7b1898e529396a65c23";alg="eth-personal-sign"'
    )
    base = signature_base(
        method="POST",
        authority=AUTHORITY,
        path=PATH,
        query=QUERY,
        digest=headers["Content-Digest"],
        params=headers["Signature-Input"].removeprefix("ml="),
    )
    assert base == expected_base
    # RFC 9530's own example digest of this body: the digest encoding matches the RFC.
    assert headers["Content-Digest"] == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    assert headers["Signature-Input"] == "ml=" + expected_base.split('"@signature-params": ')[1]
    # The signature is plain personal_sign over the base; RFC 6979 makes it deterministic, so it is pinned too
    # (a client in another language can check itself against these bytes).
    signature = base64.b64decode(headers["Signature"][4:-1])
    assert Account.recover_message(encode_defunct(text=expected_base), signature=signature) == ACCOUNT.address
    assert headers["Signature"] == (
        "ml=:gSK1Q7hLrMoVX25PKYnQzB00u1Lt/+bQe4YqeYwkQh8kguwDqurw6q9WstGQiVUJdtDQefcJaO3aunRkF5GPyBw=:"
    )
    assert verify(headers) == SignedRequest(ACCOUNT.address, NONCE, NOW, NOW + 60)


def test_empty_body_digest_and_empty_query():
    headers = sign("GET", "https://node-b.medledger.example:8443", b"")
    assert headers["Content-Digest"] == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
    assert verify(headers, method="GET", path="/", query="", body=b"").signer == ACCOUNT.address
    # An empty path is "/" (ASGI never yields one, but the verifier must not choke on it).
    assert verify(headers, method="GET", path="", query=b"", body=b"", nonces=MemoryNonceStore()) is not None


# ------------------------------------------------------------------------------------------- round trip


def test_round_trip():
    headers = sign()
    assert set(headers) == {"Content-Digest", "Signature-Input", "Signature"}
    result = verify(headers, nonces=MemoryNonceStore())
    assert result.signer == ACCOUNT.address and type(result.signer) is Address
    assert result.expires - result.created == 60
    assert 16 <= len(result.nonce) <= 64


def test_round_trip_with_asgi_shapes_and_starlette_headers():
    headers = sign("put", "http://10.0.0.7:8080/a/b%2Fc;v=1?x=%20y&z", b"\x00\x01")
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()] + [(b"host", b"evil.example")]
    result = verify(
        Headers(raw=raw),
        method="PUT",
        path=b"/a/b%2Fc;v=1",
        query=b"x=%20y&z",
        body=b"\x00\x01",
        authority="10.0.0.7:8080",
    )
    assert result.signer == ACCOUNT.address


def test_header_names_are_case_insensitive():
    headers = {k.upper(): v for k, v in sign().items()}
    assert verify(headers) is not None


def test_default_ports_and_host_case_are_normalised():
    assert authority_of("https://Node-B.Example:443/x") == "node-b.example"
    assert authority_of("http://node-b.example:80") == "node-b.example"
    assert authority_of("http://node-b.example:443") == "node-b.example:443"
    assert authority_of("https://[2001:DB8::1]:8443/") == "[2001:db8::1]:8443"
    headers = sign(url="https://NODE-B.example:443/v1/records/query?patient=0xabc&limit=10")
    assert verify(headers, authority="node-b.example") is not None
    assert verify(headers, authority="Node-B.Example") is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example/p/x%20y?a=1&b=c:d/e?f",
        "https://a.example/p;x=(1)!*'?q=$,@",
        "https://a.example?x=1",
        "https://a.example/a?",
        "https://a.example/~user/-._",
    ],
)
def test_request_target_matches_what_httpx_sends(url):
    _, path, query = split_url(url)
    sent = httpx.Request("GET", url).url.raw_path.decode()
    # What the server sees as (raw_path, query_string) is what was signed; "?" alone and no "?" sign the same.
    sent_path, _, sent_query = sent.partition("?")
    assert (sent_path, sent_query) == (path, query)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://a.example/",
        "https://user@a.example/",
        "https://a.example/#frag",
        "https://a.example/#",
        "https://a.example/a b",
        "https://a.example/é",
        "https://a.example/a/../b",
        "https://a.example/./b",
        "https://a.example/?q=[x]",
        "https://a.example:99999/",
        "https:///path",
        "not a url",
    ],
)
def test_sign_rejects_urls_the_client_would_rewrite(url):
    with pytest.raises(InputError):
        sign(url=url)


def test_sign_argument_checks():
    for ttl in (0, 301, -1):
        with pytest.raises(InputError):
            sign(ttl=ttl)
    with pytest.raises(InputError):
        sign(nonce="short")
    with pytest.raises(InputError):
        sign(method="GE T")
    assert verify(sign(ttl=300)).expires == NOW + 300


# ------------------------------------------------------------------------------------------ failures


def test_tampered_body():
    assert failure(sign(), body=BODY + b" ").code == "sig_digest_mismatch"


def test_tampered_digest_header():
    headers = sign()
    headers["Content-Digest"] = content_digest(b"other")
    assert failure(headers).code == "sig_digest_mismatch"


def test_body_swapped_with_matching_digest_fails_signature():
    headers = sign()
    headers["Content-Digest"] = content_digest(b"other")
    assert failure(headers, body=b"other").code == "sig_bad_signature"


@pytest.mark.parametrize(
    "tamper",
    [
        {"path": "/v1/records/query2"},
        {"path": "/v1/records/query/"},
        {"query": "patient=0xabd&limit=10"},
        {"query": ""},
        {"method": "PUT"},
        {"authority": "node-a.medledger.example:8443"},
        {"authority": "node-b.medledger.example"},
    ],
    ids=lambda d: next(iter(d)),
)
def test_tampered_request_fields(tamper):
    assert failure(sign(), **tamper).code == "sig_bad_signature"


def test_request_signed_for_another_node_is_rejected_even_with_its_host_header():
    headers = sign(url="https://node-a.medledger.example/v1/records/query?patient=0xabc&limit=10")
    headers["Host"] = "node-a.medledger.example"
    assert failure(headers).code == "sig_bad_signature"


def test_expired():
    headers = sign(ttl=30)
    assert verify(headers, now=NOW + 30) is not None  # expires == now still valid
    assert failure(headers, now=NOW + 31).code == "sig_expired"


def test_stale_created():
    headers = sign(ttl=300)
    assert verify(headers, now=NOW + 60) is not None
    assert failure(headers, now=NOW + 61).code == "sig_stale"
    assert failure(headers, now=NOW + 100, max_skew=99).code == "sig_stale"


def test_future_created():
    headers = sign()
    assert verify(headers, now=NOW - 60) is not None
    assert failure(headers, now=NOW - 61).code == "sig_stale"


def test_lifetime_over_300_is_malformed():
    headers = resign(params_text(expires=NOW + 301))
    assert failure(headers).code == "sig_malformed"
    headers = resign(params_text(expires=NOW - 1))
    assert failure(headers).code == "sig_malformed"


def test_wrong_alg():
    for alg in ("ecdsa-p256-sha256", "ETH-PERSONAL-SIGN", ""):
        assert failure(resign(params_text(alg=alg))).code == "sig_unsupported", alg


@pytest.mark.parametrize(
    "components",
    [
        '("@method" "@authority" "@path" "@query")',
        '("@method" "@authority" "@path" "content-digest")',
        '("@authority" "@method" "@path" "@query" "content-digest")',
        '("@method" "@authority" "@path" "@query" "content-digest" "content-type")',
        '("@method" "@authority" "@path" "@query" "content-digest";sf)',
        '("@method" "@authority" "@target-uri" "@query" "content-digest")',
        "()",
    ],
)
def test_components_must_be_exact(components):
    params = params_text().replace(COMPONENTS, components)
    assert failure(resign(params)).code == "sig_components"


@pytest.mark.parametrize(
    "params",
    [
        params_text() + ";created=1",  # duplicate parameter
        params_text() + f';nonce="{NONCE}"',
        params_text() + ';tag="x"',  # unknown parameter
        params_text().replace(f';nonce="{NONCE}"', ""),  # missing parameter
        params_text().replace(f"created={NOW}", f"created={NOW}.0"),  # decimal
        params_text().replace(f"created={NOW}", f'created="{NOW}"'),  # wrong type
        params_text().replace(f"created={NOW}", "created=-1"),
        params_text().replace(f"created={NOW}", f"created=0{NOW}"),  # leading zero
        params_text().replace(f"created={NOW}", "created"),  # boolean
        params_text(nonce="short"),
        params_text(nonce="x" * 65),
        params_text(nonce="has space in it!"),
        params_text(keyid=ACCOUNT.address.lower()),  # not EIP-55
        params_text(keyid="0x1234"),
        params_text() + ";",
        params_text().replace('"@path" ', '"@path"'),  # items not separated
        params_text().replace(COMPONENTS, COMPONENTS[:-1]),  # unterminated inner list
    ],
)
def test_malformed_signature_input(params):
    assert failure(resign(params)).code == "sig_malformed"


def test_wrong_label_and_multiple_signatures_are_unsupported():
    headers = sign()
    for field in ("Signature-Input", "Signature"):
        changed = dict(headers)
        changed[field] = "sig1" + headers[field][2:]
        assert failure(changed).code == "sig_unsupported", field
    changed = dict(headers)
    changed["Signature-Input"] = headers["Signature-Input"] + ", " + headers["Signature-Input"].replace("ml=", "ml2=")
    assert failure(changed).code == "sig_unsupported"
    changed = dict(headers)
    changed["Signature"] = headers["Signature"] + ", other=:AAAA:"
    assert failure(changed).code == "sig_unsupported"


def test_duplicate_dictionary_member_is_malformed():
    headers = sign()
    headers["Signature-Input"] = headers["Signature-Input"] + ", " + headers["Signature-Input"]
    assert failure(headers).code == "sig_malformed"


def test_equivalent_serialisations_verify():
    # Parameter order is the signer's choice (RFC 9421 keeps it in the base); extra spaces inside the inner
    # list and around the dictionary are allowed by RFC 8941 and vanish in the canonical serialization.
    params = f'{COMPONENTS};alg="{ALG}";keyid="{ACCOUNT.address}";nonce="{NONCE}";expires={NOW + 60};created={NOW}'
    headers = resign(params)
    assert verify(headers).nonce == NONCE
    spaced = dict(headers)
    spaced["Signature-Input"] = "  ml=(" + " " * 3 + headers["Signature-Input"][4:].replace('" "', '"  "') + "  "
    assert verify(spaced).nonce == NONCE


def test_wrong_keyid():
    headers = sign()
    headers["Signature-Input"] = headers["Signature-Input"].replace(ACCOUNT.address, OTHER.address)
    assert failure(headers).code == "sig_bad_signature"


def test_signature_by_another_key():
    mine, theirs = sign(nonce=NONCE), sign(account=OTHER, nonce=NONCE)
    mine["Signature"] = theirs["Signature"]
    assert failure(mine).code == "sig_bad_signature"
    # Claiming to be someone else while signing with one's own key fails too.
    assert failure(resign(params_text(keyid=OTHER.address))).code == "sig_bad_signature"


@pytest.mark.parametrize(
    "value",
    [
        "ml=:not base64!:",
        "ml=:" + base64.b64encode(b"\x01" * 64).decode() + ":",  # 64 bytes
        "ml=:" + base64.b64encode(b"\x01" * 66).decode() + ":",
        "ml=:" + base64.b64encode(b"\x01" * 65).decode().rstrip("=") + ":",  # unpadded
        "ml=:" + base64.b64encode(b"\x01" * 65).decode()[:-2] + "R=:",  # non-zero unused bits
        "ml=:" + base64.urlsafe_b64encode(b"\xff" * 65).decode() + ":",  # base64url alphabet
        "ml=:" + base64.b64encode(b"\x01" * 65).decode(),  # unterminated
        'ml="' + base64.b64encode(b"\x01" * 65).decode() + '"',  # string, not bytes
        "ml=:" + base64.b64encode(b"\x01" * 65).decode() + ":;p=1",  # parameters
        "",
    ],
)
def test_malformed_signature_header(value):
    headers = sign()
    headers["Signature"] = value
    assert failure(headers).code == "sig_malformed"


def test_non_canonical_signature_values_fail():
    headers = sign(nonce=NONCE)
    signature = base64.b64decode(headers["Signature"][4:-1])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = (
        signature[:32] + (n - int.from_bytes(signature[32:64], "big")).to_bytes(32, "big") + bytes([55 - signature[64]])
    )
    for bad in (high_s, signature[:64] + bytes([signature[64] - 27]), b"\x00" * 65):
        headers["Signature"] = f"ml=:{base64.b64encode(bad).decode()}:"
        assert failure(headers).code == "sig_bad_signature"


def test_missing_headers():
    headers = sign()
    for name in headers:
        partial = {k: v for k, v in headers.items() if k != name}
        exc = failure(partial)
        assert exc.code == "sig_missing"
        assert exc.details["headers"] == [name]
    assert failure({}).code == "sig_missing"


def test_duplicate_header_lines():
    headers = sign()
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"signature", headers["Signature"].encode()))
    assert failure(Headers(raw=raw)).code == "sig_malformed"
    # Same name in two cases in a plain dict
    mixed = dict(headers)
    mixed["signature-input"] = headers["Signature-Input"]
    assert failure(mixed).code == "sig_malformed"


@pytest.mark.parametrize("name", ["Signature-Input", "Signature", "Content-Digest"])
def test_oversized_headers(name):
    headers = sign()
    headers[name] = headers[name] + " " * MAX_HEADER_CHARS[name.lower()]
    exc = failure(headers)
    assert exc.code == "sig_malformed" and "too long" in exc.message


def test_content_digest_other_algorithms():
    headers = sign()
    sha512 = "sha-512=:" + base64.b64encode(b"\x00" * 64).decode() + ":"
    for value in (sha512, headers["Content-Digest"] + ", " + sha512, "md5=:AAAAAAAAAAAAAAAAAAAAAA==:"):
        headers["Content-Digest"] = value
        assert failure(headers).code == "sig_unsupported", value
    for value in ("sha-256=:AAAA:", "sha-256=abc", "sha-256", "garbage here", "sha-256=:" + "A" * 43 + "=:;x"):
        headers["Content-Digest"] = value
        assert failure(headers).code in ("sig_malformed",), value


def test_malformed_request_target():
    headers = sign()
    assert failure(headers, path="/v1/records query").code == "sig_malformed"
    assert failure(headers, path="/v1/\nrecords").code == "sig_malformed"
    assert failure(headers, path="/caf\xe9".encode("latin-1")).code == "sig_malformed"
    assert failure(headers, query="a=1\n").code == "sig_malformed"
    assert failure(headers, method="GE T").code == "sig_malformed"


def test_method_case_is_normalised():
    headers = sign(method="post")
    assert verify(headers, method="post") is not None


# -------------------------------------------------------------------------------------------- replay


def fixed_store() -> MemoryNonceStore:
    """A store whose clock agrees with the verifier's fixed ``now`` (a wall clock would evict at once)."""
    return MemoryNonceStore(clock=lambda: NOW + 5)


def test_replay_is_rejected():
    store = fixed_store()
    headers = sign()
    assert verify(headers, nonces=store).signer == ACCOUNT.address
    assert failure(headers, nonces=store).code == "sig_replayed"
    # A fresh signature (new nonce) from the same signer passes.
    assert verify(sign(), nonces=store) is not None


def test_nonce_is_claimed_only_after_every_other_check():
    store = fixed_store()
    headers = sign(nonce=NONCE)
    # A forged request reusing the legitimate nonce must not burn it.
    assert failure(headers, nonces=store, body=b"forged").code == "sig_digest_mismatch"
    assert failure(headers, nonces=store, path="/other").code == "sig_bad_signature"
    assert failure(headers, nonces=store, now=NOW + 1000).code == "sig_expired"
    assert len(store) == 0
    assert verify(headers, nonces=store).nonce == NONCE
    assert len(store) == 1


def test_nonces_are_per_signer():
    store = fixed_store()
    assert verify(sign(nonce=NONCE), nonces=store) is not None
    assert verify(sign(account=OTHER, nonce=NONCE), nonces=store) is not None


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_memory_store_evicts_expired_entries():
    clock = FakeClock(1000)
    store = MemoryNonceStore(grace=5, clock=clock)
    assert store.claim("0xA", "n1", 1010)
    assert store.claim("0xA", "n2", 1100)
    assert not store.claim("0xA", "n1", 1010)
    clock.t = 1015  # n1 expired at 1010, kept through the 5 s grace
    assert not store.claim("0xA", "n1", 1010)
    clock.t = 1016
    assert store.claim("0xB", "n3", 1200)
    assert len(store) == 2  # n1 evicted
    assert store.claim("0xA", "n1", 1300)  # only possible because it expired (and the verifier would refuse it)


def test_memory_store_is_bounded_and_fails_closed():
    clock = FakeClock(1000)
    store = MemoryNonceStore(max_entries=2, grace=0, clock=clock)
    assert store.claim("s", "a", 1001)
    assert store.claim("s", "b", 1050)
    with pytest.raises(NonceStoreFull) as exc:
        store.claim("s", "c", 1050)
    assert exc.value.code == "nonce_store_full"
    assert not store.claim("s", "a", 1001)  # a duplicate is still reported as such when full
    clock.t = 1002
    assert store.claim("s", "c", 1050)  # "a" expired and made room
    with pytest.raises(ValueError):
        MemoryNonceStore(max_entries=0)


def test_memory_store_is_thread_safe():
    store = MemoryNonceStore()
    wins: list[bool] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        for i in range(500):
            wins.append(store.claim("0xsigner", f"nonce{i}", 2**40))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 500
    assert len(store) == 500
