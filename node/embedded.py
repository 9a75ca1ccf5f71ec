"""Running institution nodes inside one process: the API on a loopback port in a thread, plus the node's
background work. Used by ``medledger demo``, the benches and the tests, which need several real nodes
talking HTTP to each other without managing processes.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from medledger.errors import ConfigError
from node.api.app import create_app
from node.config import NodeConfig
from node.db import open_node_db
from node.keystore import SCRYPT_N, LocalKeystore
from node.runtime import NodeRuntime
from node.service import NodeServices


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def provision_node(
    data_dir: Path,
    name: str,
    *,
    password: str,
    rpc_url: str,
    deployments_dir: str = "",
    private_key: bytes | None = None,
    port: int | None = None,
    scrypt_n: int = SCRYPT_N,
    database_url: str = "",
) -> NodeConfig:
    """Create a node data directory as ``medledger node init`` does, listening on ``port`` (a free one if
    None), and return its configuration."""
    if (data_dir / "node.toml").exists():
        raise ConfigError(f"{data_dir} already holds a node")
    port = port or free_port()
    config = NodeConfig(
        name=name,
        data_dir=data_dir,
        rpc_url=rpc_url,
        deployments_dir=deployments_dir,
        api_port=port,
        database_url=database_url,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    LocalKeystore.create(config.keystore_path, password, n=scrypt_n, private_key=private_key)
    config.save()
    engine, _ = open_node_db(config.db_url)
    engine.dispose()
    return config


@dataclass
class EmbeddedNode:
    """A node served from this process."""

    data_dir: Path
    password: str
    services: NodeServices | None = None
    runtime: NodeRuntime | None = None
    _server: uvicorn.Server | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        assert self.services is not None
        return self.services.config.origin

    def start(self, *, publish_profile: bool = True, timeout: float = 20.0) -> EmbeddedNode:
        """Open the node, bring its ledger view to the head, publish its endpoint and key on chain (unless
        told not to), start its background work and serve its API."""
        services = self.services = NodeServices.open(self.data_dir, password=self.password)
        if publish_profile:
            services.publish_profile()
        services.ledger.sync()
        self.runtime = NodeRuntime(services).start()
        cfg = services.config
        server = self._server = uvicorn.Server(
            uvicorn.Config(create_app(services), host=cfg.api_host, port=cfg.api_port, log_level="warning")
        )
        self._thread = threading.Thread(target=server.run, name=f"api-{cfg.api_port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"node {cfg.name} did not start serving on {cfg.origin}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving and close the node (again: nothing)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.runtime is not None:
            self.runtime.stop()
        if self.services is not None:
            self.services.close()
        self._server = self._thread = self.runtime = None

    def __enter__(self) -> EmbeddedNode:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
