"""Consortium: k-of-n governance, member self-service, nodes, patient keys (direct and EIP-712 relayed) and the
Besu permissioning views, against the real contract on Anvil."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from medledger.addresses import Address
from medledger.chain.abi import ContractRevert
from medledger.chain.contracts import ConsortiumClient
from medledger.chain.typed_data import CONSORTIUM_DOMAIN_NAME, domain, register_key_typed_data, sign_typed_data
from medledger.errors import InputError
from medledger.vocabulary import Role
from tests.conftest import Chain

DAY = 24 * 60 * 60
VOTING_PERIOD = 7 * DAY
ZERO = "0x" + "00" * 20
ADMIT, REMOVE, SET_ROLES, SET_THRESHOLD = 1, 2, 3, 4
HOST, PORT = "10.0.0.7", 30303
RELAYER = int(Role.RELAYER)


# ---------------------------------------------------------------------------------------------------- helpers


def key(fill: int = 1) -> bytes:
    """A 32-byte stand-in for an X25519 public key."""
    return bytes([fill]) * 32


def enode(i: int) -> str:
    """A well-formed enode id: 128 lowercase hex characters."""
    return f"{i:0128x}"


@contextmanager
def reverts(error: str, **args: Any) -> Iterator[None]:
    """Expect a ContractRevert with custom error ``error`` whose named arguments include ``args`` (addresses
    checksummed)."""
    with pytest.raises(ContractRevert) as exc:
        yield
    assert exc.value.error == error, str(exc.value)
    for name, expected in args.items():
        assert exc.value.args_by_name[name] == expected, (name, exc.value.args_by_name)


def cons(chain: Chain, account: LocalAccount) -> ConsortiumClient:
    return chain.as_(account).consortium


def vote(chain: Chain, proposal_id: int, *approvers: LocalAccount) -> None:
    for a in approvers:
        cons(chain, a).approve(proposal_id)


def pass_(chain: Chain, proposal_id: int) -> None:
    """Hospital B approves (Hospital A proposed) and Hospital A executes: threshold 2 reached."""
    vote(chain, proposal_id, chain.hospital_b)
    cons(chain, chain.hospital_a).execute(proposal_id)


def propose_admit(
    chain: Chain,
    account: str,
    roles: Role = Role.CLINIC,
    name: str = "Clinic C",
    endpoint: str = "https://clinic-c.example:8443",
    encryption_key: bytes | None = None,
    proposer: LocalAccount | None = None,
) -> int:
    c = cons(chain, proposer or chain.hospital_a)
    return c.propose_admission(account, roles, name, endpoint, key(7) if encryption_key is None else encryption_key)


def admit(chain: Chain, account: str, roles: Role = Role.CLINIC) -> None:
    pass_(chain, propose_admit(chain, account, roles))


def remove(chain: Chain, account: str) -> None:
    pass_(chain, cons(chain, chain.hospital_a).propose_removal(account))


def set_threshold(chain: Chain, value: int) -> None:
    pid = cons(chain, chain.hospital_a).propose_threshold(value)
    vote(chain, pid, chain.hospital_b)
    cons(chain, chain.hospital_a).execute(pid)


def tx_count(chain: Chain, account: LocalAccount) -> int:
    return int(chain.rpc.call("eth_getTransactionCount", [account.address, "latest"]), 16)


def signed_key(
    chain: Chain,
    signer: LocalAccount,
    patient: str,
    encryption_key: bytes,
    nonce: int,
    deadline: int,
    *,
    chain_id: int | None = None,
    contract: str | None = None,
) -> bytes:
    dom = domain(
        CONSORTIUM_DOMAIN_NAME,
        chain.rpc.chain_id() if chain_id is None else chain_id,
        contract or chain.read.consortium.address,
    )
    return sign_typed_data(signer, register_key_typed_data(dom, patient, encryption_key, nonce, deadline))


def relay_by_a(chain: Chain, patient: str, encryption_key: bytes, nonce: int, deadline: int, sig: bytes) -> Any:
    return cons(chain, chain.hospital_a).register_patient_key_by_sig(patient, encryption_key, nonce, deadline, sig)


# ---------------------------------------------------------------------------------------------------- admission


def test_admission_by_vote(chain):
    newcomer = chain.outsider(0)
    read = chain.read.consortium
    t0 = chain.timestamp()
    pid = propose_admit(chain, newcomer.address, Role.CLINIC | Role.LAB, "Clinic C", "https://c.example", key(9))

    # The proposer's approval is counted at once.
    assert read.approval_count(pid) == 1
    p = read.get_proposal(pid)
    assert (p.kind, p.executed, p.roles, p.new_threshold) == (ADMIT, False, int(Role.CLINIC | Role.LAB), 0)
    assert (p.name, p.endpoint, p.encryption_key) == ("Clinic C", "https://c.example", key(9))
    assert to_checksum_address(p.proposer) == chain.hospital_a.address
    assert to_checksum_address(p.subject) == newcomer.address
    assert t0 <= p.expires_at - VOTING_PERIOD <= t0 + 5
    assert not read.is_member(newcomer.address)

    receipt = cons(chain, chain.hospital_b).approve(pid)
    approved = [e.args for e in read.events(receipt) if e.name == "ProposalApproved"]
    assert approved == [{"proposalId": pid, "approver": chain.hospital_b.address, "approvals": 2}]
    assert read.approval_count(pid) == 2

    receipt = cons(chain, chain.cdc).execute(pid)
    names = [e.name for e in read.events(receipt)]
    assert names == ["MemberAdmitted", "ProposalExecuted"]

    m = read.get_member(newcomer.address)
    assert m.active and m.roles == Role.CLINIC | Role.LAB
    assert (m.name, m.endpoint, m.encryption_key) == ("Clinic C", "https://c.example", key(9))
    assert m.admitted_at >= p.expires_at - VOTING_PERIOD
    assert read.is_member(newcomer.address)
    assert read.member_count() == 5 and newcomer.address in read.members()
    assert read.has_any_role(newcomer.address, Role.LAB)
    assert not read.has_any_role(newcomer.address, Role.HOSPITAL)
    assert read.transaction_allowed(newcomer.address)
    assert read.get_proposal(pid).executed

    # The new member can govern at once.
    pid2 = cons(chain, newcomer).propose_threshold(3)
    assert read.approval_count(pid2) == 1


def test_threshold_not_reached_and_revert_sends_nothing(chain):
    pid = propose_admit(chain, chain.outsider(0).address)
    sent = tx_count(chain, chain.hospital_a)
    with reverts("ThresholdNotReached", proposalId=pid, approvals=1, threshold=2):
        cons(chain, chain.hospital_a).execute(pid)
    assert tx_count(chain, chain.hospital_a) == sent  # the revert surfaced at estimation; no transaction
    assert not chain.read.consortium.is_member(chain.outsider(0).address)


def test_double_approve_is_rejected(chain):
    pid = propose_admit(chain, chain.outsider(0).address)
    with reverts("AlreadyApproved", proposalId=pid, approver=chain.hospital_a.address):
        cons(chain, chain.hospital_a).approve(pid)
    vote(chain, pid, chain.hospital_b)
    with reverts("AlreadyApproved", proposalId=pid, approver=chain.hospital_b.address):
        cons(chain, chain.hospital_b).approve(pid)
    assert chain.read.consortium.approval_count(pid) == 2


def test_non_member_cannot_propose_approve_or_execute(chain):
    outsider = chain.outsider(1)
    c = cons(chain, outsider)
    pid = propose_admit(chain, chain.outsider(0).address)
    with reverts("NotMember", account=outsider.address):
        c.propose_admission(chain.outsider(2).address, Role.CLINIC, "X", "https://x", key())
    with reverts("NotMember", account=outsider.address):
        c.propose_removal(chain.auditor.address)
    with reverts("NotMember", account=outsider.address):
        c.propose_roles(chain.auditor.address, Role.LAB)
    with reverts("NotMember", account=outsider.address):
        c.propose_threshold(1)
    with reverts("NotMember", account=outsider.address):
        c.approve(pid)
    vote(chain, pid, chain.hospital_b)
    with reverts("NotMember", account=outsider.address):
        c.execute(pid)


def test_execute_twice_and_approve_after_execution(chain):
    pid = propose_admit(chain, chain.outsider(0).address)
    pass_(chain, pid)
    with reverts("ProposalAlreadyExecuted", proposalId=pid):
        cons(chain, chain.hospital_b).execute(pid)
    with reverts("ProposalAlreadyExecuted", proposalId=pid):
        cons(chain, chain.cdc).approve(pid)


def test_expired_proposal_cannot_be_approved_or_executed(chain):
    assert chain.read.consortium.voting_period() == VOTING_PERIOD
    pid = propose_admit(chain, chain.outsider(0).address)
    vote(chain, pid, chain.hospital_b)  # threshold reached, but too late to execute
    expires_at = chain.read.consortium.get_proposal(pid).expires_at
    chain.advance(VOTING_PERIOD + 1)
    with reverts("ProposalExpired", proposalId=pid, expiredAt=expires_at):
        cons(chain, chain.cdc).approve(pid)
    with reverts("ProposalExpired", proposalId=pid, expiredAt=expires_at):
        cons(chain, chain.hospital_a).execute(pid)
    assert not chain.read.consortium.is_member(chain.outsider(0).address)


def test_proposal_still_open_before_expiry(chain):
    pid = propose_admit(chain, chain.outsider(0).address)
    chain.advance(VOTING_PERIOD - 60)
    pass_(chain, pid)
    assert chain.read.consortium.is_member(chain.outsider(0).address)


def test_unknown_proposal(chain):
    a = cons(chain, chain.hospital_a)
    last = propose_admit(chain, chain.outsider(0).address)
    for pid in (0, last + 1):
        with reverts("UnknownProposal", proposalId=pid):
            a.approve(pid)
        with reverts("UnknownProposal", proposalId=pid):
            a.execute(pid)
        with reverts("UnknownProposal", proposalId=pid):
            chain.read.consortium.get_proposal(pid)


def test_admitting_an_existing_member_is_rejected(chain):
    with reverts("AlreadyMember", account=chain.auditor.address):
        propose_admit(chain, chain.auditor.address)
    # Two competing admissions of the same account: the second is caught at execution.
    first = propose_admit(chain, chain.outsider(0).address)
    second = propose_admit(chain, chain.outsider(0).address, proposer=chain.cdc)
    pass_(chain, first)
    vote(chain, second, chain.hospital_b)
    with reverts("AlreadyMember", account=chain.outsider(0).address):
        cons(chain, chain.hospital_a).execute(second)


@pytest.mark.parametrize(
    ("account", "roles", "name", "endpoint", "enc", "error", "args"),
    [
        (ZERO, Role.CLINIC, "C", "https://c", key(), "ZeroAddress", {}),
        (None, Role(0), "C", "https://c", key(), "InvalidRoles", {"roles": 0}),
        (None, Role(1 << 9), "C", "https://c", key(), "InvalidRoles", {"roles": 1 << 9}),
        (None, Role.LAB | Role(1 << 9), "C", "https://c", key(), "InvalidRoles", {"roles": (1 << 9) | 4}),
        (None, Role.CLINIC, "", "https://c", key(), "InvalidText", {}),
        (None, Role.CLINIC, "n" * 257, "https://c", key(), "InvalidText", {}),
        (None, Role.CLINIC, "é" * 129, "https://c", key(), "InvalidText", {}),  # 258 bytes, 129 characters
        (None, Role.CLINIC, "C", "", key(), "InvalidText", {}),
        (None, Role.CLINIC, "C", "e" * 257, key(), "InvalidText", {}),
        (None, Role.CLINIC, "C", "https://c", b"", "InvalidEncryptionKey", {"length": 0}),
        (None, Role.CLINIC, "C", "https://c", key()[:31], "InvalidEncryptionKey", {"length": 31}),
        (None, Role.CLINIC, "C", "https://c", key() + b"\x01", "InvalidEncryptionKey", {"length": 33}),
    ],
    ids=[
        "zero-address",
        "roles-0",
        "roles-bit9",
        "roles-mixed-bit9",
        "name-empty",
        "name-257",
        "name-258-bytes",
        "endpoint-empty",
        "endpoint-257",
        "key-0",
        "key-31",
        "key-33",
    ],
)
def test_admission_input_validation(chain, account, roles, name, endpoint, enc, error, args):
    with reverts(error, **args):
        propose_admit(chain, account or chain.outsider(0).address, roles, name, endpoint, enc)


def test_admission_accepts_limits(chain):
    # 256 bytes (128 two-byte characters) for name and endpoint, every defined role bit.
    pid = propose_admit(chain, chain.outsider(0).address, Role((1 << 9) - 1), "é" * 128, "e" * 256)
    pass_(chain, pid)
    m = chain.read.consortium.get_member(chain.outsider(0).address)
    assert (m.name, m.endpoint, int(m.roles)) == ("é" * 128, "e" * 256, (1 << 9) - 1)


# ---------------------------------------------------------------------------------------------------- k-of-n


def test_removed_voter_no_longer_counts(chain):
    read = chain.read.consortium
    pid = propose_admit(chain, chain.outsider(0).address, proposer=chain.auditor)
    vote(chain, pid, chain.cdc)
    assert read.approval_count(pid) == 2

    remove(chain, chain.auditor.address)
    assert read.approval_count(pid) == 1
    with reverts("ThresholdNotReached", proposalId=pid, approvals=1, threshold=2):
        cons(chain, chain.hospital_a).execute(pid)
    vote(chain, pid, chain.hospital_a)
    assert read.approval_count(pid) == 2
    cons(chain, chain.hospital_a).execute(pid)
    assert read.is_member(chain.outsider(0).address)


def test_removal_leaving_fewer_members_than_threshold_is_rejected(chain):
    set_threshold(chain, 4)
    assert chain.read.consortium.threshold() == 4
    pid = cons(chain, chain.hospital_a).propose_removal(chain.auditor.address)
    vote(chain, pid, chain.hospital_b, chain.cdc, chain.auditor)
    with reverts("ThresholdUnreachable", memberCountAfter=3, threshold=4):
        cons(chain, chain.hospital_a).execute(pid)
    assert chain.read.consortium.is_member(chain.auditor.address)


def test_removal_down_to_threshold_then_unreachable(chain):
    remove(chain, chain.auditor.address)
    remove(chain, chain.cdc.address)
    assert chain.read.consortium.member_count() == 2
    pid = cons(chain, chain.hospital_a).propose_removal(chain.hospital_b.address)
    vote(chain, pid, chain.hospital_b)
    with reverts("ThresholdUnreachable", memberCountAfter=1, threshold=2):
        cons(chain, chain.hospital_a).execute(pid)


@pytest.mark.parametrize("value", [0, 5])
def test_propose_threshold_out_of_range(chain, value):
    with reverts("InvalidThreshold", threshold=value, memberCount=4):
        cons(chain, chain.hospital_a).propose_threshold(value)


def test_threshold_proposal_rechecked_against_member_count_at_execution(chain):
    pid = cons(chain, chain.hospital_a).propose_threshold(4)
    vote(chain, pid, chain.hospital_b)
    remove(chain, chain.auditor.address)
    with reverts("InvalidThreshold", threshold=4, memberCount=3):
        cons(chain, chain.hospital_a).execute(pid)
    assert chain.read.consortium.threshold() == 2


def test_threshold_change_by_vote_takes_effect(chain):
    read = chain.read.consortium
    pid = cons(chain, chain.hospital_a).propose_threshold(1)
    p = read.get_proposal(pid)
    assert (p.kind, p.new_threshold, p.subject.lower()) == (SET_THRESHOLD, 1, ZERO)
    pass_(chain, pid)
    assert read.threshold() == 1

    # A single approval (the proposer's) now suffices.
    solo = propose_admit(chain, chain.outsider(0).address, proposer=chain.auditor)
    cons(chain, chain.auditor).execute(solo)
    assert read.is_member(chain.outsider(0).address)

    # Raise it to 3 with one vote; then two approvals are no longer enough.
    up = cons(chain, chain.cdc).propose_threshold(3)
    cons(chain, chain.cdc).execute(up)
    assert read.threshold() == 3
    pid = propose_admit(chain, chain.outsider(1).address)
    vote(chain, pid, chain.hospital_b)
    with reverts("ThresholdNotReached", proposalId=pid, approvals=2, threshold=3):
        cons(chain, chain.hospital_a).execute(pid)
    vote(chain, pid, chain.outsider(0))
    cons(chain, chain.hospital_a).execute(pid)
    assert read.is_member(chain.outsider(1).address)


def test_role_change_by_vote(chain):
    read = chain.read.consortium
    auditor = chain.auditor.address
    assert not read.has_any_role(auditor, Role.RELAYER)
    pid = cons(chain, chain.hospital_a).propose_roles(auditor, Role.AUDITOR | Role.RELAYER)
    p = read.get_proposal(pid)
    assert (p.kind, p.roles) == (SET_ROLES, int(Role.AUDITOR | Role.RELAYER))
    assert not read.has_any_role(auditor, Role.RELAYER)  # nothing changes before execution

    vote(chain, pid, chain.hospital_b)
    receipt = cons(chain, chain.hospital_a).execute(pid)
    changed = [e.args for e in read.events(receipt) if e.name == "MemberRolesChanged"]
    assert changed == [
        {"account": auditor, "previousRoles": int(Role.AUDITOR), "roles": int(Role.AUDITOR | Role.RELAYER)}
    ]
    assert read.has_any_role(auditor, Role.RELAYER)
    assert read.get_member(auditor).roles == Role.AUDITOR | Role.RELAYER

    # Roles are replaced, not added: Hospital B loses HOSPITAL and EMERGENCY.
    pass_(chain, cons(chain, chain.hospital_a).propose_roles(chain.hospital_b.address, Role.RELAYER))
    assert not read.has_any_role(chain.hospital_b.address, Role.HOSPITAL | Role.EMERGENCY)
    assert read.has_any_role(chain.hospital_b.address, Role.RELAYER)


def test_propose_roles_and_removal_validation(chain):
    a = cons(chain, chain.hospital_a)
    outsider = chain.outsider(0).address
    with reverts("NotMember", account=outsider):
        a.propose_roles(outsider, Role.CLINIC)
    with reverts("NotMember", account=outsider):
        a.propose_removal(outsider)
    with reverts("InvalidRoles", roles=0):
        a.propose_roles(chain.auditor.address, Role(0))
    with reverts("InvalidRoles", roles=1 << 9):
        a.propose_roles(chain.auditor.address, Role(1 << 9))


def test_role_change_of_member_removed_meanwhile_is_rejected(chain):
    pid = cons(chain, chain.hospital_a).propose_roles(chain.auditor.address, Role.RESEARCHER)
    vote(chain, pid, chain.hospital_b)
    remove(chain, chain.auditor.address)
    with reverts("NotMember", account=chain.auditor.address):
        cons(chain, chain.hospital_a).execute(pid)


def test_removal_of_member_removed_meanwhile_is_rejected(chain):
    first = cons(chain, chain.hospital_a).propose_removal(chain.auditor.address)
    second = cons(chain, chain.cdc).propose_removal(chain.auditor.address)
    pass_(chain, first)
    vote(chain, second, chain.hospital_b)
    with reverts("NotMember", account=chain.auditor.address):
        cons(chain, chain.hospital_a).execute(second)


def test_removed_member_loses_everything(chain):
    read = chain.read.consortium
    auditor = chain.auditor
    open_pid = propose_admit(chain, chain.outsider(0).address)
    pid = cons(chain, chain.hospital_a).propose_removal(auditor.address)
    assert read.get_proposal(pid).kind == REMOVE
    vote(chain, pid, chain.hospital_b)
    receipt = cons(chain, chain.hospital_a).execute(pid)
    assert [e.args for e in read.events(receipt) if e.name == "MemberRemoved"] == [{"account": auditor.address}]

    assert not read.is_member(auditor.address)
    assert not read.has_any_role(auditor.address, Role.AUDITOR)
    assert not read.transaction_allowed(auditor.address)
    assert read.member_count() == 3 and auditor.address not in read.members()
    m = read.get_member(auditor.address)
    assert not m.active and m.name == "Regional Audit Office" and m.roles == Role.AUDITOR  # record kept

    c = cons(chain, auditor)
    with reverts("NotMember", account=auditor.address):
        c.propose_threshold(1)
    with reverts("NotMember", account=auditor.address):
        c.approve(open_pid)
    with reverts("NotMember", account=auditor.address):
        c.update_profile("https://audit.example", key(3))
    with reverts("NotMember", account=auditor.address):
        c.add_node(enode(1), HOST, PORT)


def test_removed_member_can_be_readmitted(chain):
    remove(chain, chain.auditor.address)
    admit(chain, chain.auditor.address, Role.RESEARCHER)
    m = chain.read.consortium.get_member(chain.auditor.address)
    assert m.active and m.roles == Role.RESEARCHER and m.name == "Clinic C"
    assert chain.read.consortium.member_count() == 4


# ---------------------------------------------------------------------------------------------------- self-service


def test_update_profile(chain):
    read = chain.read.consortium
    before = read.get_member(chain.cdc.address)
    receipt = cons(chain, chain.cdc).update_profile("https://cdc.example/api", key(42))
    events = [e.args for e in read.events(receipt) if e.name == "MemberProfileUpdated"]
    assert events == [{"account": chain.cdc.address, "endpoint": "https://cdc.example/api", "encryptionKey": key(42)}]
    after = read.get_member(chain.cdc.address)
    assert (after.endpoint, after.encryption_key) == ("https://cdc.example/api", key(42))
    assert (after.name, after.roles, after.admitted_at, after.active) == (
        before.name,
        before.roles,
        before.admitted_at,
        True,
    )


@pytest.mark.parametrize(
    ("endpoint", "enc", "error", "args"),
    [
        ("https://x", key()[:31], "InvalidEncryptionKey", {"length": 31}),
        ("https://x", key() + b"\x00", "InvalidEncryptionKey", {"length": 33}),
        ("", key(), "InvalidText", {}),
        ("e" * 257, key(), "InvalidText", {}),
    ],
    ids=["key-31", "key-33", "endpoint-empty", "endpoint-257"],
)
def test_update_profile_validation(chain, endpoint, enc, error, args):
    before = chain.read.consortium.get_member(chain.cdc.address)
    with reverts(error, **args):
        cons(chain, chain.cdc).update_profile(endpoint, enc)
    assert chain.read.consortium.get_member(chain.cdc.address) == before


def test_update_profile_by_non_member(chain):
    outsider = chain.outsider(0)
    with reverts("NotMember", account=outsider.address):
        cons(chain, outsider).update_profile("https://x", key())


# ---------------------------------------------------------------------------------------------------- nodes


def test_add_and_remove_node(chain):
    read = chain.read.consortium
    a = cons(chain, chain.hospital_a)
    receipt = a.add_node(enode(1), HOST, PORT)
    assert [e.args for e in read.events(receipt) if e.name == "NodeAdded"] == [
        {"owner": chain.hospital_a.address, "enodeId": enode(1), "host": HOST, "port": PORT}
    ]
    cons(chain, chain.hospital_b).add_node(enode(2), "10.0.0.8", 30304)
    nodes = read.nodes()
    assert {(n.owner, n.enode_id, n.host, n.port) for n in nodes} == {
        (chain.hospital_a.address, enode(1), HOST, PORT),
        (chain.hospital_b.address, enode(2), "10.0.0.8", 30304),
    }
    assert read.connection_allowed(enode(1), HOST, PORT)

    receipt = a.remove_node(enode(1))
    assert [e.args for e in read.events(receipt) if e.name == "NodeRemoved"] == [
        {"owner": chain.hospital_a.address, "enodeId": enode(1)}
    ]
    assert [n.enode_id for n in read.nodes()] == [enode(2)]
    assert not read.connection_allowed(enode(1), HOST, PORT)
    with reverts("UnknownNode", enodeId=enode(1)):
        a.remove_node(enode(1))
    a.add_node(enode(1), "10.0.0.9", 1)  # may be registered again, with new coordinates
    assert read.connection_allowed(enode(1), "10.0.0.9", 1)


@pytest.mark.parametrize(
    "bad",
    [
        "a" * 127,
        "a" * 129,
        "",
        "A" * 128,
        "a" * 127 + "F",
        "g" + "a" * 127,
        "0x" + "a" * 126,
        "a" * 127 + " ",
        "a" * 127 + ":",  # the byte after '9'
        "a" * 127 + "`",  # the byte before 'a'
        "a" * 127 + "/",  # the byte before '0'
    ],
    ids=["127", "129", "empty", "upper", "upper-last", "non-hex", "0x-prefix", "space", "colon", "backtick", "slash"],
)
def test_invalid_enode_id(chain, bad):
    with reverts("InvalidEnodeId"):
        cons(chain, chain.hospital_a).add_node(bad, HOST, PORT)


@pytest.mark.parametrize("host", ["", "h" * 257])
def test_invalid_node_host(chain, host):
    with reverts("InvalidText"):
        cons(chain, chain.hospital_a).add_node(enode(1), host, PORT)


def test_duplicate_node_is_rejected_for_any_member(chain):
    cons(chain, chain.hospital_a).add_node(enode(1), HOST, PORT)
    with reverts("NodeAlreadyRegistered", enodeId=enode(1)):
        cons(chain, chain.hospital_a).add_node(enode(1), "10.0.0.99", 1)
    with reverts("NodeAlreadyRegistered", enodeId=enode(1)):
        cons(chain, chain.hospital_b).add_node(enode(1), HOST, PORT)


def test_at_most_eight_nodes_per_member(chain):
    a = cons(chain, chain.hospital_a)
    for i in range(8):
        a.add_node(enode(100 + i), HOST, PORT + i)
    with reverts("TooManyNodes", owner=chain.hospital_a.address):
        a.add_node(enode(200), HOST, PORT)
    cons(chain, chain.hospital_b).add_node(enode(200), HOST, PORT)  # the limit is per member
    a.remove_node(enode(100))
    a.add_node(enode(201), HOST, PORT)  # removal frees a slot
    assert len(chain.read.consortium.nodes()) == 9


def test_remove_node_by_non_owner(chain):
    cons(chain, chain.hospital_a).add_node(enode(1), HOST, PORT)
    with reverts("UnknownNode", enodeId=enode(1)):
        cons(chain, chain.hospital_b).remove_node(enode(1))
    with reverts("NotMember", account=chain.outsider(0).address):
        cons(chain, chain.outsider(0)).remove_node(enode(1))
    assert chain.read.consortium.connection_allowed(enode(1), HOST, PORT)


def test_nodes_of_removed_member_disappear(chain):
    read = chain.read.consortium
    cons(chain, chain.auditor).add_node(enode(1), HOST, PORT)
    cons(chain, chain.cdc).add_node(enode(2), HOST, PORT + 1)
    assert read.connection_allowed(enode(1), HOST, PORT)
    remove(chain, chain.auditor.address)
    assert [(n.owner, n.enode_id) for n in read.nodes()] == [(chain.cdc.address, enode(2))]
    assert not read.connection_allowed(enode(1), HOST, PORT)
    assert read.connection_allowed(enode(2), HOST, PORT + 1)


# ---------------------------------------------------------------------------------------------------- Besu views


def test_transaction_allowed(chain):
    read = chain.read.consortium
    for member in (chain.hospital_a, chain.hospital_b, chain.cdc, chain.auditor):
        assert read.transaction_allowed(member.address, chain.read.records.address, b"\x12\x34")
    assert not read.transaction_allowed(chain.outsider(0).address)
    assert not read.transaction_allowed(chain.new_patient().address)
    assert not read.transaction_allowed(ZERO)
    remove(chain, chain.cdc.address)
    assert not read.transaction_allowed(chain.cdc.address)


def test_connection_allowed(chain):
    read = chain.read.consortium
    cons(chain, chain.hospital_a).add_node(enode(0xABCDEF), HOST, PORT)
    assert read.connection_allowed(enode(0xABCDEF), HOST, PORT)
    assert read.connection_allowed(enode(0xABCDEF).upper(), HOST, PORT)  # Besu may report uppercase hex
    assert not read.connection_allowed(enode(0xABCDEF), "10.0.0.8", PORT)
    assert not read.connection_allowed(enode(0xABCDEF), HOST + " ", PORT)
    assert not read.connection_allowed(enode(0xABCDEF), HOST, PORT + 1)
    assert not read.connection_allowed(enode(0xABCDEE), HOST, PORT)
    assert not read.connection_allowed("", "", 0)


# ---------------------------------------------------------------------------------------------------- patient keys


def test_patient_registers_own_key(chain):
    patient = chain.new_patient()
    read = chain.read.consortium
    assert read.patient_key(patient.address) == b""
    receipt = cons(chain, patient).register_patient_key(key(5))
    assert [e.args for e in read.events(receipt) if e.name == "PatientKeyRegistered"] == [
        {"patient": patient.address, "encryptionKey": key(5), "relayer": ZERO}
    ]
    assert read.patient_key(patient.address) == key(5)
    cons(chain, patient).register_patient_key(key(6))  # rotation
    assert read.patient_key(patient.address) == key(6)
    assert read.nonces(patient.address) == 0  # direct registration uses no signature nonce
    assert not read.is_member(patient.address)


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_patient_key_length(chain, length):
    patient = chain.new_patient()
    with reverts("InvalidEncryptionKey", length=length):
        cons(chain, patient).register_patient_key(b"\x01" * length)
    assert chain.read.consortium.patient_key(patient.address) == b""


def test_relayed_patient_key_registration(chain):
    read = chain.read.consortium
    patient = chain.new_patient()
    deadline = chain.timestamp() + 3600
    sig = signed_key(chain, patient, patient.address, key(8), 0, deadline)
    receipt = relay_by_a(chain, patient.address, key(8), 0, deadline, sig)
    assert [e.args for e in read.events(receipt) if e.name == "PatientKeyRegistered"] == [
        {"patient": patient.address, "encryptionKey": key(8), "relayer": chain.hospital_a.address}
    ]
    assert read.patient_key(patient.address) == key(8)
    assert read.nonces(patient.address) == 1

    # Replaying the same signature: it still verifies (it signs nonce 0), then the nonce check fails.
    with reverts("InvalidAccountNonce", account=patient.address, currentNonce=1):
        cons(chain, chain.hospital_b).register_patient_key_by_sig(patient.address, key(8), 0, deadline, sig)

    # The next signature uses nonce 1 and rotates the key, via another relayer.
    sig1 = signed_key(chain, patient, patient.address, key(9), 1, deadline)
    cons(chain, chain.cdc).register_patient_key_by_sig(patient.address, key(9), 1, deadline, sig1)
    assert read.patient_key(patient.address) == key(9)
    assert read.nonces(patient.address) == 2


def test_relayed_signature_with_future_nonce(chain):
    patient = chain.new_patient()
    deadline = chain.timestamp() + 3600
    sig = signed_key(chain, patient, patient.address, key(8), 1, deadline)
    with reverts("InvalidAccountNonce", account=patient.address, currentNonce=0):
        relay_by_a(chain, patient.address, key(8), 1, deadline, sig)


def test_relayed_signature_expired(chain):
    patient = chain.new_patient()
    deadline = chain.timestamp() + 60
    sig = signed_key(chain, patient, patient.address, key(8), 0, deadline)
    chain.advance(120)
    with reverts("SignatureExpired", deadline=deadline):
        relay_by_a(chain, patient.address, key(8), 0, deadline, sig)
    assert chain.read.consortium.nonces(patient.address) == 0


def test_relayed_signature_for_another_chain_or_contract(chain):
    patient = chain.new_patient()
    deadline = chain.timestamp() + 3600
    other_chain = signed_key(chain, patient, patient.address, key(8), 0, deadline, chain_id=chain.rpc.chain_id() + 1)
    with reverts("InvalidSignature", patient=patient.address):
        relay_by_a(chain, patient.address, key(8), 0, deadline, other_chain)
    consent = chain.read.consent.address
    other_contract = signed_key(chain, patient, patient.address, key(8), 0, deadline, contract=consent)
    with reverts("InvalidSignature", patient=patient.address):
        relay_by_a(chain, patient.address, key(8), 0, deadline, other_contract)


def test_relayed_signature_by_wrong_signer_or_over_other_content(chain):
    patient, mallory = chain.new_patient(), chain.new_patient()
    deadline = chain.timestamp() + 3600
    by_mallory = signed_key(chain, mallory, patient.address, key(8), 0, deadline)
    with reverts("InvalidSignature", patient=patient.address):
        relay_by_a(chain, patient.address, key(8), 0, deadline, by_mallory)

    over_other_key = signed_key(chain, patient, patient.address, key(8), 0, deadline)
    with reverts("InvalidSignature", patient=patient.address):
        relay_by_a(chain, patient.address, key(66), 0, deadline, over_other_key)
    with reverts("InvalidSignature", patient=patient.address):
        relay_by_a(chain, patient.address, key(8), 0, deadline + 1, over_other_key)
    # A valid signature from the patient cannot be redirected to another patient.
    with reverts("InvalidSignature", patient=mallory.address):
        relay_by_a(chain, mallory.address, key(8), 0, deadline, over_other_key)
    with reverts("InvalidSignature", patient=patient.address):
        relay_by_a(chain, patient.address, key(8), 0, deadline, b"\x00" * 65)
    assert chain.read.consortium.patient_key(patient.address) == b""
    assert chain.read.consortium.nonces(patient.address) == 0


def test_relayed_key_must_be_32_bytes_even_with_valid_signature(chain):
    patient = chain.new_patient()
    deadline = chain.timestamp() + 3600
    sig = signed_key(chain, patient, patient.address, key(8)[:31], 0, deadline)
    with reverts("InvalidEncryptionKey", length=31):
        relay_by_a(chain, patient.address, key(8)[:31], 0, deadline, sig)
    assert chain.read.consortium.nonces(patient.address) == 0


def test_relay_requires_relayer_role(chain):
    patient = chain.new_patient()
    deadline = chain.timestamp() + 3600
    sig = signed_key(chain, patient, patient.address, key(8), 0, deadline)
    for relayer in (chain.auditor, chain.outsider(0), patient):
        with reverts("MissingRole", account=relayer.address, requiredRoles=RELAYER):
            cons(chain, relayer).register_patient_key_by_sig(patient.address, key(8), 0, deadline, sig)
    # A RELAYER that is removed loses the right too.
    remove(chain, chain.cdc.address)
    with reverts("MissingRole", account=chain.cdc.address, requiredRoles=RELAYER):
        cons(chain, chain.cdc).register_patient_key_by_sig(patient.address, key(8), 0, deadline, sig)
    assert chain.read.consortium.patient_key(patient.address) == b""


def test_domain_separator_and_struct_hash_match_python(chain):
    read = chain.read.consortium
    chain_id = chain.rpc.chain_id()
    type_hash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    expected = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [type_hash, keccak(text="MedLedger Consortium"), keccak(text="1"), chain_id, read.address],
        )
    )
    assert read.domain_separator() == expected

    # The published typed data (medledger.chain.typed_data) hashes to the same domain and the contract's struct.
    patient = chain.new_patient().address
    typed = register_key_typed_data(domain(CONSORTIUM_DOMAIN_NAME, chain_id, read.address), patient, key(8), 3, 99)
    msg = encode_typed_data(full_message=typed)
    assert msg.header == expected
    struct_type = keccak(text="RegisterPatientKey(address patient,bytes encryptionKey,uint256 nonce,uint256 deadline)")
    struct_types = ["bytes32", "address", "bytes32", "uint256", "uint256"]
    assert msg.body == keccak(abi_encode(struct_types, [struct_type, patient, keccak(key(8)), 3, 99]))


# ---------------------------------------------------------------------------------------------------- wrapper bugs


def test_get_proposal_addresses_are_checksummed(chain):
    pid = propose_admit(chain, chain.outsider(0).address)
    p = chain.read.consortium.get_proposal(pid)
    assert (p.proposer, p.subject) == (chain.hospital_a.address, chain.outsider(0).address)
    assert type(p.proposer) is Address and type(p.subject) is Address


def test_address_arguments_are_checked_at_the_edge(chain):
    consortium = chain.read.consortium
    member = consortium.get_member(chain.hospital_a.address.lower())
    assert type(member.account) is Address and member.account == chain.hospital_a.address
    addr = chain.hospital_a.address
    i = next(i for i in range(2, 42) if addr[i].isalpha())
    typo = addr[:i] + addr[i].swapcase() + addr[i + 1 :]  # one letter's case flipped: a wrong checksum
    with pytest.raises(InputError) as err:
        consortium.is_member(typo)
    assert err.value.code == "invalid_address" and "account" in err.value.message
