"""The production chain on Hyperledger Besu: the QBFT genesis and the local permissioning file.

Besu removed on-chain (smart-contract) permissioning in 25.6, so the Consortium contract stays the source of
truth for who may transact and which nodes may connect, and every Besu node enforces it through its *local*
permissions file (``permissions_config.toml``, keys ``accounts-allowlist`` and ``nodes-allowlist``). This module
renders that file from contract state and writes it atomically, reporting whether the allowlists changed so a
sync timer (scripts/besu_permissions.py) asks Besu to reload only when needed. It also renders the QBFT genesis
(scripts/besu_genesis.py). chain_config/besu/README.md describes the whole procedure.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rlp
from eth_utils import is_checksum_address

from medledger.addresses import Address, eip55
from medledger.chain.contracts import ConsortiumClient
from medledger.chain.rpc import JsonRpcClient, RpcError
from medledger.errors import ConfigError, InputError, MedLedgerError
from medledger.files import atomic_write_text
from medledger.paths import chain_config_dir

#: Chain id of the MedLedger production network (documented in chain_config/besu/README.md).
DEFAULT_CHAIN_ID = 2026
#: Bytes of vanity data that open a BFT ``extraData``.
EXTRA_VANITY_LENGTH = 32
#: Besu's answer to a successful ``perm_reloadPermissionsFromFile``.
RELOAD_SUCCESS = "Success"

_ADDRESS_RE = re.compile(r"(?:0x)?([0-9a-fA-F]{40})")
_ENODE_ID_RE = re.compile(r"[0-9a-f]{128}")
_ENODE_URL_RE = re.compile(
    r"enode://(?P<id>[0-9a-fA-F]{128})@(?:\[(?P<ipv6>[0-9a-fA-F:.]+)\]|(?P<host>[^:@/?\[\]\s]+))"
    r":(?P<port>[0-9]{1,5})(?P<query>\?discport=[0-9]{1,5})?"
)
_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME_RE = re.compile(rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?")
_JSON_RPC_METHOD_NOT_FOUND = -32601


# ---------------------------------------------------------------------------------------------- addresses


def normalize_address(value: str, what: str = "address") -> Address:
    """``value`` as a checksummed address; :class:`InputError` unless it is 20 bytes of hex.

    The ``0x`` prefix is optional (Besu's ``toEncode.json`` examples omit it). Mixed case must be a valid
    EIP-55 checksum, since a wrong checksum usually means a mistyped address.
    """
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, not {type(value).__name__}")
    m = _ADDRESS_RE.fullmatch(value.strip())
    if m is None:
        raise InputError(f"{what} {value!r} is not a 20-byte hex address")
    body = m.group(1)
    candidate = "0x" + body
    if body != body.lower() and body != body.upper() and not is_checksum_address(candidate):
        raise InputError(f"{what} {value!r} has an invalid EIP-55 checksum")
    return eip55(candidate)


def _unique_addresses(values: Iterable[str], what: str) -> list[Address]:
    out: list[Address] = []
    seen: set[Address] = set()
    for v in values:
        addr = normalize_address(v, what)
        if addr in seen:
            raise InputError(f"{what} {addr} is listed twice")
        seen.add(addr)
        out.append(addr)
    return out


# ---------------------------------------------------------------------------------------------- QBFT genesis


def qbft_extra_data(validators: Sequence[str]) -> str:
    """The genesis ``extraData`` of a QBFT chain whose initial validators are ``validators``, 0x-hex.

    ``RLP([32 zero bytes of vanity, [validator addresses], no vote, round 0, no seals])``, byte for byte what
    ``besu rlp encode --type=QBFT_EXTRA_DATA`` prints, validators in the given order. In QBFT's encoding
    (Besu's ``QbftExtraDataCodec``) "no vote" is an *empty list* and round 0 is the RLP integer 0 (an empty
    string), so the tail is ``c0 80 c0``; IBFT 2.0 instead writes ``80 84 00000000`` there, and Besu's QBFT
    decoder rejects that layout.
    """
    addrs = _unique_addresses(validators, "validator")
    if not addrs:
        raise InputError("a QBFT genesis needs at least one validator")
    payload = [b"\x00" * EXTRA_VANITY_LENGTH, [bytes.fromhex(a[2:]) for a in addrs], [], b"", []]
    return "0x" + rlp.encode(payload).hex()


def qbft_extra_data_validators(extra_data: str) -> list[Address]:
    """Decode a QBFT genesis ``extraData`` back to its validator addresses (checksummed, in order).

    Raises :class:`InputError` unless it has the genesis shape: 32-byte vanity, validators, no vote, round 0,
    no seals.
    """
    try:
        raw = bytes.fromhex(extra_data[2:] if extra_data.startswith("0x") else extra_data)
        items = rlp.decode(raw)
    except (ValueError, rlp.exceptions.DecodingError) as exc:
        raise InputError(f"extraData is not RLP: {exc}") from None
    ok = (
        isinstance(items, list)
        and len(items) == 5
        and items[0] == b"\x00" * EXTRA_VANITY_LENGTH
        and isinstance(items[1], list)
        and all(isinstance(v, bytes) and len(v) == 20 for v in items[1])
        and items[2] == []
        and items[3] == b""
        and items[4] == []
    )
    if not ok:
        raise InputError("extraData is not a QBFT genesis extraData (vanity, validators, no vote, round 0, no seals)")
    return [eip55("0x" + v.hex()) for v in items[1]]


def default_genesis_template() -> Path:
    return chain_config_dir() / "besu" / "genesis.template.json"


def _strip_comments(value: Any) -> Any:
    # JSON has no comments, so the template documents itself in "_"-prefixed keys; they are not Besu's.
    if isinstance(value, dict):
        return {k: _strip_comments(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, list):
        return [_strip_comments(v) for v in value]
    return value


def render_genesis(
    validators: Sequence[str], chain_id: int = DEFAULT_CHAIN_ID, template: Path | None = None
) -> dict[str, Any]:
    """The QBFT genesis for ``validators``: the template with ``config.chainId`` and ``extraData`` filled in.

    Validators are sorted by address first (as Besu's docs ask for ``toEncode.json``) so the same set gives
    the same genesis block hash whichever order the operators list them in.
    """
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or not 0 < chain_id < 2**63:
        raise InputError(f"chain id must be a positive integer, not {chain_id!r}")
    addrs = sorted(_unique_addresses(validators, "validator"), key=lambda a: int(a, 16))
    path = template or default_genesis_template()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"genesis template not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"genesis template {path} is unreadable: {exc}") from None
    genesis = _strip_comments(raw)
    config = genesis.get("config") if isinstance(genesis, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("qbft"), dict):
        raise ConfigError(f"genesis template {path} has no config.qbft section: not a QBFT genesis")
    # Besu reads genesis keys case-insensitively; drop any other spelling so only one chain id remains.
    genesis["config"] = {"chainId": chain_id, **{k: v for k, v in config.items() if k.lower() != "chainid"}}
    genesis["extraData"] = qbft_extra_data(addrs)
    return genesis


# ---------------------------------------------------------------------------------------------- enode URLs


def _valid_host(host: str, allow_dns: bool) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        # Without --Xdns-enabled Besu rejects a host name, and with it the *whole* file, so DNS names are
        # opt-in; an all-digit last label is a mistyped IP, not a name.
        return (
            allow_dns
            and len(host) <= 253
            and _DNS_NAME_RE.fullmatch(host) is not None
            and not host.rstrip(".").rsplit(".", 1)[-1].isdigit()
        )
    # Zone ids (fe80::1%eth0) mean nothing to a remote peer.
    return not (isinstance(ip, ipaddress.IPv6Address) and ip.scope_id)


def _enode_problem(enode_id: object, host: object, port: object, allow_dns: bool) -> str | None:
    # Fixed wording only: callers may show it next to member-written text, never instead of checking it.
    if not isinstance(enode_id, str) or _ENODE_ID_RE.fullmatch(enode_id) is None:
        return "enode id is not 128 lowercase hex characters (the node's public key, no 0x)"
    if not isinstance(host, str) or not _valid_host(host, allow_dns):
        return "host is not an IP address" + (" or DNS name" if allow_dns else " (DNS names need --Xdns-enabled)")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        return "port is not a TCP port (1-65535)"
    return None


def enode_url(enode_id: str, host: str, port: int, *, allow_dns: bool = False) -> str:
    """``enode://<id>@<host>:<port>`` after checking each part; :class:`InputError` otherwise.

    The checks matter beyond tidiness: a node's host is free text a member wrote on chain, it ends up inside
    a TOML string, and one entry Besu cannot parse makes it reject the whole permissions file.
    """
    problem = _enode_problem(enode_id, host, port, allow_dns)
    if problem is not None:
        raise InputError(f"invalid enode {enode_id!r}@{host!r}:{port!r}: {problem}")
    shown = f"[{host}]" if ":" in host else host
    return f"enode://{enode_id}@{shown}:{port}"


def normalize_enode_url(url: str, *, allow_dns: bool = False) -> str:
    """An operator-supplied enode URL (e.g. a bootnode), validated, with its node id in lowercase."""
    if not isinstance(url, str):
        raise InputError(f"enode URL must be a string, not {type(url).__name__}")
    m = _ENODE_URL_RE.fullmatch(url.strip())
    if m is None:
        raise InputError(f"{url!r} is not an enode URL (enode://<128 hex>@<host>:<port>)")
    host = m.group("ipv6") or m.group("host")
    if m.group("ipv6"):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InputError(f"{url!r} has an invalid IPv6 address") from None
    base = enode_url(m.group("id").lower(), host, int(m.group("port")), allow_dns=allow_dns)
    query = m.group("query") or ""
    if query and not 0 < int(query.split("=", 1)[1]) < 65536:
        raise InputError(f"{url!r} has an invalid discport")
    return base + query


# ---------------------------------------------------------------------------------------------- permissions


@dataclass(frozen=True)
class PermissionLists:
    """Besu's allowlists as read from one Consortium contract at one block, plus operator extras."""

    #: None for a bootstrap file written before the contract exists.
    chain_id: int | None
    block_number: int | None
    contract: str | None
    #: Checksummed, sorted by address value, unique.
    accounts: tuple[str, ...]
    #: Enode URLs, sorted, unique.
    nodes: tuple[str, ...]
    extra_accounts: tuple[str, ...] = ()
    extra_nodes: tuple[str, ...] = ()
    #: Registrations left out because they cannot be written safely, one line each (owner and reason).
    skipped: tuple[str, ...] = ()

    def to_toml(self) -> str:
        """The permissions file: a header saying where it came from, then the two arrays (deterministic)."""
        lines = [
            "# Hyperledger Besu local permissioning file (permissions_config.toml) for the MedLedger network.",
            "# GENERATED - DO NOT EDIT BY HAND: scripts/besu_permissions.py rewrites it from the Consortium",
            "# contract (active members may transact; nodes registered by active members may connect).",
            "# Change membership through Consortium governance and nodes with addNode/removeNode instead.",
        ]
        if self.contract is None:
            lines.append("# bootstrap: operator-supplied lists only, written before the contracts were deployed")
        else:
            lines += [f"# chain id: {self.chain_id}", f"# block: {self.block_number}", f"# contract: {self.contract}"]
        lines += [f"# extra account (operator-supplied, not from the contract): {a}" for a in self.extra_accounts]
        lines += [f"# extra node (operator-supplied, not from the contract): {n}" for n in self.extra_nodes]
        lines += [f"# skipped: {s}" for s in self.skipped]
        lines += [
            "",
            *_toml_array("accounts-allowlist", self.accounts),
            "",
            *_toml_array("nodes-allowlist", self.nodes),
        ]
        return "\n".join(lines) + "\n"


def _toml_array(key: str, values: Sequence[str]) -> list[str]:
    # Every value was validated to plain hex / enode syntax, so json.dumps gives a valid TOML basic string.
    if not values:
        return [f"{key} = []"]
    body = [f"  {json.dumps(v)}," for v in values]
    body[-1] = body[-1].rstrip(",")
    return [f"{key} = [", *body, "]"]


def _view_at(consortium: ConsortiumClient, name: str, block: int) -> tuple[Any, ...]:
    # Pinned to one block so members and nodes describe the same state as the header's block number.
    fn = consortium.abi.function(name)
    result = consortium.rpc.call(
        "eth_call", [{"to": consortium.address, "data": "0x" + fn.encode(()).hex()}, hex(block)]
    )
    if not isinstance(result, str) or result in ("0x", ""):
        raise ConfigError(
            f"no Consortium contract answers at {consortium.address} (block {block}): wrong RPC node or manifest?"
        )
    try:
        return fn.decode(bytes.fromhex(result[2:]))
    except Exception as exc:  # eth_abi raises several unrelated types for malformed return data
        raise ConfigError(f"Consortium.{name}() at {consortium.address} returned undecodable data: {exc}") from None


def read_permission_lists(
    consortium: ConsortiumClient,
    *,
    extra_accounts: Sequence[str] = (),
    extra_nodes: Sequence[str] = (),
    allow_dns: bool = False,
) -> PermissionLists:
    """Read active members and their registered nodes from ``consortium`` at the latest block.

    ``allow_dns`` admits node hosts that are DNS names; set it only for Besu nodes run with ``--Xdns-enabled``.
    """
    extras_a = tuple(dict.fromkeys(normalize_address(a, "extra account") for a in extra_accounts))
    extras_n = tuple(dict.fromkeys(normalize_enode_url(n, allow_dns=allow_dns) for n in extra_nodes))
    chain_id = consortium.rpc.chain_id()
    block = consortium.rpc.block_number()

    members = [eip55(a) for a in _view_at(consortium, "members", block)[0]]
    nodes: set[str] = set()
    skipped: list[str] = []
    for owner, port, enode_id, host in _view_at(consortium, "nodes", block)[0]:
        problem = _enode_problem(enode_id, host, port, allow_dns)
        if problem is None:
            nodes.add(enode_url(enode_id, host, port, allow_dns=allow_dns))
        else:
            # One member's malformed registration must not block the sync (it would also freeze removals);
            # the comment names it by owner and (validated) id only, never by the offending text.
            shown = f"enode {enode_id} " if _ENODE_ID_RE.fullmatch(enode_id) else "a node "
            skipped.append(f"{shown}registered by {eip55(owner)}: {problem}")
    accounts = sorted(set(members) | set(extras_a), key=lambda a: int(a, 16))
    return PermissionLists(
        chain_id=chain_id,
        block_number=block,
        contract=consortium.address,
        accounts=tuple(accounts),
        nodes=tuple(sorted(nodes | set(extras_n))),
        extra_accounts=extras_a,
        extra_nodes=extras_n,
        skipped=tuple(skipped),
    )


def render_permissions(
    consortium: ConsortiumClient,
    *,
    extra_accounts: Sequence[str] = (),
    extra_nodes: Sequence[str] = (),
    allow_dns: bool = False,
) -> str:
    """The ``permissions_config.toml`` text for Besu, rendered from ``consortium`` at the latest block.

    ``accounts-allowlist`` holds the active members (plus ``extra_accounts``, e.g. the deployer during
    bootstrap); ``nodes-allowlist`` the enode URLs of nodes registered by active members (plus
    ``extra_nodes``, e.g. bootnodes, which Besu requires to be allowlisted). Registrations Besu could not
    parse are left out and named in the header (see :func:`read_permission_lists` for ``allow_dns``).
    """
    lists = read_permission_lists(
        consortium, extra_accounts=extra_accounts, extra_nodes=extra_nodes, allow_dns=allow_dns
    )
    return lists.to_toml()


def _payload(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def write_permissions(path: Path | str, text: str) -> bool:
    """Write ``text`` to ``path`` atomically; True if the allowlists changed, False if they did not.

    Comment lines are ignored in the comparison: the header names the block it was read at, which moves
    every run, while Besu only cares about the arrays. When they are unchanged the file is left untouched
    (its header then names the block at which these lists were first written), so a timer reloads Besu only
    after a real change. Otherwise it is replaced with :func:`atomic_write_text`, so Besu never reads a
    half-written file.
    """
    path = Path(path)
    old: str | None
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    except UnicodeDecodeError:
        old = ""
    if old is not None and _payload(old) == _payload(text):
        return False
    atomic_write_text(path, text)
    return True


# ---------------------------------------------------------------------------------------------- Besu RPC


def _perm_call(rpc: JsonRpcClient, method: str) -> Any:
    try:
        return rpc.call(method)
    except RpcError as err:
        if err.rpc_code == _JSON_RPC_METHOD_NOT_FOUND:
            raise ConfigError(
                f"{method} is not available at {rpc.url}: enable the PERM API (rpc-http-api) and local permissioning"
            ) from None
        raise


def reload_permissions(rpc: JsonRpcClient) -> None:
    """Ask Besu to re-read its permissions file (``perm_reloadPermissionsFromFile``)."""
    result = _perm_call(rpc, "perm_reloadPermissionsFromFile")
    if result != RELOAD_SUCCESS:
        raise MedLedgerError(f"perm_reloadPermissionsFromFile at {rpc.url} answered {result!r}, not {RELOAD_SUCCESS!r}")


def live_allowlists(rpc: JsonRpcClient) -> tuple[list[str], list[str]]:
    """The accounts and nodes allowlists Besu enforces right now (``perm_getAccountsAllowlist`` and
    ``perm_getNodesAllowlist``)."""
    accounts = _perm_call(rpc, "perm_getAccountsAllowlist")
    nodes = _perm_call(rpc, "perm_getNodesAllowlist")
    if not isinstance(accounts, list) or not isinstance(nodes, list):
        raise MedLedgerError(f"Besu at {rpc.url} answered the perm_get*Allowlist calls with non-lists")
    return [str(a) for a in accounts], [str(n) for n in nodes]


def allowlists_match(lists: PermissionLists, accounts: Sequence[str], nodes: Sequence[str]) -> bool:
    """Whether Besu's live allowlists equal ``lists`` (accounts compared case-insensitively, as Besu does)."""
    want_a = {a.lower() for a in lists.accounts}
    want_n = {n.lower() for n in lists.nodes}
    return want_a == {a.lower() for a in accounts} and want_n == {n.lower() for n in nodes}
