"""The toy workflow's logic: notes staff write, which a background worker marks as seen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from node.modules import ModuleContext
from tests.workflows.toy.errors import ToyNoteInvalid
from tests.workflows.toy.models import ToyNote


@dataclass(frozen=True)
class ToySettings:
    greeting: str = "hello"
    sweep_interval: float = 0.05

    def validate(self) -> None:
        if not self.greeting:
            raise ValueError("greeting must not be empty")
        if not 0 < self.sweep_interval <= 60:
            raise ValueError("sweep_interval must be in (0, 60] seconds")


class ToyService:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def add(self, text: str, author: str) -> int:
        text = text.strip()
        if not 1 <= len(text) <= 200:
            raise ToyNoteInvalid("a note needs 1..200 characters")
        with self._sessions.begin() as s:
            note = ToyNote(text=text, author=author)
            s.add(note)
            s.flush()
            return note.id

    def notes(self) -> list[dict[str, object]]:
        with self._sessions() as s:
            rows = s.scalars(select(ToyNote).order_by(ToyNote.id)).all()
        return [{"id": n.id, "text": n.text, "author": n.author, "seen": n.seen_at is not None} for n in rows]

    def sweep(self) -> int:
        with self._sessions.begin() as s:
            return int(
                s.execute(update(ToyNote).where(ToyNote.seen_at.is_(None)).values(seen_at=datetime.now(UTC))).rowcount
            )


def toy_service(ctx: ModuleContext) -> ToyService:
    """The node's one ToyService (built on first use)."""
    service: ToyService = ctx.get("service", lambda: ToyService(ctx.services.sessions))
    return service
