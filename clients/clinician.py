"""A clinician's (staff member's) calls to their own institution's node over HTTP: ingest, a patient's merged
timeline, reading a record wherever it is held (consent-checked and logged by its custodian), break-glass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clients.api import NodeClient


@dataclass(frozen=True)
class RecordRead:
    """A record as the node returned it, with what authorized the read (``custodian``, ``grant:ID`` or
    ``break_glass:ID``) and who holds it."""

    record_id: str
    authorization: str
    custodian: str
    media_type: str
    content: bytes

    @property
    def break_glass(self) -> bool:
        return self.authorization.startswith("break_glass")


class ClinicianClient:
    """Acts with the staff bearer ``token`` at the node at ``url``."""

    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        self.node = NodeClient(url, token=token, timeout=timeout)

    def close(self) -> None:
        self.node.close()

    def __enter__(self) -> ClinicianClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ingest(self, body: bytes) -> list[dict[str, Any]]:
        """POST one raw HL7 v2 message, DICOM file or FHIR JSON document; the node detects the format."""
        resp = self.node.request(
            "POST", "/v1/ingest", content=body, headers={"Content-Type": "application/octet-stream"}
        )
        return list(resp.json()["records"])

    def record_status(self, record_id: str) -> dict[str, Any]:
        return dict(self.node.get(f"/v1/records/{record_id}"))

    def timeline(self, patient: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.node.get(f"/v1/patients/{patient}/timeline", limit=min(limit, 1000), cursor=cursor)
            out += page["items"]
            cursor = page["next_cursor"]
            if cursor is None or len(out) >= limit:
                return out[:limit]

    def read(self, patient: str, record_id: str, *, purpose: str = "treatment") -> RecordRead:
        resp = self.node.request("GET", f"/v1/patients/{patient}/records/{record_id}", params={"purpose": purpose})
        return RecordRead(
            record_id=record_id,
            authorization=resp.headers.get("x-medledger-authorization", "?"),
            custodian=resp.headers.get("x-medledger-custodian", "?"),
            media_type=resp.headers.get("content-type", "application/octet-stream"),
            content=resp.content,
        )

    def break_glass(self, patient: str, reason: str, *, minutes: float = 60) -> dict[str, Any]:
        return dict(
            self.node.post(
                f"/v1/patients/{patient}/break-glass", {"reason": reason, "duration_seconds": int(minutes * 60)}
            )
        )
