"""The audit report for people: a summary, the break-glass windows, the accesses and the findings (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from clients.auditor.export import iso
from clients.auditor.model import AuditReport, Severity, purpose_name
from medledger.addresses import Address

#: Rows of the access table shown before eliding (the JSON export always has all of them).
MAX_ACCESS_ROWS = 500


def _addr(address: str) -> str:
    return f"{address[:8]}…{address[-4:]}"


def _name(report: AuditReport, address: Address) -> str:
    name = report.facts.member_name(address)
    return escape(name) if name else _addr(address)


def _summary(report: AuditReport) -> Panel:
    f = report.facts
    by_kind = ", ".join(f"{k.replace('_', '-')} {n}" for k, n in report.accesses_by_kind().items())
    bg = len(report.break_glass_accesses)
    lines = [
        f"[bold]scope[/bold]       {escape(f.scope.describe())}",
        f"[bold]chain[/bold]       {f.chain.chain_id}, blocks {f.from_block}..{f.to_block} "
        f"(indexed to {f.chain.indexed_block}, {iso(f.chain.indexed_block_time)})",
        f"[bold]accesses[/bold]    {len(report.accesses)} ({by_kind})",
        f"[bold]grants[/bold]      {len(f.grants)}   [bold]erasures[/bold] {len(f.erasures)}   "
        f"[bold]records[/bold] {len(f.records)}",
        "[bold]break-glass[/bold] "
        + (
            f"[bold yellow]{len(f.break_glass)} window(s), {bg} access(es) under break-glass[/bold yellow]"
            if f.break_glass or bg
            else "none"
        ),
    ]
    if report.ciphertexts_checked:
        counts: dict[str, int] = {}
        for c in report.ciphertexts:
            counts[c.verdict.value] = counts.get(c.verdict.value, 0) + 1
        detail = ", ".join(f"{k} {n}" for k, n in sorted(counts.items())) or "no records"
        lines.append(f"[bold]ciphertexts[/bold] {len(report.ciphertexts)} checked ({detail})")
    else:
        lines.append("[bold]ciphertexts[/bold] not checked (no auditor key or --store)")
    n, w = len(report.violations), len(report.warnings)
    verdict = "[bold green]CLEAN[/bold green]" if not n else f"[bold red]{n} VIOLATION(S)[/bold red]"
    lines.append(f"[bold]result[/bold]      {verdict}" + (f"  [yellow]{w} warning(s)[/yellow]" if w else ""))
    return Panel("\n".join(lines), title="MedLedger audit", expand=False)


def _break_glass(report: AuditReport) -> Table:
    t = Table(title="[bold yellow]Break-glass windows[/bold yellow]", title_justify="left")
    for col in ("#", "patient", "accessor", "opened", "ends", "accesses"):
        t.add_column(col)
    for w in report.facts.break_glass:
        n = sum(1 for a in report.break_glass_accesses if a.access.auth_id == w.break_glass_id)
        closed = " (closed early)" if w.closed_at is not None else ""
        t.add_row(
            str(w.break_glass_id),
            _addr(w.patient),
            _name(report, w.accessor),
            iso(w.opened_at) or "",
            (iso(w.ends_at) or "") + closed,
            str(n),
        )
    return t


def _accesses(report: AuditReport) -> Table:
    t = Table(title="Accesses", title_justify="left")
    for col in ("time", "block", "patient", "accessor", "record", "purpose", "authorization", "verdict"):
        t.add_column(col, no_wrap=col in ("time", "authorization"))
    for a in report.accesses[:MAX_ACCESS_ROWS]:
        v = a.access
        auth = f"[bold yellow]{a.label}[/bold yellow]" if a.break_glass else a.label
        verdict = "[green]ok[/green]" if a.ok else "[red]" + ", ".join(a.violations) + "[/red]"
        t.add_row(
            iso(v.block_time) or "",
            f"{v.block_number}:{v.log_index}",
            _addr(v.patient),
            _name(report, v.accessor),
            v.record_id[:10] + "…",
            purpose_name(v.purpose),
            auth,
            verdict,
        )
    if len(report.accesses) > MAX_ACCESS_ROWS:
        t.caption = f"first {MAX_ACCESS_ROWS} of {len(report.accesses)}; --json has all"
    return t


def _findings(report: AuditReport) -> Table:
    t = Table(title="Findings", title_justify="left")
    for col in ("severity", "code", "block:log", "tx", "message"):
        t.add_column(col, no_wrap=col != "message")
    for f in sorted(report.findings, key=lambda x: (x.severity != Severity.VIOLATION, x.block_number or 0)):
        style = "red" if f.severity == Severity.VIOLATION else "yellow"
        where = f"{f.block_number}:{f.log_index}" if f.block_number is not None else "—"
        t.add_row(
            f"[{style}]{f.severity.value}[/{style}]",
            f.code,
            where,
            (f.tx_hash[:10] + "…") if f.tx_hash else "—",
            escape(f.message),
        )
    return t


def render(report: AuditReport, console: Console) -> None:
    """Print the report: summary first, then break-glass windows, accesses and findings (if any)."""
    console.print(_summary(report))
    if report.facts.break_glass:
        console.print(_break_glass(report))
    if report.accesses:
        console.print(_accesses(report))
    if report.findings:
        console.print(_findings(report))
