"""Institution node configuration: one TOML file in the node's data directory (``node.toml``).

Everything has a sensible default under the data directory, so ``medledger node init --data-dir DIR`` is
enough for a dev node; production sets ``database_url`` (PostgreSQL), ``store_url`` (Kubo) and ``rpc_url``.
Secrets are never in this file: the keystore password comes from the environment variable named by
``password_env`` (or an interactive prompt).
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from medledger.errors import ConfigError
from medledger.files import atomic_write_text

CONFIG_NAME = "node.toml"


@dataclass
class AnchorSettings:
    max_batch: int = 500
    max_wait_ms: int = 200
    confirmations: int = 1


@dataclass
class AccessLogSettings:
    """How journaled accesses go on chain (node.access_logger)."""

    max_batch: int = 500
    #: How long the oldest journaled access waits for a fuller ``logAccesses`` batch: fewer, larger
    #: transactions under load (less gas and CPU per access); the journal already holds every access durably.
    max_wait_ms: int = 500


@dataclass
class NotificationSettings:
    """Outbound notification channels (node.notifications); every notice is in its recipient's in-app inbox
    whatever is set here. Empty URLs: that channel is off."""

    #: E-mail: ``smtp://[user@]host:port`` (STARTTLS when offered), ``smtp+plain://`` or ``smtps://``.
    smtp_url: str = ""
    smtp_from: str = ""
    #: The environment variable holding the SMTP password (never this file).
    smtp_password_env: str = "MEDLEDGER_SMTP_PASSWORD"
    #: SMS / voice / web push: the HTTP gateway that takes one JSON POST per message.
    gateway_url: str = ""
    gateway_channels: list[str] = field(default_factory=lambda: ["sms", "voice"])
    gateway_token_env: str = "MEDLEDGER_GATEWAY_TOKEN"
    #: Sends of one delivery before it fails; the first retry waits retry_base_s, doubling each time.
    max_attempts: int = 8
    retry_base_s: float = 5.0


@dataclass
class RateLimitSettings:
    """Request rate limits of the HTTP API (node.api.ratelimit): one token bucket per identity, in memory. A staff
    token, a signed-in patient and a client address without credentials (or whose credentials were refused) get
    ``requests_per_s`` sustained and ``burst`` at once; a signed institution (another member's node, which reads in
    bulk) gets the ``institution_*`` pair. Defaults are above what a person or a portal page does and above the
    benchmarks' loads, so they stop floods, not work; tighten them per deployment."""

    enabled: bool = True
    requests_per_s: float = 100.0
    burst: int = 500
    institution_requests_per_s: float = 5000.0
    institution_burst: int = 10000
    #: Paths never limited: the liveness probe, so that a flood cannot get a healthy node restarted.
    exempt_paths: list[str] = field(default_factory=lambda: ["/healthz"])
    #: Buckets kept at most; beyond that the least recently used is forgotten (it starts full again).
    max_tracked: int = 100_000

    def __post_init__(self) -> None:
        if (
            min(self.requests_per_s, self.institution_requests_per_s) <= 0
            or min(self.burst, self.institution_burst) < 1
        ):
            raise ConfigError("[rate_limit]: rates must be > 0 and bursts at least 1")
        if self.max_tracked < 1:
            raise ConfigError("[rate_limit]: max_tracked must be at least 1")


#: The node's own sections of node.toml: key -> settings type. Every other table is a module's section
#: (``[<module name>]``), checked by that module when the node opens (node.modules).
_SECTIONS: dict[str, type] = {
    "anchor": AnchorSettings,
    "access_log": AccessLogSettings,
    "notifications": NotificationSettings,
    "rate_limit": RateLimitSettings,
}
#: What a node runs when node.toml names no modules: the institution node's ingest and sharing APIs and the
#: web portal.
DEFAULT_MODULES = ("ingest", "sharing", "portal")


