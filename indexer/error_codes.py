"""The indexer's error codes in the registry (medledger.errors); the classes are in :mod:`indexer.errors`.

The node answers with these when its own index (node.ledger_view) fails, so they are part of its API.
"""

from __future__ import annotations

from medledger.errors import define

define("indexer_error", 500, "the ledger index cannot proceed (its database or the chain is not what it expects)")
define("indexer_chain_mismatch", 500, "the ledger index was built from another chain or deployment")
define("indexer_schema_missing", 500, "the ledger index database has no (or an old) schema")
define("indexer_bad_log", 502, "a log from a MedLedger contract does not have the shape its event declares")
define("indexer_reorg", 503, "the chain reorganised under the ledger index; retry")
define("indexer_bad_query", 422, "a ledger query argument is invalid (address, record id, cursor, range)")
