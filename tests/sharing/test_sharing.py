"""The sharing story end to end on a real chain and two real nodes over HTTP: a patient grants Hospital B,
B's clinician reads A's record through B's node (A checks consent on chain and logs the access before the
key leaves), the patient sees the access, revokes, and B is denied."""

from __future__ import annotations

import time

import pytest

from clients.api import NodeRefused
from medledger.vocabulary import Purpose, RecordClass
from node.access_logger import AccessLogger
from tests.sharing.conftest import Network, wait_until


def test_grant_cross_institution_read_log_and_revoke(network: Network) -> None:
    patient, ids = network.patient(records=2)
    a, b = network.a, network.b
    clinician_b = b.staff("clinician")
    addr = patient.wallet.address

    # Before any grant: B's node can see the timeline (ledger metadata) but A refuses the content.
    timeline = clinician_b.get(f"/v1/patients/{addr}/timeline")["items"]
    assert {e["record_id"] for e in timeline} == set(ids)
    assert {e["custodian_name"] for e in timeline} == {"Hospital A"}
    with pytest.raises(NodeRefused) as denied:
        clinician_b.request("GET", f"/v1/patients/{addr}/records/{ids[0]}")
    assert denied.value.status == 403 and denied.value.code == "consent_denied"

    grant = patient.grant(b.address, [RecordClass.LAB], Purpose.TREATMENT, days=30)
    assert grant["grant_id"] >= 1 and grant["block_number"] > 0

    r = clinician_b.request("GET", f"/v1/patients/{addr}/records/{ids[0]}")
    assert r.headers["x-medledger-authorization"] == f"grant:{grant['grant_id']}"
    assert r.headers["x-medledger-custodian"] == a.address
    assert b'"resourceType": "Observation"' in r.content

    # The access was journaled at A before release, then logged on chain; both nodes index it.
    logger = AccessLogger(a.services.sessions, a.services.contracts.access_log)
    wait_until(lambda: logger.pending() == 0, what="access logged on chain")
    network.sync()
    accesses = patient.accesses()
    assert len(accesses) == 1
    got = accesses[0]
    assert (got["record_id"], got["accessor"], got["authorization"], got["auth_id"]) == (
        ids[0], b.address, "grant", grant["grant_id"]
    )  # fmt: skip
    assert got["accessor_name"] == "Hospital B" and got["staff_ref"] != "0x" + "00" * 32
    # Logged with the block A decided at, which A's reply cited: the audit judges the grant there.
    assert got["decided_block"] == int(r.headers["x-medledger-decided-block"])
    assert 0 < got["decided_block"] < got["block_number"]

    patient.revoke(grant["grant_id"])
    # A learns of the revocation from the chain: it is enforced for decisions made consent_head_max_age_ms
    # after its block (the receipt came back after the block was mined).
    time.sleep(a.services.decider.max_head_age)
    with pytest.raises(NodeRefused) as after:
        clinician_b.request("GET", f"/v1/patients/{addr}/records/{ids[1]}")
    assert after.value.status == 403 and after.value.code == "consent_denied"


def test_patient_downloads_own_record_verified_against_chain(network: Network) -> None:
    patient, ids = network.patient(records=1)
    got = patient.download(ids[0])
    assert got.custodian == network.a.address
    assert b'"resourceType": "Observation"' in got.content
    assert got.media_type.startswith("application/fhir+json")
