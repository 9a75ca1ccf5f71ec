"""Typed wrappers of the MedLedger contracts.

Reads need only an RPC connection; writes need a :class:`TransactionSender` (the acting member or
patient). Every write returns the mined :class:`Receipt`; the ``send_*`` variants return a transaction hash
at once so callers can pipeline many writes and wait for them together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from medledger.addresses import Address, eip55
from medledger.chain.abi import Artifact, StaticTupleArrayEncoder, load_artifact
from medledger.chain.rpc import JsonRpcClient, RpcError
from medledger.chain.sender import Receipt, TransactionSender, revert_data
from medledger.chain.types import (
    Access,
    BreakGlass,
    Digest,
    Grant,
    GrantTerms,
    Member,
    Node,
    Proposal,
    RecordAnchor,
    RecordState,
)
from medledger.errors import ConfigError
from medledger.vocabulary import Purpose, RecordClass, RecordStatus, Role


@dataclass(frozen=True)
class DecodedEvent:
    name: str
    args: dict[str, Any]
    address: Address
    block_number: int
    tx_hash: str
    log_index: int


class ContractClient:
    """Base: one deployed contract at ``address`` with the committed artifact ``ARTIFACT``."""

    ARTIFACT: str = ""

    def __init__(self, rpc: JsonRpcClient, address: str, sender: TransactionSender | None = None) -> None:
        self.rpc = rpc
        self.address = Address(address, f"{self.ARTIFACT} address")
        self.sender = sender
        self.artifact: Artifact = load_artifact(self.ARTIFACT)
        self.abi = self.artifact.abi

    def with_sender(self, sender: TransactionSender) -> Self:
        """The same contract, acting as ``sender``'s account."""
        return type(self)(self.rpc, self.address, sender)

    def _call(self, name: str, *args: Any) -> tuple[Any, ...]:
        fn = self.abi.function(name)
        data = fn.encode(args)
        if self.sender is not None:
            raw = self.sender.call(self.address, data, abi=self.abi)
        else:
            try:
                result = self.rpc.call("eth_call", [{"to": self.address, "data": "0x" + data.hex()}, "latest"])
            except RpcError as err:
                rd = revert_data(err)
                if rd:
                    raise self.abi.decode_revert(rd) from None
                raise
            raw = bytes.fromhex(result[2:])
        return fn.decode(raw)

    def _require_sender(self) -> TransactionSender:
        if self.sender is None:
            raise ConfigError(f"{self.ARTIFACT} at {self.address} has no sender: writes need an account")
        return self.sender

    def _transact(self, name: str, *args: Any, gas: int | None = None) -> Receipt:
        return self._require_sender().transact(self.address, self.abi.encode_call(name, *args), gas=gas, abi=self.abi)

    def _send(self, name: str, *args: Any, gas: int | None = None) -> str:
        return self._require_sender().send(self.address, self.abi.encode_call(name, *args), gas=gas, abi=self.abi)

    def events(self, receipt: Receipt) -> list[DecodedEvent]:
        """Decode this contract's events in ``receipt``, in log order."""
        out: list[DecodedEvent] = []
        for log in receipt.logs:
            if eip55(log["address"]) != self.address or not log["topics"]:
                continue
            topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
            ev = self.abi.events_by_topic.get(topics[0])
            if ev is None:
                continue
            out.append(
                DecodedEvent(
                    ev.name,
                    ev.decode(topics, bytes.fromhex(log["data"][2:])),
                    self.address,
                    int(log["blockNumber"], 16),
                    log["transactionHash"],
                    int(log["logIndex"], 16),
                )
            )
        return out

    def _event_arg(self, receipt: Receipt, event: str, arg: str) -> Any:
        for ev in self.events(receipt):
            if ev.name == event:
                return ev.args[arg]
        raise LookupError(f"{event} not found in transaction {receipt.tx_hash}")


