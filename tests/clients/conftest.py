"""Auditor test scenario: real contract calls on the test chain, with known good and bad accesses."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from medledger.chain.deploy import manifest_path
from medledger.chain.types import Access, GrantTerms, RecordAnchor
from medledger.crypto import commitment
from medledger.vocabulary import AuthKind, Purpose, RecordClass, class_mask


def rid() -> bytes:
    return secrets.token_bytes(32)


@dataclass
class Scenario:
    """What was written, and which accesses the audit must flag (by their (block, log index))."""

    patient: Any
    clean_patient: Any
    deployments: Path
    #: Record name → (record id hex, ciphertext whose SHA-256 was anchored).
    records: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    grant_id: int = 0
    break_glass_id: int = 0
    #: Expected violations: (code, block, log index, reason substring).
    expected: list[tuple[str, int, int, str]] = field(default_factory=list)
    valid_blocks: list[int] = field(default_factory=list)
    break_glass_block: int = 0


def _anchor(chain: Any, custodian: Any, patient: Any, cls: RecordClass) -> tuple[RecordAnchor, bytes]:
    ciphertext = secrets.token_bytes(300)
    return RecordAnchor(rid(), patient.address, commitment(ciphertext), cls, 0), ciphertext


def _log(chain: Any, custodian: Any, *accesses: Access) -> tuple[int, str]:
    r = chain.as_(custodian).access_log.log_accesses(list(accesses))
    return r.block_number, r.tx_hash


def build(chain: Any, deployments: Path) -> Scenario:
    """Hospital A holds the patient's records and logs every release. Hospital B reads under a grant, under
    break-glass, for the wrong purpose and class, after revocation; Hospital A reads an erased record."""
    chain.manifest.save(manifest_path(chain.manifest.chain_id, deployments))
    patient, clean = chain.new_patient(), chain.new_patient()
    a, b = chain.hospital_a, chain.hospital_b
    s = Scenario(patient, clean, deployments)

    anchors = {
        "lab1": _anchor(chain, a, patient, RecordClass.LAB),
        "imaging": _anchor(chain, a, patient, RecordClass.IMAGING),
        "lab2": _anchor(chain, a, patient, RecordClass.LAB),
        "erased": _anchor(chain, a, patient, RecordClass.LAB),
        "clean": _anchor(chain, a, clean, RecordClass.ENCOUNTER),
    }
    chain.as_(a).records.anchor_records([x for x, _ in anchors.values()])
    s.records = {k: ("0x" + x.record_id.hex(), ct) for k, (x, ct) in anchors.items()}
    rec = {k: x.record_id for k, (x, _) in anchors.items()}

    now = chain.timestamp()
    s.grant_id = chain.as_(patient).consent.grant(
        GrantTerms(b.address, class_mask([RecordClass.LAB]), Purpose.TREATMENT, 0, now + 10_000)
    )
    # Clean patient: one read under a grant, nothing else.
    gid_clean = chain.as_(clean).consent.grant(
        GrantTerms(b.address, class_mask([RecordClass.ENCOUNTER]), Purpose.REFERRAL, 0, now + 10_000)
    )
    block, _ = _log(
        chain, a, Access(clean.address, b.address, rec["clean"], Purpose.REFERRAL, AuthKind.GRANT, gid_clean)
    )
    s.valid_blocks.append(block)

    # In order: a read under the grant, the custodian's own staff, the patient themself.
    block, _ = _log(
        chain,
        a,
        Access(patient.address, b.address, rec["lab1"], Purpose.TREATMENT, AuthKind.GRANT, s.grant_id, rid()),
        Access(patient.address, a.address, rec["lab1"], Purpose.TREATMENT, AuthKind.CUSTODIAN, 0, rid()),
        Access(patient.address, patient.address, rec["lab1"], Purpose.TREATMENT, AuthKind.PATIENT, 0),
    )
    s.valid_blocks.append(block)

    # Break-glass: allowed, but flagged everywhere.
    s.break_glass_id = chain.as_(b).consent.open_break_glass(patient.address, rid(), 3600)
    s.break_glass_block, _ = _log(
        chain,
        a,
        Access(patient.address, b.address, rec["imaging"], Purpose.EMERGENCY, AuthKind.BREAK_GLASS, s.break_glass_id),
    )

    # Wrong purpose and wrong class under a live grant.
    block, _ = _log(
        chain,
        a,
        Access(patient.address, b.address, rec["lab1"], Purpose.RESEARCH, AuthKind.GRANT, s.grant_id),
        Access(patient.address, b.address, rec["imaging"], Purpose.TREATMENT, AuthKind.GRANT, s.grant_id),
    )
    s.expected += [
        ("access_unauthorized", block, 0, "grant is for purpose treatment, access for research"),
        ("access_unauthorized", block, 1, "grant does not cover record class 4"),
    ]

    # Revoked, then cited anyway.
    chain.as_(patient).consent.revoke(s.grant_id)
    block, _ = _log(
        chain, a, Access(patient.address, b.address, rec["lab2"], Purpose.TREATMENT, AuthKind.GRANT, s.grant_id)
    )
    s.expected.append(("access_unauthorized", block, 0, "grant was revoked before the access"))

    # Erased, then read by the custodian's own staff (authorized kind, but the record is gone).
    chain.as_(a).records.erase_records([rec["erased"]], rid())
    block, _ = _log(
        chain, a, Access(patient.address, a.address, rec["erased"], Purpose.TREATMENT, AuthKind.CUSTODIAN, 0)
    )
    s.expected.append(("access_after_erasure", block, 0, "the record was erased in block"))
    return s


@pytest.fixture
def scenario(chain: Any, tmp_path: Path) -> Scenario:
    return build(chain, tmp_path / "deployments")
