"""The query API on an index of a real chain: timeline filters and cursors, consent state at a block,
break-glass windows, access history, counts, and precise errors for bad input."""

from __future__ import annotations

import pytest

from indexer.errors import BadQuery
from indexer.queries import IndexQueries, encode_cursor
from medledger.addresses import Address
from medledger.chain.types import Access, GrantTerms, RecordAnchor
from medledger.vocabulary import AuthKind, Purpose, RecordClass, class_mask

from .conftest import make_indexer, rid, run_scenario


@pytest.fixture
def indexed(chain, engine):
    s = run_scenario(chain)
    make_indexer(engine, chain).sync()
    return s, IndexQueries(engine)


def test_timeline_filters(chain, indexed):
    s, q = indexed
    p = s.patient.address
    items = q.timeline(p).items
    keys = [(e.event_time, e.block_number, e.log_index) for e in items]
    assert keys == sorted(keys, reverse=True) and len(items) == 5
    assert {e.record_class for e in q.timeline(p, classes=[int(RecordClass.LAB)]).items} == {int(RecordClass.LAB)}
    assert [e.custodian for e in q.timeline(p, custodian=chain.hospital_b.address).items] == [chain.hospital_b.address]
    window = q.timeline(p, since=1_700_000_011, until=1_700_000_020).items
    assert sorted(e.clinical_time for e in window) == [1_700_000_011, 1_700_000_020]
    assert q.timeline(p.lower()).items == items  # any hex case
    # Results carry Addresses: compared with any spelling's Address without lowercasing.
    assert all(type(e.patient) is Address and e.patient == Address(p.lower()) for e in items)
    assert all(type(e.custodian) is Address for e in items)


def test_timeline_pages_are_complete_and_stable(chain, engine):
    patient = chain.new_patient().address
    recs = [RecordAnchor(rid(), patient, rid(), RecordClass.LAB, 1_000 + i % 40) for i in range(120)]
    chain.as_(chain.hospital_a).records.anchor_records(recs)
    ix = make_indexer(engine, chain)
    ix.sync()
    q = IndexQueries(engine)
    first = q.timeline(patient, limit=25)
    # New records newer than everything arrive between page requests: the cursor is unaffected.
    chain.as_(chain.hospital_a).records.anchor_records([RecordAnchor(rid(), patient, rid(), RecordClass.LAB, 9_999)])
    ix.sync()
    seen = [e.record_id for e in first.items]
    cursor = first.next_cursor
    while cursor:
        page = q.timeline(patient, limit=25, cursor=cursor)
        seen += [e.record_id for e in page.items]
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 120
    assert set(seen) == {"0x" + r.record_id.hex() for r in recs}

    # Filters and a cursor together (each combination is its own prepared statement): pages of 7 within a time
    # window and a class list add up to the unpaged answer, newest first.
    def filtered(limit: int, cursor: str | None = None):
        return q.timeline(patient, classes=[int(RecordClass.LAB)], since=1_010, until=1_030, limit=limit, cursor=cursor)

    whole = [e.record_id for e in filtered(500).items]
    paged: list[str] = []
    page = filtered(7)
    while True:
        paged += [e.record_id for e in page.items]
        if page.next_cursor is None:
            break
        page = filtered(7, page.next_cursor)
    assert paged == whole and len(whole) == 3 * 21


def test_consent_state(chain, indexed):
    s, q = indexed
    p = s.patient.address
    active = {g.grant_id for g in q.active_grants(p)}
    # Revoked, replaced and expired grants are not active now; the replacement is.
    assert active == {s.grant_ids["replacement"]}
    replacement = q.grant(s.grant_ids["replacement"])
    assert replacement is not None
    at_then = {g.grant_id for g in q.active_grants(p, at_time=q.grant(s.grant_ids["replaced"]).granted_at)}
    assert s.grant_ids["replaced"] in at_then and s.grant_ids["replacement"] not in at_then
    assert [g.grant_id for g in q.grants_held(chain.cdc.address)] == [s.grant_ids["replacement"]]
    assert len(q.grants_held(chain.cdc.address, active_only=False)) == 2

    lab, cdc = int(RecordClass.LAB), chain.cdc.address
    held_then = q.consent_at(p, cdc, lab, Purpose.PUBLIC_HEALTH, block=q.grant(s.grant_ids["replaced"]).block_number)
    assert held_then is not None and held_then.grant_id == s.grant_ids["replaced"]
    held_now = q.consent_at(p, cdc, lab, Purpose.PUBLIC_HEALTH, block=replacement.block_number)
    assert held_now is not None and held_now.grant_id == s.grant_ids["replacement"]
    assert (
        q.consent_at(p, cdc, int(RecordClass.MEDICATION), Purpose.PUBLIC_HEALTH, block=replacement.block_number) is None
    )
    assert q.consent_at(p, cdc, lab, Purpose.TREATMENT, block=replacement.block_number) is None
    with pytest.raises(BadQuery, match="has no indexed time"):
        q.consent_at(p, cdc, lab, Purpose.PUBLIC_HEALTH, block=replacement.block_number - 1)  # an empty block


