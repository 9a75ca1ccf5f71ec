"""Errors of the indexer, each with a stable ``code`` (see medledger.errors)."""

from __future__ import annotations

from medledger.errors import InputError, MedLedgerError


class IndexerError(MedLedgerError):
    """The indexer cannot proceed (its database or the chain is not what it expects)."""

    code = "indexer_error"


class ChainMismatch(IndexerError):
    """The database was built from another chain or deployment."""

    code = "indexer_chain_mismatch"
    exit_code = 2


class SchemaMissing(IndexerError):
    """The database has no indexer schema (or an old one) and the caller did not ask to migrate it."""

    code = "indexer_schema_missing"


class BadLog(IndexerError):
    """A log from a MedLedger contract does not have the shape its event declares."""

    code = "indexer_bad_log"


class ReorgDetected(IndexerError):
    """The chain no longer contains a block the indexer processed; raised internally and handled."""

    code = "indexer_reorg"


class BadQuery(InputError):
    """A query argument is invalid (address, record id, cursor, range)."""

    code = "indexer_bad_query"