class ConsortiumClient(ContractClient):
    """Membership, governance votes, nodes and patient keys."""

    ARTIFACT = "Consortium"

    # reads
    def members(self) -> list[Address]:
        return [eip55(a) for a in self._call("members")[0]]

    def member_count(self) -> int:
        return int(self._call("memberCount")[0])

    def get_member(self, account: str) -> Member:
        a = Address(account, "account")
        return Member.from_tuple(a, self._call("getMember", a)[0])

    def is_member(self, account: str) -> bool:
        return bool(self._call("isMember", Address(account, "account"))[0])

    def has_any_role(self, account: str, roles: Role) -> bool:
        return bool(self._call("hasAnyRole", Address(account, "account"), int(roles))[0])

    def threshold(self) -> int:
        return int(self._call("threshold")[0])

    def voting_period(self) -> int:
        return int(self._call("votingPeriod")[0])

    def approval_count(self, proposal_id: int) -> int:
        return int(self._call("approvalCount", proposal_id)[0])

    def get_proposal(self, proposal_id: int) -> Proposal:
        kind, executed, expires_at, proposer, subject, *rest = self._call("getProposal", proposal_id)[0]
        return Proposal(proposal_id, kind, executed, expires_at, eip55(proposer), eip55(subject), *rest)

    def nodes(self) -> list[Node]:
        return [Node(eip55(o), p, e, h) for (o, p, e, h) in self._call("nodes")[0]]

    def patient_key(self, patient: str) -> bytes:
        return bytes(self._call("patientKey", Address(patient, "patient"))[0])

    def nonces(self, account: str) -> int:
        return int(self._call("nonces", Address(account, "account"))[0])

    def transaction_allowed(self, sender: str, target: str = "0x" + "00" * 20, payload: bytes = b"") -> bool:
        args = (Address(sender, "sender"), Address(target, "target"), 0, 0, 0, payload)
        return bool(self._call("transactionAllowed", *args)[0])

    def connection_allowed(self, enode_id: str, ip: str, port: int) -> bool:
        return bool(self._call("connectionAllowed", enode_id, ip, port)[0])

    def domain_separator(self) -> bytes:
        return bytes(self._call("domainSeparator")[0])

    # governance
    def propose_admission(self, account: str, roles: Role, name: str, endpoint: str, encryption_key: bytes) -> int:
        r = self._transact("proposeAdmission", Address(account, "account"), int(roles), name, endpoint, encryption_key)
        return int(self._event_arg(r, "ProposalCreated", "proposalId"))

    def propose_removal(self, account: str) -> int:
        r = self._transact("proposeRemoval", Address(account, "account"))
        return int(self._event_arg(r, "ProposalCreated", "proposalId"))

    def propose_roles(self, account: str, roles: Role) -> int:
        r = self._transact("proposeRoles", Address(account, "account"), int(roles))
        return int(self._event_arg(r, "ProposalCreated", "proposalId"))

    def propose_threshold(self, threshold: int) -> int:
        r = self._transact("proposeThreshold", threshold)
        return int(self._event_arg(r, "ProposalCreated", "proposalId"))

    def approve(self, proposal_id: int) -> Receipt:
        return self._transact("approve", proposal_id)

    def execute(self, proposal_id: int) -> Receipt:
        return self._transact("execute", proposal_id)

    # self-service
    def update_profile(self, endpoint: str, encryption_key: bytes) -> Receipt:
        return self._transact("updateProfile", endpoint, encryption_key)

    def add_node(self, enode_id: str, host: str, port: int) -> Receipt:
        return self._transact("addNode", enode_id, host, port)

    def remove_node(self, enode_id: str) -> Receipt:
        return self._transact("removeNode", enode_id)

    def register_patient_key(self, encryption_key: bytes) -> Receipt:
        return self._transact("registerPatientKey", encryption_key)

    def register_patient_key_by_sig(
        self, patient: str, encryption_key: bytes, nonce: int, deadline: int, signature: bytes
    ) -> Receipt:
        return self._transact(
            "registerPatientKeyBySig", Address(patient, "patient"), encryption_key, nonce, deadline, signature
        )


