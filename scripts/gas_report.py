"""Measure the gas of every state-changing contract function on a fresh Anvil and write the table into
docs/contracts.md (between the GAS-TABLE markers).

usage: python scripts/gas_report.py [--check]

--check exits 1 if docs/contracts.md differs from what this run measured (gas is deterministic on a fresh
chain, so a difference means the contracts changed and the docs are stale).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from eth_account import Account

from medledger.chain.anvil import AnvilProcess, AnvilSettings
from medledger.chain.devchain import contracts_for, deploy_dev
from medledger.chain.rpc import JsonRpcClient
from medledger.chain.sender import Receipt
from medledger.chain.typed_data import (
    CONSENT_DOMAIN_NAME,
    CONSORTIUM_DOMAIN_NAME,
    domain,
    grant_typed_data,
    register_key_typed_data,
    revoke_typed_data,
    sign_typed_data,
)
from medledger.chain.types import Access, GrantTerms, RecordAnchor
from medledger.cli_support import error_line
from medledger.vocabulary import AuthKind, Purpose, RecordClass, Role, class_mask

DOC = Path(__file__).resolve().parents[1] / "docs" / "contracts.md"
BEGIN, END = "<!-- GAS-TABLE:BEGIN -->", "<!-- GAS-TABLE:END -->"


def _id(i: int) -> bytes:
    # Deterministic non-zero ids so the table is reproducible run to run.
    return b"\xa5" * 30 + (i + 1).to_bytes(2, "big")


def measure() -> list[tuple[str, str, int]]:
    settings = AnvilSettings.load(port=0)
    rows: list[tuple[str, str, int]] = []
    with AnvilProcess(settings) as anvil, tempfile.TemporaryDirectory() as tmp:
        rpc = JsonRpcClient(anvil.url)
        dev = deploy_dev(rpc, settings, directory=Path(tmp))
        m = dev.manifest
        for name in ("Consortium", "RecordRegistry", "ConsentRegistry", "AccessLog"):
            r = rpc.call("eth_getTransactionReceipt", [m.contracts[name].tx_hash])
            rows.append((name, "deployment", int(r["gasUsed"], 16)))
        a = contracts_for(rpc, m, dev.founders["Hospital A"])
        b = contracts_for(rpc, m, dev.founders["Hospital B"])
        chain_id = rpc.chain_id()

        def add(contract: str, fn: str, receipt: Receipt) -> None:
            rows.append((contract, fn, receipt.gas_used))

        def last() -> Receipt:
            block = rpc.call("eth_getBlockByNumber", ["latest", False])
            return Receipt.from_rpc(rpc.call("eth_getTransactionReceipt", [block["transactions"][-1]]))

        newcomer = dev.accounts[5]
        key = bytes(range(32))
        pid = a.consortium.propose_admission(newcomer.address, Role.CLINIC, "Clinic C", "https://c.example", key)
        add("Consortium", "proposeAdmission", last())
        add("Consortium", "approve", b.consortium.approve(pid))
        add("Consortium", "execute (admit)", a.consortium.execute(pid))
        a.consortium.propose_roles(newcomer.address, Role.CLINIC | Role.LAB)
        add("Consortium", "proposeRoles", last())
        pid = a.consortium.propose_removal(newcomer.address)
        add("Consortium", "proposeRemoval", last())
        b.consortium.approve(pid)
        add("Consortium", "execute (remove)", a.consortium.execute(pid))
        a.consortium.propose_threshold(3)
        add("Consortium", "proposeThreshold", last())
        add("Consortium", "updateProfile", a.consortium.update_profile("https://a.example/api", key))
        enode = "ab" * 64
        add("Consortium", "addNode", a.consortium.add_node(enode, "10.0.0.1", 30303))
        add("Consortium", "removeNode", a.consortium.remove_node(enode))
        patient = Account.from_key(b"\x11" * 32)
        p = contracts_for(rpc, m, patient)
        add("Consortium", "registerPatientKey", p.consortium.register_patient_key(key))
        dom = domain(CONSORTIUM_DOMAIN_NAME, chain_id, m.address("Consortium"))
        typed = register_key_typed_data(dom, patient.address, key, 0, 2**40)
        sig = sign_typed_data(patient, typed)
        add(
            "Consortium",
            "registerPatientKeyBySig",
            a.consortium.register_patient_key_by_sig(patient.address, key, 0, 2**40, sig),
        )

        def anchors(start: int, n: int) -> list[RecordAnchor]:
            return [
                RecordAnchor(_id(start + i), patient.address, _id(100 + start + i), RecordClass.LAB, 1)
                for i in range(n)
            ]

        add("RecordRegistry", "anchorRecords (1 record)", a.records.anchor_records(anchors(0, 1)))
        r = a.records.anchor_records(anchors(1, 100))
        rows.append(("RecordRegistry", "anchorRecords (100 records, per record)", r.gas_used // 100))
        add("RecordRegistry", "amendRecords (1)", a.records.amend_records([(_id(0), anchors(300, 1)[0])]))
        add("RecordRegistry", "eraseRecords (1)", a.records.erase_records([_id(1)], b"\x01" * 32))
        a.records.anchor_digest(b"\x07" * 32, 10_000, b"\x08" * 32)
        add("RecordRegistry", "anchorDigest", last())

        grantee = dev.founders["Hospital B"].address
        terms = GrantTerms(grantee, class_mask([RecordClass.LAB, RecordClass.IMAGING]), Purpose.REFERRAL, 0, 2**40)
        p.consent.grant(terms)
        add("ConsentRegistry", "grant", last())
        cdom = domain(CONSENT_DOMAIN_NAME, chain_id, m.address("ConsentRegistry"))
        t2 = GrantTerms(grantee, class_mask([RecordClass.LAB]), Purpose.TREATMENT, 0, 2**40)
        sig = sign_typed_data(patient, grant_typed_data(cdom, patient.address, t2, 0, 2**40))
        gid = a.consent.grant_by_sig(patient.address, t2, 0, 2**40, sig)
        add("ConsentRegistry", "grantBySig", last())
        t3 = GrantTerms(grantee, class_mask([RecordClass.LAB, RecordClass.CONDITION]), Purpose.TREATMENT, 0, 2**40)
        sig = sign_typed_data(patient, grant_typed_data(cdom, patient.address, t3, 1, 2**40))
        a.consent.grant_by_sig(patient.address, t3, 1, 2**40, sig)
        add("ConsentRegistry", "grantBySig (replacing a grant)", last())
        add("ConsentRegistry", "revoke", p.consent.revoke(1))
        sig = sign_typed_data(patient, revoke_typed_data(cdom, patient.address, gid + 1, 2, 2**40))
        add("ConsentRegistry", "revokeBySig", a.consent.revoke_by_sig(patient.address, gid + 1, 2, 2**40, sig))
        bg = a.consent.open_break_glass(patient.address, b"\x09" * 32, 3600)
        add("ConsentRegistry", "openBreakGlass", last())
        add("ConsentRegistry", "closeBreakGlass", a.consent.close_break_glass(bg))

        def acc(i: int) -> Access:
            return Access(patient.address, grantee, _id(i), Purpose.REFERRAL, AuthKind.GRANT, 1, _id(200 + i))

        add("AccessLog", "logAccesses (1 access)", a.access_log.log_accesses([acc(0)]))
        r = a.access_log.log_accesses([acc(i) for i in range(1, 101)])
        rows.append(("AccessLog", "logAccesses (100 accesses, per access)", r.gas_used // 100))
    return rows


def render(rows: list[tuple[str, str, int]]) -> str:
    lines = [BEGIN, "| contract | function | gas used |", "|---|---|---:|"]
    lines += [f"| {c} | {f} | {g:,} |" for c, f, g in rows]
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if docs/contracts.md is stale")
    args = ap.parse_args()
    table = render(measure())
    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        print(error_line("gas_table_markers_missing", f"{DOC} lacks the {BEGIN} / {END} markers"), file=sys.stderr)
        return 2
    new = doc[: doc.index(BEGIN)] + table + doc[doc.index(END) + len(END) :]
    if args.check:
        if new != doc:
            print(
                error_line("gas_table_stale", "docs/contracts.md gas table is stale: run python scripts/gas_report.py"),
                file=sys.stderr,
            )
            return 1
        return 0
    DOC.write_text(new)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