@dataclass
class NodeConfig:
    """Settings of one institution node. Paths are relative to ``data_dir`` unless absolute."""

    name: str
    data_dir: Path
    rpc_url: str = "http://127.0.0.1:8545"
    database_url: str = ""  # default: sqlite:///<data_dir>/node.db
    store_url: str = ""  # default: <data_dir>/blobs (local content-addressed store)
    deployments_dir: str = ""  # default: the project's chain_config/deployments
    keystore_dir: str = "keystore"
    password_env: str = "MEDLEDGER_NODE_PASSWORD"
    api_host: str = "127.0.0.1"
    api_port: int = 8701
    #: How other institutions and patients reach this node (published on chain with `medledger node profile`);
    #: signed requests and sign-in messages must name exactly this origin. Default: http://api_host:api_port.
    public_url: str = ""
    #: The node's own index of the ledger (consent, membership, timelines). Default: SQLite in the data dir.
    index_database_url: str = ""
    #: Seconds between polls of the node's index of the ledger (timelines, access histories, membership).
    #: Consent decisions do not wait for it: they verify the blocks ahead of the index themselves.
    ledger_poll_interval: float = 0.25
    #: A consent decision reflects every block mined more than this many milliseconds before it (0: verify the
    #: chain head on every decision): the most a revocation by another node can go unseen.
    consent_head_max_age_ms: int = 20
    max_payload_bytes: int = 512 * 1024 * 1024
    source_system: str = ""  # default: the node name
    #: "fast": the node's own strict FHIR checks (types, required elements, references; ~90 µs/record);
    #: "full": also every fhir.resources model rule (id/code patterns; ~620 µs/record).
    fhir_validation: str = "fast"
    #: The node modules this node runs (node.modules.loader): the same program is a hospital, the CDC or the
    #: region's master-index operator depending on this list.
    modules: list[str] = field(default_factory=lambda: list(DEFAULT_MODULES))
    anchor: AnchorSettings = field(default_factory=AnchorSettings)
    access_log: AccessLogSettings = field(default_factory=AccessLogSettings)
    notifications: NotificationSettings = field(default_factory=NotificationSettings)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    #: The modules' own sections (``[<module name>]``), as read; each module validates its own.
    module_settings: dict[str, dict[str, Any]] = field(default_factory=dict)

    # resolved views -------------------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'node.db'}"

    @property
    def index_db_url(self) -> str:
        return self.index_database_url or f"sqlite:///{self.data_dir / 'index.db'}"

    @property
    def origin(self) -> str:
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def blob_store_url(self) -> str:
        return self.store_url or str(self.data_dir / "blobs")

    @property
    def keystore_path(self) -> Path:
        p = Path(self.keystore_dir)
        return p if p.is_absolute() else self.data_dir / p

    @property
    def deployments_path(self) -> Path | None:
        return Path(self.deployments_dir) if self.deployments_dir else None

    @property
    def source(self) -> str:
        return self.source_system or self.name

    # persistence ----------------------------------------------------------------------------------------
    def save(self) -> Path:
        skip = {"data_dir", "module_settings", *_SECTIONS}
        body = {k: v for k, v in asdict(self).items() if k not in skip}
        lines = ["# MedLedger institution node. Secrets are not stored here (see password_env)."]
        lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
        sections = {name: asdict(getattr(self, name)) for name in _SECTIONS} | self.module_settings
        for section, values in sections.items():
            lines += ["", f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        path = self.data_dir / CONFIG_NAME
        atomic_write_text(path, "\n".join(lines) + "\n")
        return path

    @classmethod
    def load(cls, data_dir: Path) -> NodeConfig:
        path = data_dir / CONFIG_NAME
        try:
            raw = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no node at {data_dir}: run `medledger node init --data-dir {data_dir}`") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        known = {f.name for f in fields(cls)} - {"data_dir", "module_settings"}
        # Tables other than the node's own are modules' sections; the modules check them when the node opens.
        module_settings = {k: raw.pop(k) for k in list(raw) if k not in known and isinstance(raw[k], dict)}
        unknown = set(raw) - known
        if unknown:
            raise ConfigError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
        try:
            sections = {name: kind(**raw.pop(name, {})) for name, kind in _SECTIONS.items()}
            config = cls(data_dir=data_dir, **sections, **raw, module_settings=module_settings)
        except TypeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        if config.fhir_validation not in ("fast", "full"):
            raise ConfigError(f'{path}: fhir_validation must be "fast" or "full"')
        if not isinstance(config.modules, list) or not all(isinstance(m, str) for m in config.modules):
            raise ConfigError(f'{path}: modules must be a list of module names, e.g. modules = ["ingest", "sharing"]')
        return config

    def parse_options(self) -> dict[str, Any]:
        """Keyword arguments for node.ingest.parse / parse_file under this configuration."""
        return {"source_system": self.source, "max_bytes": self.max_payload_bytes, "validate": self.fhir_validation}


def _toml_value(v: Any) -> str:
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
