"""The regional demo: a real chain, three real institution nodes and one patient, played end to end.

Operators' steps run in-process (start Anvil, deploy the dev consortium, provision and start the nodes, create
staff tokens, link the patient at Hospital A). Everything the patient, the clinicians and the auditor do goes
through the same HTTP clients and audit code as the CLIs, so the story shows the system as deployed.

Each story step prints one line starting with a stable marker ``[n/12]`` (the tests check them).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from clients.api import NodeRefused
from clients.auditor.audit import AuditSettings, run_audit
from clients.auditor.model import AuditReport, CiphertextVerdict, Scope
from clients.clinician import ClinicianClient
from clients.patient import PatientClient
from clients.wallet import PatientWallet, save_wallet
from medledger.chain.anvil import AnvilProcess, AnvilSettings
from medledger.chain.deploy import load_founders
from medledger.chain.devchain import DevConsortium, deploy_dev
from medledger.chain.rpc import JsonRpcClient
from medledger.errors import MedLedgerError
from medledger.paths import project_root
from medledger.vocabulary import Purpose, RecordClass
from node.auth import StaffRole, create_staff
from node.embedded import EmbeddedNode, free_port, provision_node
from node.ingest import parse_file

T = TypeVar("T")

TOTAL = 12
INSTITUTIONS = ("Hospital A", "Hospital B", "Regional CDC")
#: The demo's secrets are demo secrets: the chain uses Anvil's public dev keys anyway. Written down so that a
#: kept demo directory (--keep / --dir) can be reopened and the patient CLI tried against it.
DEMO_PASSWORD = "medledger-demo"
#: Node keystores: a lower scrypt cost than production so the demo starts in seconds (dev keys only).
DEMO_SCRYPT_N = 2**14
#: Where the demo's auditor service listens when the port is free (as `medledger audit serve`'s default).
AUDITOR_PORT = 8600
BREAK_GLASS_REASON = "Eva unconscious in Hospital B's ED after a collision; allergies and recent labs unknown"


class DemoFailed(MedLedgerError):
    code = "demo_failed"


def sample_files() -> list[Path]:
    """Real sample inputs: a CT image (pydicom's test data), an HL7 v2 ORU lab result and a FHIR R5 bundle."""
    from pydicom.data import get_testdata_file

    data = project_root() / "tests" / "node" / "data"
    ct = get_testdata_file("CT_small.dcm")
    if ct is None:
        raise DemoFailed("pydicom's test file CT_small.dcm is missing")
    return [Path(str(ct)), data / "hl7" / "oru_r01.hl7", data / "fhir" / "r5_bundle_transaction.json"]


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy; the chain and the nodes' indexes catch up in the
    background, so the story waits for facts instead of sleeping."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise DemoFailed(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Institution:
    name: str
    node: EmbeddedNode
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def address(self) -> str:
        assert self.node.services is not None
        return self.node.services.address

    def clinician(self) -> ClinicianClient:
        return ClinicianClient(self.url, self.tokens["clinician"])


class AuditorService:
    """The auditor's web service (its page and audit API, clients.auditor.web) on loopback, in a thread."""

    def __init__(self, settings: AuditSettings, port: int) -> None:
        from clients.auditor.web import create_app

        self.url = f"http://127.0.0.1:{port}"
        self._server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, name="auditor-web", daemon=True)
        self._thread.start()
        wait_for("the auditor's service", lambda: self._server.started or None, timeout=20)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@dataclass
class Region:
    """The running demo network; :meth:`close` stops everything it started."""

    root: Path
    anvil: AnvilProcess
    dev: DevConsortium
    deployments: Path
    institutions: dict[str, Institution] = field(default_factory=dict)
    auditor: AuditorService | None = None

    def __getitem__(self, name: str) -> Institution:
        return self.institutions[name]

    def audit_settings(self) -> AuditSettings:
        """What the demo's auditor uses: the chain alone, plus Hospital A's stored ciphertexts read directly (as
        with ``--store``), so an audit also proves every stored ciphertext matches its on-chain commitment."""
        a = self["Hospital A"]
        assert a.node.services is not None
        return AuditSettings(
            rpc_url=self.anvil.url,
            deployments_dir=self.deployments,
            ciphertexts=True,
            stores={a.address: a.node.services.config.blob_store_url},
        )

    def close(self) -> None:
        if self.auditor is not None:
            self.auditor.stop()
        for inst in reversed(list(self.institutions.values())):
            inst.node.stop()
        self.anvil.stop()