class RecordRegistryClient(ContractClient):
    """Record anchoring, amendments, erasures and Merkle digests."""

    ARTIFACT = "RecordRegistry"

    #: Gas bound for ``anchorRecords``: measured ~28.7k per record (cold SSTORE 22.1k + LOG4 + calldata) and
    #: ~40k per transaction; the bound adds ~25% so a batch never runs out, and is checked by
    #: tests/contracts/test_records.py against worst-case calldata. Estimating instead costs Anvil a binary
    #: search of EVM runs per batch, half the anchoring time.
    ANCHOR_GAS_BASE = 60_000
    ANCHOR_GAS_PER_RECORD = 36_000

    def __init__(self, rpc: JsonRpcClient, address: str, sender: TransactionSender | None = None) -> None:
        super().__init__(rpc, address, sender)
        self._anchor_encoder = StaticTupleArrayEncoder(self.abi.function("anchorRecords"))

    @classmethod
    def anchor_gas(cls, n: int) -> int:
        """Gas limit that covers anchoring ``n`` records in one transaction."""
        return cls.ANCHOR_GAS_BASE + n * cls.ANCHOR_GAS_PER_RECORD

    def encode_anchor_records(self, records: Sequence[RecordAnchor]) -> bytes:
        return self._anchor_encoder.encode([r.as_tuple() for r in records])

    def anchor_records(self, records: Sequence[RecordAnchor], *, gas: int | None = None) -> Receipt:
        """Anchor ``records`` in one transaction; estimates gas (and so surfaces reverts before sending)
        unless ``gas`` is given."""
        return self._require_sender().transact(self.address, self.encode_anchor_records(records), gas=gas, abi=self.abi)

    def send_anchor_records(self, records: Sequence[RecordAnchor], *, gas: int | None = None) -> str:
        """Sign and broadcast without waiting, with the :meth:`anchor_gas` bound unless ``gas`` is given.
        Use for throughput after the batch was validated; a revert then shows in the receipt."""
        return self._require_sender().send(
            self.address,
            self.encode_anchor_records(records),
            gas=gas if gas is not None else self.anchor_gas(len(records)),
            abi=self.abi,
        )

    def amend_records(self, amendments: Sequence[tuple[bytes, RecordAnchor]]) -> Receipt:
        return self._transact("amendRecords", [(prev, r.as_tuple()) for prev, r in amendments])

    def erase_records(self, record_ids: Sequence[bytes], request_hash: bytes) -> Receipt:
        return self._transact("eraseRecords", list(record_ids), request_hash)

    def anchor_digest(self, root: bytes, count: int, kind: bytes) -> int:
        r = self._transact("anchorDigest", root, count, kind)
        return int(self._event_arg(r, "DigestAnchored", "digestId"))

    def verify_digest_leaf(self, root: bytes, proof: Sequence[bytes], leaf: bytes) -> bool:
        return bool(self._call("verifyDigestLeaf", root, list(proof), leaf)[0])

    def get_record(self, record_id: bytes) -> RecordState:
        c, b, s, k = self._call("getRecord", record_id)[0]
        return RecordState(eip55(c), b, RecordStatus(s), k)

    def get_digest(self, root: bytes) -> Digest:
        c, b, n, k = self._call("getDigest", root)[0]
        return Digest(eip55(c), b, n, k)


