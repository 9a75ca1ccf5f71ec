"""MedLedger common package: what the institution node, the indexer and the clients share.

Sub-packages: :mod:`medledger.chain` (JSON-RPC, ABI, transactions, contract wrappers, deployment),
:mod:`medledger.vocabulary` (roles, purposes, record classes). The ``node``, ``indexer`` and ``clients``
packages import from here and never from each other.
"""

__version__ = "0.1.0"
