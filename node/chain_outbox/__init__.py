"""The node's one way of writing to the chain: the write-ahead outbox (sign → persist → broadcast →
reconcile on restart → exactly once). :mod:`.protocol` is the protocol the anchorer and the access logger run
their batches through; :mod:`.writer` is the queue every other workflow's contract writes go through
(``ChainWriter.enqueue`` in the workflow's own database transaction)."""

from node.chain_outbox.protocol import (
    Failure,
    OutboxConflict,
    OutboxStep,
    PendingWrite,
    Settled,
    SettleLater,
    WriteAheadOutbox,
    drain_steps,
)
from node.chain_outbox.writer import (
    MAX_REFUSALS,
    ChainWriteConflict,
    ChainWriteInvalid,
    ChainWriter,
    Handler,
    WriteKind,
    WriteStep,
)

__all__ = [
    "MAX_REFUSALS",
    "ChainWriteConflict",
    "ChainWriteInvalid",
    "ChainWriter",
    "Failure",
    "Handler",
    "OutboxConflict",
    "OutboxStep",
    "PendingWrite",
    "SettleLater",
    "Settled",
    "WriteAheadOutbox",
    "WriteKind",
    "WriteStep",
    "drain_steps",
]