class ConsentRegistryClient(ContractClient):
    """Consent grants, revocations and break-glass windows."""

    ARTIFACT = "ConsentRegistry"

    def grant(self, terms: GrantTerms) -> int:
        r = self._transact("grant", terms.as_tuple())
        return int(self._event_arg(r, "ConsentGranted", "grantId"))

    def grant_by_sig(self, patient: str, terms: GrantTerms, nonce: int, deadline: int, signature: bytes) -> int:
        return self.grant_by_sig_receipt(patient, terms, nonce, deadline, signature)[0]

    def grant_by_sig_receipt(
        self, patient: str, terms: GrantTerms, nonce: int, deadline: int, signature: bytes
    ) -> tuple[int, Receipt]:
        """Relay a signed grant; returns the new grant id and the receipt."""
        r = self._transact("grantBySig", Address(patient, "patient"), terms.as_tuple(), nonce, deadline, signature)
        return int(self._event_arg(r, "ConsentGranted", "grantId")), r

    def grant_count(self) -> int:
        return int(self._call("grantCount")[0])

    def revoke(self, grant_id: int) -> Receipt:
        return self._transact("revoke", grant_id)

    def revoke_by_sig(self, patient: str, grant_id: int, nonce: int, deadline: int, signature: bytes) -> Receipt:
        return self._transact("revokeBySig", Address(patient, "patient"), grant_id, nonce, deadline, signature)

    def open_break_glass(self, patient: str, reason_hash: bytes, duration: int) -> int:
        return self.open_break_glass_receipt(patient, reason_hash, duration)[0]

    def open_break_glass_receipt(self, patient: str, reason_hash: bytes, duration: int) -> tuple[int, int, Receipt]:
        """Open a window; returns its id, its expiry (Unix time) and the receipt."""
        r = self._transact("openBreakGlass", Address(patient, "patient"), reason_hash, duration)
        return (
            int(self._event_arg(r, "BreakGlassOpened", "breakGlassId")),
            int(self._event_arg(r, "BreakGlassOpened", "expiresAt")),
            r,
        )

    def close_break_glass(self, break_glass_id: int) -> Receipt:
        return self._transact("closeBreakGlass", break_glass_id)

    def is_authorized(
        self, patient: str, grantee: str, record_class: RecordClass, purpose: Purpose
    ) -> tuple[bool, int]:
        ok, gid = self._call(
            "isAuthorized", Address(patient, "patient"), Address(grantee, "grantee"), int(record_class), int(purpose)
        )
        return bool(ok), int(gid)

    def get_grant(self, grant_id: int) -> Grant:
        p, g, c, pu, vf, vu, rv = self._call("getGrant", grant_id)[0]
        return Grant(grant_id, eip55(p), eip55(g), c, Purpose(pu), vf, vu, rv)

    def current_grant(self, patient: str, grantee: str, purpose: Purpose) -> int:
        return int(
            self._call("currentGrant", Address(patient, "patient"), Address(grantee, "grantee"), int(purpose))[0]
        )

    def active_break_glass(self, patient: str, accessor: str) -> tuple[int, int]:
        bid, exp = self._call("activeBreakGlass", Address(patient, "patient"), Address(accessor, "accessor"))
        return int(bid), int(exp)

    def get_break_glass(self, break_glass_id: int) -> BreakGlass:
        p, a, o, e, r = self._call("getBreakGlass", break_glass_id)[0]
        return BreakGlass(break_glass_id, eip55(p), eip55(a), o, e, r)

    def nonces(self, account: str) -> int:
        return int(self._call("nonces", Address(account, "account"))[0])

    def domain_separator(self) -> bytes:
        return bytes(self._call("domainSeparator")[0])


class AccessLogClient(ContractClient):
    """The append-only access log."""

    ARTIFACT = "AccessLog"

    #: Gas bound for ``logAccesses``: measured 57.6k for one access and ~8.1k per access in a batch of 100
    #: (docs/contracts.md); the bound adds margin and is checked by tests/node/test_access_logger.py.
    LOG_GAS_BASE = 70_000
    LOG_GAS_PER_ACCESS = 10_000

    @classmethod
    def log_gas(cls, n: int) -> int:
        """Gas limit that covers logging ``n`` accesses in one transaction."""
        return cls.LOG_GAS_BASE + n * cls.LOG_GAS_PER_ACCESS

    def __init__(self, rpc: JsonRpcClient, address: str, sender: TransactionSender | None = None) -> None:
        super().__init__(rpc, address, sender)
        self._encoder = StaticTupleArrayEncoder(self.abi.function("logAccesses"))

    def encode_log_accesses(self, accesses: Sequence[Access]) -> bytes:
        return self._encoder.encode([a.as_tuple() for a in accesses])

    def log_accesses(self, accesses: Sequence[Access], *, gas: int | None = None) -> Receipt:
        return self._require_sender().transact(self.address, self.encode_log_accesses(accesses), gas=gas, abi=self.abi)

    def send_log_accesses(self, accesses: Sequence[Access], *, gas: int | None = None) -> str:
        return self._require_sender().send(self.address, self.encode_log_accesses(accesses), gas=gas, abi=self.abi)

    def access_count(self) -> int:
        return int(self._call("accessCount")[0])

    def max_decision_age(self) -> int:
        """How many blocks before its logging block an access's ``decidedAt`` may be (a contract constant)."""
        return int(self._call("MAX_DECISION_AGE")[0])
