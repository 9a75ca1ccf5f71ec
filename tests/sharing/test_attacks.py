"""Bad input and attacks against the sharing API. Each gets a precise 4xx with a machine-readable code and
changes nothing: no access journaled, no transaction sent, no grant made."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import func, select

from clients.api import NodeRefused
from clients.patient import PatientClient
from clients.wallet import PatientWallet, deadline
from medledger.auth.httpsig import sign_request
from medledger.chain.types import GrantTerms
from medledger.vocabulary import Purpose, RecordClass, class_mask
from node.api.schemas import ReleaseReply
from node.db.models import AccessEntry
from tests.sharing.conftest import Network


def journaled(network: Network) -> int:
    with network.a.services.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(AccessEntry)) or 0)


def signed_get(account: Any, url: str, *, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    h = sign_request(account, "GET", url, b"", **kw)
    return httpx.get(url, headers={**h, **(headers or {})})


def code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


@pytest.fixture(scope="module")
def granted(network: Network) -> tuple[PatientClient, list[str], int]:
    """A patient with two lab records at A and a treatment grant to B for LAB only."""
    patient, ids = network.patient(records=2)
    grant = patient.grant(network.b.address, [RecordClass.LAB], Purpose.TREATMENT)
    return patient, ids, grant["grant_id"]


def release_url(network: Network, record_id: str, purpose: str = "treatment") -> str:
    return f"{network.a.url}/v1/records/{record_id}/release?purpose={purpose}"


def test_signed_institution_request_is_released(network: Network, granted: tuple) -> None:
    _, ids, grant_id = granted
    r = signed_get(network.dev.founders["Hospital B"], release_url(network, ids[0]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["authorization"] == {
        "kind": "grant",
        "id": grant_id,
        "block_number": body["authorization"]["block_number"],
    }
    assert body["custodian"] == network.a.address


def test_forged_replayed_and_stale_signatures(network: Network, granted: tuple) -> None:
    _, ids, _ = granted
    url = release_url(network, ids[0])
    b = network.dev.founders["Hospital B"]
    before = journaled(network)

    # Forged: headers signed by someone else but claiming B's keyid.
    forger = Account.create()
    h = sign_request(forger, "GET", url, b"")
    h["Signature-Input"] = h["Signature-Input"].replace(forger.address, b.address)
    assert code(httpx.get(url, headers=h)) == (401, "sig_bad_signature")

    # Replayed: the very same signed request twice.
    h = sign_request(b, "GET", url, b"")
    first = httpx.get(url, headers=h)
    assert first.status_code == 200
    # The reply (written as JSON directly on this hot path) is exactly the documented ReleaseReply.
    reply = ReleaseReply.model_validate(first.json(), strict=True)
    assert set(first.json()) == set(ReleaseReply.model_fields) and reply.authorization.kind == "grant"
    assert code(httpx.get(url, headers=h)) == (401, "sig_replayed")

    # Expired and stale.
    assert code(signed_get(b, url, now=int(time.time()) - 600)) == (401, "sig_expired")
    assert code(signed_get(b, url, now=int(time.time()) + 600)) == (401, "sig_stale")

    # Signed for another node (authority) or another path: not valid here.
    other = url.replace(network.a.url, network.b.url)
    h = sign_request(b, "GET", other, b"")
    assert code(httpx.get(url, headers=h)) == (401, "sig_bad_signature")
    h = sign_request(b, "GET", release_url(network, ids[1]), b"")
    assert code(httpx.get(url, headers=h)) == (401, "sig_bad_signature")

    # No credentials at all.
    assert code(httpx.get(url)) == (401, "unauthenticated")
    assert journaled(network) == before + 1  # only the one legitimate release


def test_non_member_wrong_purpose_and_wrong_class(network: Network, granted: tuple) -> None:
    patient, ids, _ = granted
    before = journaled(network)
    outsider = network.dev.accounts[7]
    assert code(signed_get(outsider, release_url(network, ids[0]))) == (403, "not_a_member")
    b = network.dev.founders["Hospital B"]
    r = signed_get(b, release_url(network, ids[0], "research"))
    assert code(r) == (403, "consent_denied")
    # A member with no grant at all (the CDC).
    assert code(signed_get(network.dev.founders["Regional CDC"], release_url(network, ids[0]))) == (
        403,
        "consent_denied",
    )
    # Narrow the grant to imaging only: the lab record is no longer covered.
    patient.grant(network.b.address, [RecordClass.IMAGING], Purpose.TREATMENT)
    r = signed_get(b, release_url(network, ids[0]))
    assert code(r) == (403, "consent_denied") and "does not cover lab" in r.json()["error"]["message"]
    assert code(signed_get(b, release_url(network, ids[0], "nonsense"))) == (422, "invalid_purpose")
    assert code(signed_get(b, f"{network.a.url}/v1/records/0x1234/release")) == (422, "invalid_record_id")
    missing = "0x" + "ab" * 32
    assert code(signed_get(b, release_url(network, missing))) == (404, "record_not_found")
    assert journaled(network) == before


def test_patient_token_reads_only_own_records(network: Network, granted: tuple) -> None:
    _, ids, _ = granted
    other, _ = network.patient(records=1)
    session = other.session(network.a.url)
    with pytest.raises(NodeRefused) as err:
        session.get(f"/v1/records/{ids[0]}/release")
    assert (err.value.status, err.value.code) == (403, "forbidden")
    bad = httpx.get(release_url(network, ids[0]), headers={"Authorization": "Bearer mlpt_forged.token"})
    assert code(bad) == (401, "unauthenticated")


def test_siwe_wrong_domain_replay_and_bad_signature(network: Network) -> None:
    wallet = PatientWallet.create()
    url = network.a.url
    ctx = httpx.get(f"{url}/v1/auth/siwe/nonce").json()
    text, sig = wallet.siwe(domain="evil.example", uri=ctx["uri"], chain_id=ctx["chain_id"], nonce=ctx["nonce"])
    r = httpx.post(f"{url}/v1/auth/siwe", json={"message": text, "signature": "0x" + sig.hex()})
    assert code(r) == (401, "siwe_wrong_domain")
    text, sig = wallet.siwe(domain=ctx["domain"], uri=ctx["uri"], chain_id=ctx["chain_id"] + 1, nonce=ctx["nonce"])
    r = httpx.post(f"{url}/v1/auth/siwe", json={"message": text, "signature": "0x" + sig.hex()})
    assert code(r) == (401, "siwe_wrong_chain")
    text, sig = wallet.siwe(domain=ctx["domain"], uri=ctx["uri"], chain_id=ctx["chain_id"], nonce=ctx["nonce"])
    forged = PatientWallet.create().siwe(
        domain=ctx["domain"], uri=ctx["uri"], chain_id=ctx["chain_id"], nonce="abcdefgh1"
    )[1]
    r = httpx.post(f"{url}/v1/auth/siwe", json={"message": text, "signature": "0x" + forged.hex()})
    assert code(r) == (401, "siwe_bad_signature")
    ok = httpx.post(f"{url}/v1/auth/siwe", json={"message": text, "signature": "0x" + sig.hex()})
    assert ok.status_code == 200 and ok.json()["address"] == wallet.address
    replay = httpx.post(f"{url}/v1/auth/siwe", json={"message": text, "signature": "0x" + sig.hex()})
    assert code(replay) == (401, "siwe_nonce_invalid")


def _grant_body(network: Network, wallet: PatientWallet, **over: Any) -> dict[str, Any]:
    ctx = httpx.get(f"{network.b.url}/v1/consent/context/{wallet.address}").json()
    now = int(time.time())
    terms = GrantTerms(network.b.address, class_mask([RecordClass.LAB]), Purpose.TREATMENT, 0, now + 86400)
    dl = over.pop("deadline", deadline())
    dom = over.pop("domain", ctx["consent_domain"])
    nonce = over.pop("nonce", ctx["consent_nonce"])
    signer = over.pop("signer", wallet)
    sig = signer.sign_grant(dom, terms, nonce, dl)
    body = {
        "patient": wallet.address, "grantee": terms.grantee, "classes": terms.classes, "purpose": 1,
        "valid_from": 0, "valid_until": terms.valid_until, "nonce": nonce, "deadline": dl,
        "signature": "0x" + sig.hex(),
    }  # fmt: skip
    body.update(over)
    return body


def test_relay_rejects_forged_replayed_expired_and_wrong_chain_grants(network: Network) -> None:
    wallet = PatientWallet.create()
    consent = network.a.services.contracts.consent
    count = consent.grant_count()
    post = lambda body: httpx.post(f"{network.b.url}/v1/consents", json=body)  # noqa: E731
    assert code(post(_grant_body(network, wallet, signer=PatientWallet.create()))) == (401, "invalid_signature")
    assert code(post(_grant_body(network, wallet, deadline=int(time.time()) - 5))) == (401, "signature_expired")
    assert code(post(_grant_body(network, wallet, chain_id=1))) == (401, "wrong_chain")
    ctx = httpx.get(f"{network.b.url}/v1/consent/context/{wallet.address}").json()
    other_chain = {**ctx["consent_domain"], "chainId": 1}
    assert code(post(_grant_body(network, wallet, domain=other_chain))) == (401, "invalid_signature")
    assert code(post(_grant_body(network, wallet, nonce=5))) == (409, "nonce_mismatch")
    assert code(post(_grant_body(network, wallet, purpose=99))) == (422, "invalid_grant")
    assert code(post(_grant_body(network, wallet, grantee=wallet.address))) == (422, "invalid_grant")
    assert consent.grant_count() == count  # nothing reached the chain
    good = _grant_body(network, wallet)
    assert post(good).status_code == 201
    assert code(post(good)) == (409, "nonce_mismatch")  # the same signed grant again
    assert consent.grant_count() == count + 1


def test_revoke_checks_ownership_and_state(network: Network, granted: tuple) -> None:
    _, _, grant_id = granted
    stranger = PatientClient(PatientWallet.create(), network.b.url)
    network.clients.append(stranger)
    with pytest.raises(NodeRefused) as err:
        stranger.revoke(grant_id)
    assert (err.value.status, err.value.code) == (403, "not_grant_patient")
    with pytest.raises(NodeRefused) as err:
        stranger.revoke(10_000)
    assert (err.value.status, err.value.code) == (404, "unknown_grant")


def test_oversized_and_malformed_requests(network: Network) -> None:
    url = f"{network.b.url}/v1/consents"
    r = httpx.post(url, content=b"{" + b" " * 100_000 + b"}", headers={"content-type": "application/json"})
    assert code(r) == (413, "payload_too_large")
    r = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert code(r) == (422, "invalid_request")
    r = httpx.post(url, json={"patient": "0x1234"})
    assert code(r) == (422, "invalid_request")
    r = httpx.get(f"{network.b.url}/v1/consent/context/0xnot-an-address-at-all-not-an-address-00")
    assert code(r) == (422, "invalid_address")


def test_tampered_ciphertext_is_never_released(network: Network, granted: tuple) -> None:
    patient, ids, _ = granted
    patient.grant(network.b.address, [RecordClass.LAB], Purpose.REFERRAL)
    a = network.a.services
    rid = bytes.fromhex(ids[1][2:])
    held, _ = a.releases.held(rid)
    store = a.store
    pack = store._pack(create=False)  # the store's SQLite pack: flip one byte of the stored ciphertext
    with store._lock:
        data = bytearray(pack.execute("SELECT data FROM blobs WHERE cid = ?", (held.cid,)).fetchone()[0])
        data[-1] ^= 1
        pack.execute("UPDATE blobs SET data = ? WHERE cid = ?", (bytes(data), held.cid))
        pack.commit()
    before = journaled(network)
    clinician = network.b.staff("clinician")
    with pytest.raises(NodeRefused) as err:
        clinician.request("GET", f"/v1/patients/{patient.wallet.address}/records/{ids[1]}?purpose=referral")
    assert (err.value.status, err.value.code) == (502, "custodian_error")
    r = signed_get(network.dev.founders["Hospital B"], release_url(network, ids[1], "referral"))
    assert code(r) == (500, "blob_corrupted")
    assert journaled(network) == before
