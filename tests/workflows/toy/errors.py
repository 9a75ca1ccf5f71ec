"""The toy workflow's error codes, declared with their HTTP status."""

from __future__ import annotations

from medledger.errors import InputError, define

define("toy_note_invalid", 422, "a toy note must have 1..200 characters of text")


class ToyNoteInvalid(InputError):
    code = "toy_note_invalid"