def _node_ports(any_port: bool) -> dict[str, int | None]:
    """The dev founders' published endpoints (8701..8703) when all are free, so the patient CLI's default
    node URL works against the demo; otherwise (or with ``any_port``) free ports."""
    if any_port:
        return dict.fromkeys(INSTITUTIONS)
    ports: dict[str, int | None] = {}
    for f in load_founders()["founders"]:
        if f["name"] in INSTITUTIONS:
            ports[f["name"]] = int(str(f["endpoint"]).rsplit(":", 1)[1])
    if len(ports) != len(INSTITUTIONS) or not all(port_free(p) for p in ports.values() if p):
        return dict.fromkeys(INSTITUTIONS)
    return ports


def start_region(root: Path, *, any_port: bool = False) -> Region:
    """Operators' work: Anvil, the dev consortium, three provisioned and running nodes with staff tokens."""
    settings = AnvilSettings.load()
    if any_port or not port_free(settings.port):
        settings = AnvilSettings.load(port=0)
    anvil = AnvilProcess(settings, log_path=root / "anvil.log").start()
    try:
        deployments = root / "deployments"
        with JsonRpcClient(anvil.url) as rpc:
            dev = deploy_dev(rpc, anvil.settings, directory=deployments)
        region = Region(root, anvil, dev, deployments)
        try:
            ports = _node_ports(any_port)
            for name in INSTITUTIONS:
                region.institutions[name] = _institution(region, name, ports[name])
            auditor_port = AUDITOR_PORT if not any_port and port_free(AUDITOR_PORT) else free_port()
            region.auditor = AuditorService(region.audit_settings(), auditor_port)
        except BaseException:
            region.close()
            raise
        return region
    except BaseException:
        anvil.stop()
        raise


def _institution(region: Region, name: str, port: int | None) -> Institution:
    data_dir = region.root / name.replace(" ", "-").lower()
    provision_node(
        data_dir, name, password=DEMO_PASSWORD, rpc_url=region.anvil.url, deployments_dir=str(region.deployments),
        private_key=bytes(region.dev.founders[name].key), port=port or free_port(), scrypt_n=DEMO_SCRYPT_N,
    )  # fmt: skip
    node = EmbeddedNode(data_dir, DEMO_PASSWORD)
    inst = Institution(name, node, {})
    node.start()
    assert node.services is not None
    with node.services.sessions.begin() as s:
        for role in (StaffRole.CLINICIAN, StaffRole.REGISTRAR, StaffRole.ADMIN):
            inst.tokens[role.value] = create_staff(s, f"demo {role.value} at {name}", role)[1]
    return inst


# ---------------------------------------------------------------------------------------------- the story


@dataclass
class StoryFacts:
    """What the story established, for the closing summary and the tests."""

    patient: str = ""
    records: list[str] = field(default_factory=list)
    grant_id: int = 0
    denied_code: str = ""
    break_glass_id: int = 0
    audit_clean: bool = False
    wallet_path: Path | None = None


