"""Indexer test helpers: a scenario that exercises every indexed event, and full-table dumps to compare."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, select

from indexer.db import index_engine
from indexer.follower import Indexer, IndexerConfig
from indexer.models import EVENT_TABLES, Block, Cursor
from medledger.chain.types import Access, GrantTerms, RecordAnchor
from medledger.vocabulary import AuthKind, Purpose, RecordClass, class_mask


def dump(engine: Engine) -> dict[str, Any]:
    """Every indexed fact, in key order: equal dumps mean equal indexes. Headers of event-less blocks are
    left out: which of them are kept depends on where ranges happened to end."""
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for table in EVENT_TABLES:
            out[table.name] = [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]
        b = Block.__table__
        out["blocks"] = [tuple(r) for r in conn.execute(select(b).where(b.c.has_events.is_(True)).order_by(b.c.number))]
        c = Cursor.__table__
        out["cursor"] = [tuple(r) for r in conn.execute(select(c))]
    return out


def rid() -> bytes:
    return secrets.token_bytes(32)


@dataclass
class Scenario:
    """What the scenario wrote, to compare the index against."""

    patient: Any
    other_patient: Any
    records: list[RecordAnchor] = field(default_factory=list)
    amended: tuple[bytes, bytes] = (b"", b"")
    erased: bytes = b""
    grant_ids: dict[str, int] = field(default_factory=dict)
    break_glass_id: int = 0
    access_blocks: list[int] = field(default_factory=list)
    digest_root: bytes = b""
    patient_key: bytes = b""


def run_scenario(chain: Any) -> Scenario:
    """Records (anchor, amend, erase), a digest, a patient key, grants (revoked, replaced, expiring), a
    break-glass window opened and closed, and accesses under each authorization kind."""
    patient, other = chain.new_patient(), chain.new_patient()
    s = Scenario(patient, other)
    a, b = chain.as_(chain.hospital_a), chain.as_(chain.hospital_b)
    base = 1_700_000_000
    recs = [
        RecordAnchor(rid(), patient.address, rid(), RecordClass.LAB, base + 10),
        RecordAnchor(rid(), patient.address, rid(), RecordClass.IMAGING, base + 20),
        RecordAnchor(rid(), patient.address, rid(), RecordClass.LAB, 0),  # no clinical time: block time sorts it
        RecordAnchor(rid(), other.address, rid(), RecordClass.ENCOUNTER, base + 5),
    ]
    a.records.anchor_records(recs)
    recs_b = [RecordAnchor(rid(), patient.address, rid(), RecordClass.MEDICATION, base + 30)]
    b.records.anchor_records(recs_b)
    new = RecordAnchor(rid(), patient.address, rid(), RecordClass.LAB, base + 11)
    a.records.amend_records([(recs[0].record_id, new)])
    a.records.erase_records([recs[1].record_id], rid())
    s.records = [*recs, *recs_b, new]
    s.amended = (recs[0].record_id, new.record_id)
    s.erased = recs[1].record_id
    s.digest_root = rid()
    a.records.anchor_digest(s.digest_root, 12, rid())
    s.patient_key = secrets.token_bytes(32)
    chain.as_(patient).consortium.register_patient_key(s.patient_key)

    now = chain.timestamp()
    pc = chain.as_(patient).consent
    labs = class_mask([RecordClass.LAB])
    s.grant_ids["revoked"] = pc.grant(GrantTerms(chain.hospital_b.address, labs, Purpose.TREATMENT, 0, now + 10_000))
    s.grant_ids["replaced"] = pc.grant(GrantTerms(chain.cdc.address, labs, Purpose.PUBLIC_HEALTH, 0, now + 10_000))
    chain.advance(5)  # so a time-based query can tell the replaced grant's time from its replacement's
    s.grant_ids["replacement"] = pc.grant(
        GrantTerms(chain.cdc.address, labs | class_mask([RecordClass.IMAGING]), Purpose.PUBLIC_HEALTH, 0, now + 20_000)
    )
    s.grant_ids["expiring"] = pc.grant(GrantTerms(chain.hospital_a.address, labs, Purpose.REFERRAL, 0, now + 100))
    r = b.access_log.log_accesses(
        [Access(patient.address, chain.hospital_b.address, new.record_id, Purpose.TREATMENT, AuthKind.GRANT, 1)]
    )
    s.access_blocks.append(r.block_number)
    pc.revoke(s.grant_ids["revoked"])
    # After revocation: the same grant no longer covers the access (the audit must say so).
    r = b.access_log.log_accesses(
        [Access(patient.address, chain.hospital_b.address, new.record_id, Purpose.TREATMENT, AuthKind.GRANT, 1)]
    )
    s.access_blocks.append(r.block_number)
    s.break_glass_id = b.consent.open_break_glass(patient.address, rid(), 3600)
    r = b.access_log.log_accesses(
        [
            Access(
                patient.address,
                chain.hospital_b.address,
                recs_b[0].record_id,
                Purpose.EMERGENCY,
                AuthKind.BREAK_GLASS,
                s.break_glass_id,
            ),
            Access(patient.address, patient.address, recs_b[0].record_id, Purpose.TREATMENT, AuthKind.PATIENT, 0),
        ]
    )
    s.access_blocks.append(r.block_number)
    chain.advance(60)
    b.consent.close_break_glass(s.break_glass_id)
    chain.advance(200)  # the "expiring" grant ends
    r = a.access_log.log_accesses(
        [
            Access(
                patient.address,
                chain.hospital_a.address,
                new.record_id,
                Purpose.REFERRAL,
                AuthKind.GRANT,
                s.grant_ids["expiring"],
            )
        ]
    )
    s.access_blocks.append(r.block_number)
    return s


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = index_engine(db_url)
    yield eng
    eng.dispose()


def make_indexer(engine: Engine, chain: Any, **config: Any) -> Indexer:
    return Indexer(engine, chain.rpc, chain.manifest, IndexerConfig(**config))