def test_access_audit_against_consent_at_its_block(chain, indexed):
    s, q = indexed
    accesses = q.accesses(patient=s.patient.address, limit=100).items
    assert len(accesses) == 5
    verdict = {
        (a.block_number, a.auth_kind, a.accessor): q.grant_for_access(a.block_number, a.log_index) for a in accesses
    }
    reasons = sorted(v.reason for v in verdict.values())
    assert reasons == sorted(["ok", "grant was revoked before the access", "ok", "ok", "grant had expired"])
    bg = next(v for v in verdict.values() if v.break_glass is not None)
    assert bg.valid and bg.break_glass.break_glass_id == s.break_glass_id


def test_access_is_judged_at_the_block_it_was_decided_at(chain, engine):
    """A custodian releases on the state after block D, the patient's revocation is mined, then the batched
    log lands: citing D the access was authorized; without a decision block, or citing the revocation's
    block, it was not."""
    patient, b = chain.new_patient(), chain.as_(chain.hospital_b)
    record = RecordAnchor(rid(), patient.address, rid(), RecordClass.LAB, 0)
    b.records.anchor_records([record])
    terms = GrantTerms(chain.hospital_b.address, class_mask([RecordClass.LAB]), Purpose.TREATMENT, 0, 2**40)
    grant_id = chain.as_(patient).consent.grant(terms)
    decided = chain.rpc.block_number()  # the state B decided on: the grant is in
    revoked = chain.as_(patient).consent.revoke(grant_id)  # mined before B's log

    def logged(decided_at: int) -> Access:
        return Access(patient.address, chain.hospital_b.address, record.record_id, Purpose.TREATMENT,
                      AuthKind.GRANT, grant_id, decided_at=decided_at)  # fmt: skip

    receipt = b.access_log.log_accesses([logged(decided), logged(0), logged(revoked.block_number)])
    make_indexer(engine, chain).sync()
    q = IndexQueries(engine)
    verdicts = [q.grant_for_access(receipt.block_number, i) for i in range(3)]
    assert [v.access.decided_block for v in verdicts] == [decided, 0, revoked.block_number]
    assert [(v.valid, v.reason) for v in verdicts] == [
        (True, "ok"),
        (False, "grant was revoked before the access"),
        (False, "grant was revoked before the access"),
    ]


def test_break_glass_windows(chain, indexed):
    s, q = indexed
    [w] = q.break_glass_windows(accessor=chain.hospital_b.address)
    assert w.ends_at < w.expires_at  # closed early
    assert q.break_glass_windows(patient=s.patient.address, open_at=w.opened_at) == [w]
    assert q.break_glass_windows(patient=s.patient.address, open_at=w.closed_at) == []


def test_access_history_filters_and_cursor(chain, indexed):
    s, q = indexed
    by_b = q.accesses(accessor=chain.hospital_b.address).items
    assert len(by_b) == 3 and all(a.accessor == chain.hospital_b.address for a in by_b)
    assert all(type(x) is Address for a in by_b for x in (a.patient, a.accessor, a.custodian))
    rec = "0x" + s.amended[1].hex()
    assert {a.record_id for a in q.accesses(record_id=rec).items} == {rec}
    pages, cursor = [], None
    while True:
        page = q.accesses(patient=s.patient.address, limit=2, cursor=cursor)
        pages += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == q.accesses(patient=s.patient.address, limit=100).items
    t = pages[0].block_time
    assert all(a.block_time >= t for a in q.accesses(since=t).items)


def test_counts(chain, indexed):
    s, q = indexed
    by_class = q.counts("class", patient=s.patient.address)
    assert by_class == {"lab": 3, "imaging": 1, "medication": 1}
    assert sum(q.counts("custodian").values()) == len(s.records)
    assert q.counts("day", until=1_700_000_100) == {"2023-11-14": 5}


def test_bad_input_is_a_precise_error(indexed):
    s, q = indexed
    for call, match in [
        (lambda: q.timeline("0x1234"), "patient must be 0x followed by 40 hex digits"),
        (lambda: q.timeline(s.patient.address, cursor="garbage"), "invalid timeline cursor"),
        (lambda: q.timeline(s.patient.address, cursor=encode_cursor("accesses", (1, 2))), "invalid timeline cursor"),
        (lambda: q.timeline(s.patient.address, limit=0), "limit must be"),
        (lambda: q.timeline(s.patient.address, since=10, until=5), "since"),
        (lambda: q.timeline(s.patient.address, classes=[]), "classes must be"),
        (lambda: q.accesses(record_id="0x12"), "record id must be"),
        (lambda: q.counts("week"), "counts by must be"),  # type: ignore[arg-type]
        (lambda: q.grant_for_access(10**9, 0), "no access logged"),
    ]:
        with pytest.raises(BadQuery, match=match) as info:
            call()
        assert info.value.code == "indexer_bad_query"
