"""The patient's side of MedLedger over HTTP: sign in, register the encryption key, grant and revoke
consent, see the timeline and every access, download (verified and decrypted) and erase records.

The patient's *home* node (any consortium node) relays signed requests and answers ledger queries; records
are downloaded from their custodian's node, whose URL is in the ledger. A download is verified against the
commitment the home node read from the chain, so a custodian cannot hand over a substituted ciphertext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

from clients.api import NodeClient
from clients.wallet import PatientWallet, deadline
from medledger.chain.types import GrantTerms
from medledger.crypto import decrypt_record, unwrap_with_x25519
from medledger.errors import MedLedgerError
from medledger.vocabulary import Purpose, RecordClass, class_mask


class VerificationFailed(MedLedgerError):
    code = "verification_failed"


@dataclass(frozen=True)
class Download:
    record_id: str
    custodian: str
    media_type: str
    content: bytes
    commitment: str


class PatientClient:
    """Acts for ``wallet`` through the node at ``home_url``."""

    def __init__(self, wallet: PatientWallet, home_url: str, *, timeout: float = 30.0) -> None:
        self.wallet = wallet
        self.home = NodeClient(home_url, timeout=timeout)
        self._timeout = timeout
        self._sessions: dict[str, NodeClient] = {}

    def close(self) -> None:
        self.home.close()
        for c in self._sessions.values():
            c.close()

    def __enter__(self) -> PatientClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ sessions

    def session(self, url: str | None = None) -> NodeClient:
        """A signed-in client for the node at ``url`` (the home node by default)."""
        base = (url or self.home.base_url).rstrip("/")
        client = self._sessions.get(base)
        if client is None:
            client = NodeClient(base, timeout=self._timeout)
            ctx = client.get("/v1/auth/siwe/nonce")
            text, sig = self.wallet.siwe(
                domain=ctx["domain"], uri=ctx["uri"], chain_id=ctx["chain_id"], nonce=ctx["nonce"]
            )
            client.token = client.post("/v1/auth/siwe", {"message": text, "signature": "0x" + sig.hex()})["token"]
            self._sessions[base] = client
        return client

    def context(self) -> dict[str, Any]:
        return dict(self.home.get(f"/v1/consent/context/{self.wallet.address}"))

    # ------------------------------------------------------------------ ledger actions (relayed)

    def register_key(self) -> dict[str, Any]:
        ctx = self.context()
        dl = deadline()
        sig = self.wallet.sign_register_key(ctx["consortium_domain"], ctx["consortium_nonce"], dl)
        return dict(
            self.home.post(
                "/v1/patients/keys",
                {
                    "patient": self.wallet.address,
                    "encryption_key": "0x" + self.wallet.encryption_public_key.hex(),
                    "nonce": ctx["consortium_nonce"],
                    "deadline": dl,
                    "signature": "0x" + sig.hex(),
                    "chain_id": ctx["chain_id"],
                },
            )
        )

    def grant(
        self,
        grantee: str,
        classes: list[RecordClass],
        purpose: Purpose,
        *,
        days: float = 30,
        valid_from: int = 0,
    ) -> dict[str, Any]:
        ctx = self.context()
        now = int(time.time())
        terms = GrantTerms(grantee, class_mask(classes), purpose, valid_from, now + int(days * 86400))
        dl = deadline()
        sig = self.wallet.sign_grant(ctx["consent_domain"], terms, ctx["consent_nonce"], dl)
        return dict(
            self.home.post(
                "/v1/consents",
                {
                    "patient": self.wallet.address,
                    "grantee": grantee,
                    "classes": terms.classes,
                    "purpose": int(purpose),
                    "valid_from": terms.valid_from,
                    "valid_until": terms.valid_until,
                    "nonce": ctx["consent_nonce"],
                    "deadline": dl,
                    "signature": "0x" + sig.hex(),
                    "chain_id": ctx["chain_id"],
                },
            )
        )

    def revoke(self, grant_id: int) -> dict[str, Any]:
        ctx = self.context()
        dl = deadline()
        sig = self.wallet.sign_revoke(ctx["consent_domain"], grant_id, ctx["consent_nonce"], dl)
        return dict(
            self.home.post(
                f"/v1/consents/{grant_id}/revoke",
                {
                    "patient": self.wallet.address,
                    "nonce": ctx["consent_nonce"],
                    "deadline": dl,
                    "signature": "0x" + sig.hex(),
                    "chain_id": ctx["chain_id"],
                },
            )
        )

    # ------------------------------------------------------------------ views

    def timeline(self, *, limit: int = 100) -> list[dict[str, Any]]:
        return _all_pages(self.session(), "/v1/me/timeline", limit)

    def accesses(self, *, limit: int = 100) -> list[dict[str, Any]]:
        return _all_pages(self.session(), "/v1/me/accesses", limit)

    def grants(self) -> list[dict[str, Any]]:
        return list(self.session().get("/v1/me/grants"))

    def notifications(self, url: str | None = None) -> list[dict[str, Any]]:
        return list(self.session(url).get("/v1/me/notifications"))

    def contacts(self, url: str | None = None) -> list[dict[str, Any]]:
        """Where the node at ``url`` (default: home) also sends my notifications."""
        return list(self.session(url).get("/v1/me/notification-contacts"))

    def add_contact(self, channel: str, destination: str, url: str | None = None) -> dict[str, Any]:
        """Also receive the node's notifications by ``channel`` (email, sms, voice, push) at ``destination``."""
        return dict(
            self.session(url).post("/v1/me/notification-contacts", {"channel": channel, "destination": destination})
        )

    def remove_contact(self, contact_id: int, url: str | None = None) -> None:
        self.session(url).request("DELETE", f"/v1/me/notification-contacts/{contact_id}")

    # ------------------------------------------------------------------ records

    def _entry(self, record_id: str) -> dict[str, Any]:
        for e in self.timeline(limit=1000):
            if e["record_id"].lower() == record_id.lower():
                return e
        raise MedLedgerError(f"record {record_id} is not in your timeline", code="record_not_found")

    def download(self, record_id: str) -> Download:
        """Fetch from the custodian, check SHA-256(ciphertext) against the chain's commitment, decrypt."""
        entry = self._entry(record_id)
        custodian_node = self.session(entry["custodian_endpoint"])
        body = custodian_node.get(f"/v1/records/{record_id}/release")
        ciphertext = base64.b64decode(body["ciphertext"])
        expected = bytes.fromhex(entry["commitment"].removeprefix("0x"))
        if not hmac.compare_digest(hashlib.sha256(ciphertext).digest(), expected):
            raise VerificationFailed("the custodian's ciphertext does not match the on-chain commitment")
        key = unwrap_with_x25519(base64.b64decode(body["wrapped_key"]), self.wallet.encryption_key)
        rid = bytes.fromhex(record_id.removeprefix("0x"))
        content = decrypt_record(ciphertext, key=key, record_id=rid, custodian=entry["custodian"])
        return Download(record_id, entry["custodian"], body["record"]["media_type"], content, entry["commitment"])

    def erase(self, record_id: str) -> dict[str, Any]:
        entry = self._entry(record_id)
        ctx = self.context()
        dl = deadline()
        rid = bytes.fromhex(record_id.removeprefix("0x"))
        sig = self.wallet.sign_erase(ctx["erasure_domain"], rid, dl)
        custodian = NodeClient(entry["custodian_endpoint"], timeout=self._timeout)
        try:
            return dict(
                custodian.post(
                    f"/v1/records/{record_id}/erase",
                    {"patient": self.wallet.address, "deadline": dl, "signature": "0x" + sig.hex()},
                )
            )
        finally:
            custodian.close()


def _all_pages(client: NodeClient, path: str, limit: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get(path, limit=min(limit, 1000), cursor=cursor)
        out += page["items"]
        cursor = page["next_cursor"]
        if cursor is None or len(out) >= limit:
            return out[:limit]
