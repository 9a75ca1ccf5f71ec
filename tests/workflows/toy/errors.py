"""The toy workflow's errors."""

from __future__ import annotations

from medledger.errors import InputError, define

define("toy_note_invalid", 422, "a toy note must have 1..200 characters of text")


class ToyNoteInvalid(InputError):
    """A note without 1..200 characters of text (422, as every InputError)."""

    code = "toy_note_invalid"