class Story:
    def __init__(self, region: Region, console: Console) -> None:
        self.region = region
        self.out = console
        self.facts = StoryFacts()

    def step(self, n: int, text: str) -> None:
        self.out.print(f"[bold cyan]\\[{n}/{TOTAL}][/bold cyan] {text}", soft_wrap=True, highlight=False)

    def detail(self, text: str) -> None:
        self.out.print(f"      {text}", soft_wrap=True, highlight=False)

    def play(self) -> StoryFacts:
        region = self.region
        a, b = region["Hospital A"], region["Hospital B"]
        self.step(
            1,
            f"Regional network up: Anvil chain {region.anvil.settings.chain_id} at {region.anvil.url}, "
            f"consortium deployed, nodes {', '.join(f'{i.name} ({i.url})' for i in region.institutions.values())}",
        )
        wallet = PatientWallet.create()
        with PatientClient(wallet, a.url) as eva, a.clinician() as doc_a, b.clinician() as doc_b:
            self._enrol(wallet, eva, a)
            lab, image = self._treat(wallet, doc_a, doc_b)
            grant_id = self._grant(eva, b)
            self._read_under_grant(wallet, doc_b, lab, image, grant_id, a)
            self._accesses(eva, b)
            self._revoke_and_deny(eva, doc_b, wallet, lab, grant_id)
            self._break_glass(wallet, doc_b, lab)
            self._notifications(eva, a, b)
            self._audit(wallet)
        return self.facts

    # -------------------------------------------------------------------------------------- steps

    def _enrol(self, wallet: PatientWallet, eva: PatientClient, a: Institution) -> None:
        self.facts.patient = wallet.address
        out = eva.register_key()
        # The registrar at Hospital A matches the identifiers the sample files carry to Eva's wallet address.
        services = a.node.services
        assert services is not None
        identities = {(r.patient.mrn, r.patient.assigning_authority) for f in sample_files() for r in parse_file(f)}
        for mrn, authority in sorted(identities):
            services.directory.link(mrn, authority, wallet.address, wallet.encryption_public_key)
        path = self.region.root / "eva-wallet.json"
        save_wallet(wallet, path, DEMO_PASSWORD, iterations=2**14)
        self.facts.wallet_path = path
        self.step(
            2,
            f"Patient Eva creates a wallet [cyan]{wallet.address}[/cyan], registers her encryption key on chain "
            f"(relayed by Hospital A, block {out['block_number']}); Hospital A's registrar links her "
            f"{len(identities)} medical record numbers to it",
        )

    def _treat(self, wallet: PatientWallet, doc_a: ClinicianClient, doc_b: ClinicianClient) -> tuple[str, str]:
        records: list[dict[str, Any]] = []
        for f in sample_files():
            records += doc_a.ingest(f.read_bytes())
        failed = [r for r in records if r["status"] == "failed"]
        if failed:
            raise DemoFailed(f"ingest failed: {failed[0]['error']}")
        ids = [r["record_id"] for r in records]
        self.facts.records = ids

        def anchored() -> list[dict[str, Any]] | None:
            st = [doc_a.record_status(i) for i in ids]
            return st if all(s["status"] == "confirmed" for s in st) else None

        status = wait_for("the records to be anchored", anchored)
        lab = next(r["record_id"] for r in records if r["record_class"] == "lab" and r["type_code"] == "24331-1")
        image = next(r["record_id"] for r in records if r["record_class"] == "imaging")
        own = doc_a.read(wallet.address, lab)
        self.step(
            3,
            f"Hospital A treats Eva: a clinician ingests a CT image (DICOM), a lipid panel (HL7 v2 ORU) and a FHIR "
            f"bundle over the API: {len(ids)} records encrypted, stored and anchored on chain "
            f"(block {max(s['block_number'] for s in status)}); A reads its own lab record "
            f"(authorization [bold]{own.authorization}[/bold])",
        )
        # Hospital B's node learns of them from the chain alone.
        wait_for("Hospital B's ledger view", lambda: len(doc_b.timeline(wallet.address)) >= len(ids))
        return lab, image

    def _grant(self, eva: PatientClient, b: Institution) -> int:
        out = eva.grant(b.address, [RecordClass.LAB, RecordClass.IMAGING], Purpose.REFERRAL, days=30)
        self.facts.grant_id = grant_id = int(out["grant_id"])
        self.step(
            4,
            f"Eva is referred to Hospital B and grants it lab + imaging for referral, 30 days: "
            f"grant [bold]{grant_id}[/bold] (EIP-712 signed by Eva, block {out['block_number']})",
        )
        return grant_id

    def _read_under_grant(
        self, wallet: PatientWallet, doc_b: ClinicianClient, lab: str, image: str, grant_id: int, a: Institution
    ) -> None:
        timeline = doc_b.timeline(wallet.address)
        holders = sorted({e["custodian_name"] or e["custodian"] for e in timeline})
        classes = sorted({e["record_class"] for e in timeline})
        lab_read = doc_b.read(wallet.address, lab, purpose="referral")
        image_read = doc_b.read(wallet.address, image, purpose="referral")
        expected = f"grant:{grant_id}"
        if {lab_read.authorization, image_read.authorization} != {expected}:
            raise DemoFailed(f"expected {expected}, got {lab_read.authorization} / {image_read.authorization}")
        if not lab_read.content.startswith(b"MSH|") or image_read.content[128:132] != b"DICM":
            raise DemoFailed("Hospital B did not get the original lab message and image")
        self.step(
            5,
            f"Hospital B's clinician sees one timeline of {len(timeline)} records ({', '.join(classes)}) held by "
            f"{', '.join(holders)}, and reads the lipid panel and the CT image from Hospital A: consent checked "
            f"by A on chain, access logged, authorization [bold]{expected}[/bold] "
            f"({len(lab_read.content)} + {len(image_read.content)} bytes)",
        )

    def _accesses(self, eva: PatientClient, b: Institution) -> None:
        def read_by_b() -> list[dict[str, Any]] | None:
            items = [x for x in eva.accesses() if x["accessor"].lower() == b.address.lower()]
            return items if len(items) >= 2 else None

        items = wait_for("Hospital B's reads to be logged on chain", read_by_b)
        self.step(
            6,
            f"Eva lists who read her records: {len(items)} reads by {items[0]['accessor_name']} under grant "
            f"{items[0]['auth_id']}, each on chain with block, time and purpose",
        )
        self._access_table(eva.accesses())

    def _access_table(self, items: list[dict[str, Any]]) -> None:
        table = Table(show_edge=False, pad_edge=False, box=None)
        for col in ("block", "who", "record", "purpose", "authorized by"):
            table.add_column(col)
        for x in items:
            auth = (
                f"[bold white on red] BREAK-GLASS #{x['auth_id']} [/]"
                if x["break_glass"]
                else (f"grant #{x['auth_id']}" if x["authorization"] == "grant" else x["authorization"])
            )
            table.add_row(
                str(x["block_number"]), x["accessor_name"] or x["accessor"], x["record_id"][:14] + "…", x["purpose"],
                auth,
            )  # fmt: skip
        self.out.print(table)

    def _revoke_and_deny(
        self, eva: PatientClient, doc_b: ClinicianClient, wallet: PatientWallet, lab: str, grant_id: int
    ) -> None:
        out = eva.revoke(grant_id)
        self.step(7, f"Eva revokes grant {grant_id} (block {out['block_number']})")
        try:
            doc_b.read(wallet.address, lab, purpose="referral")
        except NodeRefused as exc:
            self.facts.denied_code = exc.code
            self.step(
                8,
                f"Hospital B asks again and is denied: [bold red]{exc.status} {exc.code}[/bold red]: "
                f"{escape(exc.message)}",
            )
            if exc.status != 403 or exc.code != "consent_denied":
                raise DemoFailed(f"expected 403 consent_denied, got {exc.status} {exc.code}") from None
            return
        raise DemoFailed("Hospital B could still read after the revocation")

    def _break_glass(self, wallet: PatientWallet, doc_b: ClinicianClient, lab: str) -> None:
        bg = doc_b.break_glass(wallet.address, BREAK_GLASS_REASON, minutes=60)
        self.facts.break_glass_id = int(bg["break_glass_id"])
        got = doc_b.read(wallet.address, lab, purpose="emergency")
        if not got.break_glass:
            raise DemoFailed(f"expected a break-glass read, got {got.authorization}")
        self.step(
            9,
            f"Emergency: Hospital B opens break-glass {bg['break_glass_id']} for 60 minutes (reason kept at B, its "
            f"hash on chain) and reads the lab record again: authorization {got.authorization}, flagged "
            f"[bold white on red] BREAK-GLASS [/]",
        )

    def _notifications(self, eva: PatientClient, a: Institution, b: Institution) -> None:
        notes = wait_for(
            "the break-glass notification",
            lambda: [n for n in eva.notifications(b.url) if n["kind"] == "break_glass_opened"] or None,
        )
        wait_for("the break-glass access on chain", lambda: any(x["break_glass"] for x in eva.accesses()))
        at_a = eva.notifications(a.url)
        n = notes[0]["payload"]
        self.step(
            10,
            f"Eva is notified: [bold red]break_glass_opened[/bold red] by Hospital B (window {n['break_glass_id']}, "
            f"reason: {escape(str(n['reason']))!s}); {len(at_a)} notice(s) from Hospital A about the emergency read; "
            f"her access list flags it [bold white on red] BREAK-GLASS [/]",
        )
        self._access_table(eva.accesses())

    def _audit(self, wallet: PatientWallet) -> None:
        report = run_audit(Scope.patient(wallet.address), self.region.audit_settings())
        self.facts.audit_clean = report.clean
        self.step(11, audit_line(report))
        if not report.clean:
            for f in report.violations:
                self.detail(f"[red]{f.code}[/red]: {escape(f.message)}")
            raise DemoFailed("the audit found violations")


