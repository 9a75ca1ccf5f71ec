"""The toy workflow's routes (mounted under /v1/toy, clinicians and registrars only)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from node.modules import ModuleContext, Staff, errors, services_of
from tests.workflows.toy.service import toy_service

router = APIRouter()


class NoteIn(BaseModel):
    text: str = Field(max_length=1000)


class Note(BaseModel):
    id: int
    text: str
    author: str
    seen: bool


class Greeting(BaseModel):
    greeting: str
    node: str


def _ctx(request: Request) -> ModuleContext:
    return services_of(request).module("toy")


@router.post("/notes", response_model=Note, status_code=201, responses=errors(401, 403, 422), summary="Add a note")
def add_note(request: Request, body: NoteIn, who: Staff) -> Note:
    service = toy_service(_ctx(request))
    note_id = service.add(body.text, who.name)
    return Note(**next(n for n in service.notes() if n["id"] == note_id))


@router.get("/notes", response_model=list[Note], responses=errors(401, 403), summary="Every note")
def list_notes(request: Request, _: Staff) -> list[Note]:
    return [Note(**n) for n in toy_service(_ctx(request)).notes()]


@router.get("/greeting", response_model=Greeting, responses=errors(401, 403), summary="The configured greeting")
def greeting(request: Request, _: Staff) -> Greeting:
    ctx = _ctx(request)
    return Greeting(greeting=ctx.settings.greeting, node=ctx.services.config.name)
