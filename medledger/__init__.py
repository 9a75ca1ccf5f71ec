"""MedLedger common package: what the institution node, the indexer and the clients share.

Sub-packages: :mod:`medledger.chain` (JSON-RPC, ABI, transactions, contract wrappers, deployment),
:mod:`medledger.vocabulary` (roles, purposes, record classes). The ``node``, ``indexer`` and ``clients``
packages import from here and never from each other.
"""

import os

__version__ = "0.1.0"

# eth-hash picks its first installed backend, pycryptodome; the C one MedLedger depends on is faster and
# keeps the GIL (see medledger.keccak). An explicit ETH_HASH_BACKEND from the environment still wins.
os.environ.setdefault("ETH_HASH_BACKEND", "pysha3")
