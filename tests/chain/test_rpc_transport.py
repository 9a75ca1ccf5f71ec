"""The JSON-RPC client's HTTP transport against a real HTTP server (a stand-in for a node behind a proxy):
credentials in the URL, keep-alive connections the server closes, transient statuses, bad URLs."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from medledger.chain.rpc import JsonRpcClient, RpcUnavailable


class _Node(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless we say otherwise
    seen: list[dict] = []
    plan: list[int] = []  # statuses to answer with before answering normally
    close_after = False  # answer, then drop the connection without saying so

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(
            {"auth": self.headers.get("Authorization"), "body": body, "port": self.client_address[1]}
        )
        status = type(self).plan.pop(0) if type(self).plan else 200
        reply = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": "0x2a"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
        if type(self).close_after:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def node() -> Iterator[str]:
    _Node.seen, _Node.plan, _Node.close_after = [], [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Node)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_credentials_in_the_url_go_out_as_basic_auth(node):
    rpc = JsonRpcClient(f"http://operator:s%40cret@{node}/rpc?key=1")
    assert rpc.call("eth_blockNumber") == "0x2a"
    assert _Node.seen[0]["auth"] == "Basic " + base64.b64encode(b"operator:s@cret").decode()
    assert _Node.seen[0]["body"]["method"] == "eth_blockNumber"


def test_keep_alive_connection_is_reused(node):
    rpc = JsonRpcClient(f"http://{node}")
    for _ in range(3):
        rpc.call("eth_blockNumber")
    assert len({s["port"] for s in _Node.seen}) == 1


def test_connection_closed_by_the_node_is_replaced_without_a_retry_delay(node):
    """The node drops idle keep-alive connections (here: after every reply): the next call opens a new one
    at once instead of counting a failure and backing off."""
    _Node.close_after = True
    rpc = JsonRpcClient(f"http://{node}", retries=0)
    for _ in range(3):
        assert rpc.call("eth_blockNumber") == "0x2a"
    assert len({s["port"] for s in _Node.seen}) == 3


def test_transient_http_statuses_are_retried_then_reported(node):
    _Node.plan = [503, 429]
    rpc = JsonRpcClient(f"http://{node}", retries=2, backoff=0.01)
    assert rpc.call("eth_blockNumber") == "0x2a" and len(_Node.seen) == 3
    _Node.plan = [503, 503]
    with pytest.raises(RpcUnavailable, match="HTTP 503"):
        JsonRpcClient(f"http://{node}", retries=1, backoff=0.01).call("eth_blockNumber")


@pytest.mark.parametrize("url", ["ftp://user:s3cret@host/x", "http://", "localhost:8545"])
def test_unusable_urls_are_unavailable_without_leaking_credentials(url):
    with pytest.raises(RpcUnavailable) as exc:
        JsonRpcClient(url, retries=0).call("eth_chainId")
    assert "s3cret" not in str(exc.value)
