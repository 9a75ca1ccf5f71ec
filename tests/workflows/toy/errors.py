"""The toy workflow's errors."""

from __future__ import annotations

from medledger.errors import InputError


class ToyNoteInvalid(InputError):
    """A note without 1..200 characters of text (422, as every InputError)."""

    code = "toy_note_invalid"
