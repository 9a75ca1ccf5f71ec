"""MedLedger common package: the ground floor the indexer, the node, the workflows and the clients share.

Sub-packages: :mod:`medledger.chain` (JSON-RPC, ABI, transactions, contract wrappers, deployment),
:mod:`medledger.auth` (SIWE, signed requests), :mod:`medledger.vocabulary` (roles, purposes, record classes),
:mod:`medledger.errors` (the error hierarchy and its code registry). It imports nothing of the project above it:
``medledger`` <- ``indexer`` <- ``node`` <- ``workflows/*`` <- ``assembly``, with ``clients`` on ``medledger`` and
``indexer`` only (docs/architecture.md; tests/test_layering.py enforces it).
"""

import os

__version__ = "0.1.0"

# eth-hash picks its first installed backend, pycryptodome; the C one MedLedger depends on is faster and
# keeps the GIL (see medledger.keccak). An explicit ETH_HASH_BACKEND from the environment still wins.
os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
