"""``medledger patient``: a patient's view and control of their records, through their home node.

Every command signs with the wallet (``--wallet``, password from ``MEDLEDGER_WALLET_PASSWORD`` or a prompt)
and talks HTTP to the home node (``--node`` / ``MEDLEDGER_NODE_URL``); downloads come from the custodian's
node and are verified against the on-chain commitment before decryption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from clients.cli_options import (
    DEFAULT_NODE,
    JsonOpt,
    NodeOpt,
    WalletOpt,
    address_arg,
    cli_errors,
    open_wallet,
    record_arg,
    short,
    when,
    write_new,
)
from clients.patient import PatientClient
from medledger.cli_support import console, print_json
from medledger.errors import InputError
from medledger.vocabulary import Purpose, RecordClass

app = typer.Typer(
    help="See and control your health records: timeline, consent grants, who read what, downloads, erasure.",
    no_args_is_help=True,
)

LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=10000, help="At most this many rows.")]


def _client(node: str, wallet: Path | None) -> PatientClient:
    return PatientClient(open_wallet(wallet), node)


def parse_classes(text: str) -> list[RecordClass]:
    classes = [RecordClass.parse(c) for c in text.split(",") if c.strip()]
    if not classes:
        raise InputError("--classes needs at least one record class (e.g. lab,imaging)", code="invalid_classes")
    return classes


def break_glass_label(access: dict[str, Any]) -> str:
    """How an access's authorization is shown to people; break-glass is loud on purpose."""
    if access.get("break_glass"):
        return f"[bold white on red] BREAK-GLASS #{access['auth_id']} [/]"
    kind = access.get("authorization", "?")
    return f"grant #{access['auth_id']}" if kind == "grant" else str(kind)


# ---------------------------------------------------------------------------------------------- views


@app.command(
    epilog=f"Example:\n\n  medledger patient timeline --node {DEFAULT_NODE}\n\n  medledger patient timeline --json"
)
@cli_errors
def timeline(
    node: NodeOpt = DEFAULT_NODE, wallet: WalletOpt = None, limit: LimitOpt = 500, as_json: JsonOpt = False
) -> None:
    """Your records across every custodian, newest first (from the ledger)."""
    with _client(node, wallet) as client:
        items = client.timeline(limit=limit)
    if as_json:
        print_json(items)
        return
    table = Table(title=f"timeline: {len(items)} record(s)")
    for col in ("time", "class", "custodian", "record id", "status"):
        table.add_column(col, overflow="fold")
    for e in items:
        table.add_row(
            when(e["event_time"]), e["record_class"], e["custodian_name"] or e["custodian"], e["record_id"], e["status"]
        )
    console.print(table)


@app.command(epilog="Example:\n\n  medledger patient grants\n\n  medledger patient grants --json")
@cli_errors
def grants(node: NodeOpt = DEFAULT_NODE, wallet: WalletOpt = None, as_json: JsonOpt = False) -> None:
    """Your consent grants, current and past."""
    with _client(node, wallet) as client:
        items = client.grants()
    if as_json:
        print_json(items)
        return
    table = Table(title=f"grants: {len(items)}")
    for col in ("id", "to", "classes", "purpose", "valid until", "state"):
        table.add_column(col, overflow="fold")
    for g in items:
        state = "[red]revoked[/red]" if g["revoked"] else "[green]active[/green]"
        table.add_row(
            str(g["grant_id"]), g["grantee_name"] or g["grantee"], ", ".join(g["classes"]), g["purpose"],
            when(g["valid_until"]), state,
        )  # fmt: skip
    console.print(table)


@app.command(
    epilog="Example:\n\n  medledger patient accesses\n\n"
    "  medledger patient accesses --json | jq '.[] | select(.break_glass)'"
)
@cli_errors
def accesses(
    node: NodeOpt = DEFAULT_NODE, wallet: WalletOpt = None, limit: LimitOpt = 500, as_json: JsonOpt = False
) -> None:
    """Every logged read of your records: who, when, which record, under which grant or BREAK-GLASS."""
    with _client(node, wallet) as client:
        items = client.accesses(limit=limit)
    if as_json:
        print_json(items)
        return
    table = Table(title=f"accesses: {len(items)}")
    for col in ("time", "who", "record id", "purpose", "authorized by"):
        table.add_column(col, overflow="fold")
    for a in items:
        table.add_row(
            when(a["block_time"]), a["accessor_name"] or a["accessor"], short(a["record_id"], 12), a["purpose"],
            break_glass_label(a),
        )  # fmt: skip
    console.print(table)
    glass = sum(1 for a in items if a["break_glass"])
    if glass:
        console.print(f"[bold red]{glass} emergency (break-glass) access(es)[/bold red]: check the notifications.")