def audit_line(report: AuditReport) -> str:
    matched = sum(1 for c in report.ciphertexts if c.verdict == CiphertextVerdict.MATCH)
    verdict = "[bold green]audit clean[/bold green]" if report.clean else "[bold red]audit FAILED[/bold red]"
    return (
        f"The auditor rebuilds everything from the chain alone: {len(report.accesses)} accesses checked against "
        f"the consent valid at their block ({len(report.break_glass_accesses)} BREAK-GLASS flagged), "
        f"{matched}/{len(report.ciphertexts)} stored ciphertexts match their commitments, "
        f"{len(report.violations)} violations, {len(report.warnings)} warnings: {verdict}"
    )


def show_endpoints(region: Region, facts: StoryFacts, console: Console, *, staying: bool) -> None:
    """The closing step: where everything is, and how to try the CLIs against it."""
    a, b = region["Hospital A"], region["Hospital B"]
    tail = "running until Ctrl-C" if staying else "stopping (--exit)"
    console.print(f"[bold cyan]\\[{TOTAL}/{TOTAL}][/bold cyan] Nodes ready, {tail}:", highlight=False)
    # Plain lines, not a table: URLs must stay whole (copyable) in any terminal width.
    for inst in region.institutions.values():
        console.print(
            f"  {inst.name:<13} {inst.url}  docs {inst.url}/docs  ({inst.address})", soft_wrap=True, highlight=False
        )
    # The portal: each role's page with a ready sign-in (the staff links carry their token in the fragment,
    # which the browser never sends to the server).
    console.print("Portal (open in a browser; 中文/English at the top of every page):", highlight=False)
    console.print(
        f"  patient    {b.url}/portal/patient.html  (Wallet → Import keystore: {facts.wallet_path}, "
        f"password {DEMO_PASSWORD})\n"
        f"  clinician  {b.url}/portal/clinician.html#token={b.tokens['clinician']}&patient={facts.patient}\n"
        f"  operator   {a.url}/portal/operator.html#token={a.tokens['admin']}\n"
        + (f"  auditor    {region.auditor.url}/portal/auditor.html\n" if region.auditor else ""),
        soft_wrap=True,
        highlight=False,
        end="",
    )
    if staying:
        console.print(
            f"Try it (demo data in {region.root}):\n"
            f"  export MEDLEDGER_WALLET={facts.wallet_path} MEDLEDGER_WALLET_PASSWORD={DEMO_PASSWORD}\n"
            f"  medledger patient accesses --node {a.url}\n"
            f"  MEDLEDGER_STAFF_TOKEN={b.tokens['clinician']} "
            f"medledger clinician patient-timeline {facts.patient} --node {b.url}\n"
            f"  medledger audit patient {facts.patient} --rpc {region.anvil.url} --deployments {region.deployments}",
            soft_wrap=True,
            highlight=False,
        )
