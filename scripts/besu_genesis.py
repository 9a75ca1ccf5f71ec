"""Render the QBFT genesis file of the MedLedger production chain from the validators' addresses.

    .venv/bin/python scripts/besu_genesis.py \\
        --validator 0x... --validator 0x... --validator 0x... --validator 0x... \\
        --out genesis.json [--chain-id 2026] [--template chain_config/besu/genesis.template.json] [--force]

Each validator address is that node's key address (``besu --data-path=DIR public-key export-address``).
The template is chain_config/besu/genesis.template.json; the script fills in ``config.chainId`` and the QBFT
``extraData`` (validators sorted, so any order gives the same genesis) and prints the genesis extraData.

Every node of the network must start from the byte-identical file, and a running chain's genesis never
changes, so an existing different --out is only overwritten with --force. Exit status: 0 done, 1 failure
(write failed), 2 bad input (address, chain id, template). Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from medledger.chain.besu import DEFAULT_CHAIN_ID, atomic_write_text, render_genesis
from medledger.cli_support import ScriptArgumentParser, script_main
from medledger.errors import InputError

#: QBFT tolerates f faulty validators out of 3f + 1; fewer than 4 tolerate none.
BFT_MINIMUM = 4


def build_parser() -> argparse.ArgumentParser:
    p = ScriptArgumentParser(prog="besu_genesis.py", description="Render the MedLedger QBFT genesis file.")
    p.add_argument("--validator", action="append", default=[], metavar="ADDR", help="validator address (repeat)")
    p.add_argument("--out", type=Path, required=True, help="genesis file to write")
    p.add_argument("--chain-id", type=int, default=DEFAULT_CHAIN_ID, help=f"chain id (default {DEFAULT_CHAIN_ID})")
    p.add_argument("--template", type=Path, help="genesis template (default chain_config/besu/genesis.template.json)")
    p.add_argument("--force", action="store_true", help="overwrite an existing, different genesis file")
    return p


def run(args: argparse.Namespace) -> int:
    if not args.validator:
        raise InputError("give the validators with --validator ADDR (one per validator)")
    genesis = render_genesis(args.validator, args.chain_id, args.template)
    text = json.dumps(genesis, indent=2) + "\n"
    out: Path = args.out
    if out.exists() and not args.force:
        try:
            same = out.read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            raise InputError(f"{out} exists with different content; a chain's genesis must not change (use --force)")
    atomic_write_text(out, text)
    if len(args.validator) < BFT_MINIMUM:
        print(
            f"warning: {len(args.validator)} validators tolerate no faulty validator; production runs {BFT_MINIMUM}",
            file=sys.stderr,
        )
    print(f"wrote {out}: chain {args.chain_id}, {len(args.validator)} validators, extraData {genesis['extraData']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return script_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
