"""The shared codes of the ledger: member roles, consent purposes, record classes, authorization kinds.

These numbers are stored on chain; they are append-only. ``contracts/utils/Roles.sol`` and
``ConsentRegistry.MAX_PURPOSE`` must agree with this module (tests check both).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

from medledger.errors import InputError


class Role(IntFlag):
    """Consortium role bits (contracts/utils/Roles.sol)."""

    HOSPITAL = 1 << 0
    CLINIC = 1 << 1
    LAB = 1 << 2
    CDC = 1 << 3
    MANUFACTURER = 1 << 4
    RESEARCHER = 1 << 5
    AUDITOR = 1 << 6
    RELAYER = 1 << 7
    EMERGENCY = 1 << 8

    @classmethod
    def custodian(cls) -> Role:
        """Roles that hold records, anchor them and log accesses to them."""
        return cls.HOSPITAL | cls.CLINIC | cls.LAB | cls.CDC

    @classmethod
    def parse(cls, text: str) -> Role:
        """Parse ``"hospital,relayer"`` (case-insensitive, comma or ``|`` separated)."""
        return _parse_flags(cls, text)


class Purpose(IntEnum):
    """Why a grantee reads records (ConsentRegistry purpose codes)."""

    TREATMENT = 1
    REFERRAL = 2
    RESEARCH = 3
    EMERGENCY = 4
    FAMILY = 5
    PUBLIC_HEALTH = 6
    PAYMENT = 7

    @classmethod
    def label(cls, code: int) -> str:
        """The lower-case name of ``code``, or the number itself if it is not a known purpose."""
        return _label(cls, code)

    @classmethod
    def parse(cls, text: str) -> Purpose:
        try:
            return cls[text.strip().upper().replace("-", "_")]
        except KeyError:
            raise InputError(f"unknown purpose {text!r}; one of: {', '.join(p.name.lower() for p in cls)}") from None


class RecordClass(IntEnum):
    """Kinds of record a grant can cover (bit ``value`` of a grant's class mask)."""

    DEMOGRAPHICS = 1
    ENCOUNTER = 2
    LAB = 3
    IMAGING = 4
    CLINICAL_NOTE = 5
    DIAGNOSTIC_REPORT = 6
    CONDITION = 7
    MEDICATION = 8
    ALLERGY = 9
    IMMUNIZATION = 10
    PROCEDURE = 11
    VITAL_SIGNS = 12
    SELF_TEST = 13

    @classmethod
    def label(cls, code: int) -> str:
        """The lower-case name of ``code``, or the number itself if it is not a known class."""
        return _label(cls, code)

    @classmethod
    def parse(cls, text: str) -> RecordClass:
        try:
            return cls[text.strip().upper().replace("-", "_")]
        except KeyError:
            raise InputError(
                f"unknown record class {text!r}; one of: {', '.join(c.name.lower() for c in cls)}"
            ) from None


def class_mask(classes: list[RecordClass] | tuple[RecordClass, ...]) -> int:
    """The on-chain bitmask covering ``classes``."""
    mask = 0
    for c in classes:
        mask |= 1 << int(c)
    return mask


def classes_in_mask(mask: int) -> list[RecordClass]:
    """The known record classes whose bits are set in ``mask``."""
    return [c for c in RecordClass if mask >> int(c) & 1]


class AuthKind(IntEnum):
    """What authorized an access (AccessLog.AuthKind)."""

    GRANT = 1
    BREAK_GLASS = 2
    PATIENT = 3
    CUSTODIAN = 4

    @classmethod
    def label(cls, code: int) -> str:
        """The lower-case name of ``code`` (``break_glass``), the API's word for it, or the number itself if it
        is not a known kind."""
        return _label(cls, code)


class RecordStatus(IntEnum):
    """Life-cycle of an anchored record (RecordRegistry.Status)."""

    NONE = 0
    ACTIVE = 1
    SUPERSEDED = 2
    ERASED = 3


def _label(cls: type[IntEnum], code: int) -> str:
    try:
        return cls(code).name.lower()
    except ValueError:
        return str(code)


def _parse_flags(cls: type[Role], text: str) -> Role:
    value = cls(0)
    for part in text.replace("|", ",").split(","):
        name = part.strip().upper()
        if not name:
            continue
        try:
            value |= cls[name]
        except KeyError:
            raise InputError(
                f"unknown role {part.strip()!r}; one of: {', '.join(r.name.lower() for r in cls if r.name)}"
            ) from None
    if not value:
        raise InputError("no role given")
    return value
