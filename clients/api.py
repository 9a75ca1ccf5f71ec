"""HTTP access to institution nodes, the only way clients talk to nodes.

Errors come back as :class:`NodeRefused` carrying the node's machine-readable ``code``, HTTP status and
details, so callers (and the CLI's exit codes) can branch on them.
"""

from __future__ import annotations

from typing import Any

import httpx

from medledger.errors import MedLedgerError


class NodeRefused(MedLedgerError):
    """A node answered with an error (``code`` is the node's own)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, code=code, details=details)
        self.status = status


class NodeUnreachable(MedLedgerError):
    code = "node_unreachable"


class NodeClient:
    """One node's API at ``base_url``; ``token`` is a staff (``mlst_``) or patient (``mlpt_``) bearer token."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            resp = self._http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise NodeUnreachable(f"cannot reach {self.base_url}: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise refusal(resp)
        return resp

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self.request("POST", path, json=body).json()


def refusal(resp: httpx.Response) -> NodeRefused:
    try:
        err = resp.json()["error"]
        return NodeRefused(resp.status_code, str(err["code"]), str(err["message"]), dict(err.get("details") or {}))
    except (ValueError, KeyError, TypeError):
        return NodeRefused(resp.status_code, "http_error", f"HTTP {resp.status_code} from {resp.url}")
