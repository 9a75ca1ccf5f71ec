"""Signatures made by common wallets are accepted byte-for-byte: a wallet written against ethers v6 (its
``signTypedData``, run by Node.js) and Anvil's ``eth_signTypedData_v4`` (the JSON-RPC wallet method) sign from
the schema the node publishes, and the node relays what they signed. EIP-712 signatures are deterministic
(RFC 6979), so each must also equal eth-account's signature of the same typed data, bit for bit."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account

from clients.wallet import deadline
from medledger.chain.anvil import AnvilProcess, dev_private_keys
from medledger.chain.typed_data import grant_typed_data, revoke_typed_data, sign_typed_data
from medledger.chain.types import GrantTerms
from medledger.vocabulary import Purpose, RecordClass, class_mask
from tests.sharing.conftest import Network

ROOT = Path(__file__).resolve().parents[2]
ETHERS_WALLET = Path(__file__).with_name("ethers_wallet.mjs")


def _context(network: Network, patient: str) -> dict[str, Any]:
    r = httpx.get(f"{network.b.url}/v1/consent/context/{patient}")
    assert r.status_code == 200, r.text
    return r.json()


def test_the_signing_context_publishes_the_schema(network: Network) -> None:
    ctx = _context(network, Account.create().address)
    assert set(ctx["types"]) == {"EIP712Domain", "Grant", "Revoke", "RegisterPatientKey", "EraseRecord"}
    assert [f["name"] for f in ctx["types"]["EIP712Domain"]] == ["name", "version", "chainId", "verifyingContract"]
    assert ctx["consent_domain"]["chainId"] == ctx["chain_id"]


def test_ethers_signed_grant_and_revocation_are_relayed(network: Network) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is part of the set-up (scripts/bootstrap.sh)"
    patient = Account.create()
    classes = class_mask([RecordClass.LAB])
    valid_until, dl = int(time.time()) + 86400, deadline()
    consent = network.a.services.contracts.consent
    before = consent.grant_count()
    ctx = _context(network, patient.address)  # the nonces the wallet will sign (fresh patient: 0, then 1)

    out = subprocess.run(
        [node, str(ETHERS_WALLET), network.b.url, patient.key.hex(), network.b.address, str(classes),
         str(valid_until), str(dl)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["address"] == patient.address
    assert result["grant"]["status"] == 201, result["grant"]
    grant_id = result["grant"]["body"]["grant_id"]
    assert consent.grant_count() == before + 1
    assert result["revoke"]["status"] == 200, result["revoke"]

    terms = GrantTerms(network.b.address, classes, Purpose.TREATMENT, 0, valid_until)
    expected_grant = sign_typed_data(
        patient, grant_typed_data(ctx["consent_domain"], patient.address, terms, ctx["consent_nonce"], dl)
    )
    assert result["grant"]["signature"] == "0x" + expected_grant.hex()
    expected_revoke = sign_typed_data(
        patient, revoke_typed_data(ctx["consent_domain"], patient.address, grant_id, ctx["consent_nonce"] + 1, dl)
    )
    assert result["revoke"]["signature"] == "0x" + expected_revoke.hex()

    network.sync()
    grant = network.b.services.ledger.queries.grant(grant_id)
    assert grant is not None and grant.patient == patient.address and grant.revoked_block is not None


def test_eth_sign_typed_data_v4_grant_is_relayed(network: Network, anvil: AnvilProcess) -> None:
    key = dev_private_keys(anvil.settings)[-1]  # Anvil holds the dev keys: its wallet signs for them
    patient = Account.from_key(key)
    ctx = _context(network, patient.address)
    valid_until = int(time.time()) + 3600
    terms = GrantTerms(network.b.address, class_mask([RecordClass.IMAGING]), Purpose.TREATMENT, 0, valid_until)
    dl = deadline()
    typed = grant_typed_data(ctx["consent_domain"], patient.address, terms, ctx["consent_nonce"], dl)
    typed["types"] = {"EIP712Domain": ctx["types"]["EIP712Domain"], "Grant": ctx["types"]["Grant"]}
    signature = network.rpc.call("eth_signTypedData_v4", [patient.address, json.dumps(typed)])
    assert signature == "0x" + sign_typed_data(patient, typed).hex()

    body = {
        "patient": patient.address, "grantee": terms.grantee, "classes": terms.classes, "purpose": 1,
        "valid_from": 0, "valid_until": terms.valid_until, "nonce": ctx["consent_nonce"], "deadline": dl,
        "signature": signature, "chain_id": ctx["chain_id"],
    }  # fmt: skip
    r = httpx.post(f"{network.b.url}/v1/consents", json=body)
    assert r.status_code == 201, r.text