@app.command(
    epilog="Example:\n\n  medledger patient notifications\n\n"
    "  medledger patient notifications --from http://127.0.0.1:8701 --json"
)
@cli_errors
def notifications(
    node: NodeOpt = DEFAULT_NODE,
    wallet: WalletOpt = None,
    also: Annotated[
        list[str] | None,
        typer.Option("--from", help="Also read the notifications kept by this node (repeatable).", metavar="URL"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Notifications about you (break-glass openings, emergency reads) from your home node and any --from
    nodes: each node keeps the notices about what it did."""
    urls = [node, *(also or [])]
    rows: list[dict[str, Any]] = []
    with _client(node, wallet) as client:
        for url in dict.fromkeys(u.rstrip("/") for u in urls):
            rows += [{**n, "node": url} for n in client.notifications(url)]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"notifications: {len(rows)}")
    for col in ("when", "node", "kind", "details"):
        table.add_column(col, overflow="fold")
    for n in rows:
        kind = n["kind"]
        shown = f"[bold red]{kind}[/bold red]" if "break_glass" in kind else kind
        details = ", ".join(f"{k}={v}" for k, v in sorted(n["payload"].items()) if k != "tx_hash")
        table.add_row(n["created_at"][:19], n["node"], shown, details)
    console.print(table)


@app.command(
    epilog="Examples:\n\n  medledger patient contacts\n\n"
    "  medledger patient contacts --add email:me@example.org\n\n"
    "  medledger patient contacts --add sms:+8613800138000 --node http://127.0.0.1:8702\n\n"
    "  medledger patient contacts --remove 3"
)
@cli_errors
def contacts(
    add: Annotated[
        str | None,
        typer.Option(
            "--add",
            help="Also send this node's notifications here: email:ADDRESS, sms:+PHONE, voice:+PHONE.",
            metavar="CHANNEL:DESTINATION",
        ),
    ] = None,
    remove: Annotated[int | None, typer.Option("--remove", min=1, help="Stop sending to this contact id.")] = None,
    node: NodeOpt = DEFAULT_NODE,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Where a node sends your notifications besides its inbox (e-mail, SMS, voice). Messages say only what
    happened and where to look; the details stay in the inbox. Contacts are kept per node."""
    with _client(node, wallet) as client:
        if add is not None:
            channel, sep, destination = add.partition(":")
            if not sep or not destination:
                raise InputError("--add takes CHANNEL:DESTINATION, e.g. email:me@example.org", code="usage")
            client.add_contact(channel.strip().lower(), destination, node)
        if remove is not None:
            client.remove_contact(remove, node)
        rows = client.contacts(node)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"notification contacts at {node}: {len(rows)}")
    for col in ("id", "channel", "destination", "since"):
        table.add_column(col)
    for c in rows:
        table.add_row(str(c["id"]), c["channel"], c["destination"], c["created_at"][:19])
    console.print(table)


# ---------------------------------------------------------------------------------------------- actions


@app.command(
    epilog="Example:\n\n  medledger patient grant --to 0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC "
    "--classes lab,imaging --purpose treatment --days 30"
)
@cli_errors
def grant(
    to: Annotated[str, typer.Option("--to", help="Institution address to grant.", metavar="ADDRESS")],
    classes: Annotated[str, typer.Option("--classes", help="Comma-separated record classes, e.g. lab,imaging.")],
    purpose: Annotated[
        str, typer.Option("--purpose", help="treatment, referral, research, emergency, …")
    ] = "treatment",
    days: Annotated[float, typer.Option("--days", min=0.001, max=36500, help="How long the grant lasts.")] = 30,
    node: NodeOpt = DEFAULT_NODE,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Grant an institution access to classes of your records for a purpose and a time; you sign, your home
    node relays it to the chain."""
    grantee = address_arg(to, "--to")
    wanted = parse_classes(classes)
    why = Purpose.parse(purpose)
    with _client(node, wallet) as client:
        out = client.grant(grantee, wanted, why, days=days)
    if as_json:
        print_json(out)
        return
    console.print(
        f"grant [bold]{out['grant_id']}[/bold]: {grantee} may read {', '.join(c.name.lower() for c in wanted)} "
        f"for {why.name.lower()} for {days:g} day(s); block {out['block_number']}",
        soft_wrap=True,
    )


@app.command(epilog="Example:\n\n  medledger patient revoke 12")
@cli_errors
def revoke(
    grant_id: Annotated[int, typer.Argument(min=1, help="The grant's id (see `medledger patient grants`).")],
    node: NodeOpt = DEFAULT_NODE,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a grant; enforced by every custodian from the block that contains the revocation."""
    with _client(node, wallet) as client:
        out = client.revoke(grant_id)
    if as_json:
        print_json({**out, "grant_id": grant_id})
        return
    console.print(f"grant {grant_id} revoked in block {out['block_number']}", soft_wrap=True)


@app.command(epilog="Example:\n\n  medledger patient download 0x5f2c…e9 --out lipid-panel.hl7")
@cli_errors
def download(
    record: Annotated[str, typer.Argument(help="Record id (0x + 64 hex digits).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the decrypted record.", metavar="FILE")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --out file.")] = False,
    node: NodeOpt = DEFAULT_NODE,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Download one of your records from its custodian, verify it against the chain's commitment and decrypt it."""
    rid = record_arg(record)
    if out.exists() and not force:
        raise InputError(f"{out} exists; pass --force to overwrite it", code="output_exists")
    with _client(node, wallet) as client:
        got = client.download(rid)
    write_new(out, got.content, force=True)
    info = {
        "record_id": got.record_id,
        "custodian": got.custodian,
        "media_type": got.media_type,
        "bytes": len(got.content),
        "commitment": got.commitment,
        "verified": True,
        "out": str(out),
    }
    if as_json:
        print_json(info)
        return
    console.print(
        f"{len(got.content)} bytes ({got.media_type}) written to {out}; ciphertext matched the on-chain commitment",
        soft_wrap=True,
        highlight=False,
    )


@app.command(epilog="Example:\n\n  medledger patient erase 0x5f2c…e9 --yes")
@cli_errors
def erase(
    record: Annotated[str, typer.Argument(help="Record id (0x + 64 hex digits).")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: erasure cannot be undone.")] = False,
    node: NodeOpt = DEFAULT_NODE,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Erase one of your records at its custodian (its keys are destroyed; an erasure marker goes on chain).
    Cannot be undone, so it needs --yes."""
    rid = record_arg(record)
    if not yes:
        raise InputError("erasure cannot be undone: pass --yes to confirm", code="confirmation_required")
    with _client(node, wallet) as client:
        out = client.erase(rid)
    if as_json:
        print_json(out)
        return
    console.print(f"record {out['record_id']} erased ({out['status']})", soft_wrap=True)
