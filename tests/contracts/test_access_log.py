"""AccessLog: batched append-only logging, sequence numbers, decision blocks, validation, role gating."""

from __future__ import annotations

import secrets

import pytest

from medledger.chain.abi import ContractRevert
from medledger.chain.types import Access
from medledger.vocabulary import AuthKind, Purpose


def access(chain, kind: AuthKind = AuthKind.GRANT, auth_id: int = 7) -> Access:
    return Access(
        patient=chain.new_patient().address,
        accessor=chain.hospital_b.address,
        record_id=secrets.token_bytes(32),
        purpose=Purpose.REFERRAL,
        auth_kind=kind,
        auth_id=auth_id,
        staff_ref=secrets.token_bytes(32),
    )


def test_batch_logs_one_event_per_access_with_running_sequence(chain):
    log = chain.as_(chain.hospital_a).access_log
    first = [access(chain), access(chain, AuthKind.BREAK_GLASS, 3)]
    second = [access(chain, AuthKind.PATIENT, 0)]
    r1 = log.log_accesses(first)
    r2 = chain.as_(chain.cdc).access_log.log_accesses(second)

    events = log.events(r1) + log.events(r2)
    assert [e.args["sequence"] for e in events] == [1, 2, 3]
    assert log.access_count() == 3
    for ev, a, custodian in zip(
        events, [*first, *second], [chain.hospital_a, chain.hospital_a, chain.cdc], strict=True
    ):
        assert ev.name == "AccessLogged"
        assert ev.args["patient"] == a.patient
        assert ev.args["accessor"] == a.accessor
        assert ev.args["recordId"] == a.record_id
        assert ev.args["custodian"] == custodian.address
        assert ev.args["purpose"] == a.purpose
        assert ev.args["authKind"] == a.auth_kind
        assert ev.args["authId"] == a.auth_id
        assert ev.args["staffRef"] == a.staff_ref
        assert ev.args["decidedAt"] == 0  # none cited


def test_decision_block_must_be_one_of_the_last_256(chain):
    log = chain.as_(chain.hospital_a).access_log
    assert log.max_decision_age() == 256
    head = chain.rpc.block_number()
    cited = Access(**{**access(chain).__dict__, "decided_at": head})
    (event,) = log.events(log.log_accesses([cited]))
    assert event.args["decidedAt"] == head

    logging_block = chain.rpc.block_number() + 1
    future = Access(**{**access(chain).__dict__, "decided_at": logging_block})  # not decided yet when logged
    with pytest.raises(ContractRevert) as exc:
        log.log_accesses([access(chain), future])
    assert exc.value.error == "InvalidDecisionBlock"
    assert exc.value.args_by_name == {"index": 1, "decidedAt": logging_block}

    old = chain.rpc.block_number()
    chain.rpc.call("anvil_mine", [hex(256)])
    # Logged in head + 1 = old + 257: the decision is 257 blocks back, one too many.
    with pytest.raises(ContractRevert) as exc:
        log.log_accesses([Access(**{**access(chain).__dict__, "decided_at": old})])
    assert exc.value.error == "InvalidDecisionBlock"
    (event,) = log.events(log.log_accesses([Access(**{**access(chain).__dict__, "decided_at": old + 1})]))
    assert event.args["decidedAt"] == old + 1
    assert log.access_count() == 2


@pytest.mark.parametrize("field", ["patient", "accessor", "record_id", "auth_kind"])
def test_invalid_entries_name_their_index_and_log_nothing(chain, field):
    log = chain.as_(chain.hospital_a).access_log
    zero = {"patient": "0x" + "00" * 20, "accessor": "0x" + "00" * 20, "record_id": b"\x00" * 32, "auth_kind": 0}
    good = access(chain)
    bad = Access(**{**good.__dict__, field: zero[field]})
    with pytest.raises(ContractRevert) as exc:
        log.log_accesses([good, bad])
    assert exc.value.error == "InvalidAccess"
    assert exc.value.args_by_name == {"index": 1}
    assert log.access_count() == 0


def test_empty_batch_rejected(chain):
    with pytest.raises(ContractRevert) as exc:
        chain.as_(chain.hospital_a).access_log.log_accesses([])
    assert exc.value.error == "EmptyBatch"


@pytest.mark.parametrize("who", ["auditor", "outsider"])
def test_only_custodians_write_the_log(chain, who):
    account = chain.auditor if who == "auditor" else chain.outsider()
    with pytest.raises(ContractRevert) as exc:
        chain.as_(account).access_log.log_accesses([access(chain)])
    assert exc.value.error == "MissingRole"
