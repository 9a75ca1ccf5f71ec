"""The regional master patient index (issue 16), as a node module.

What exists now is its first, self-contained part: the linkage engine (:mod:`workflows.mpi.linkage`:
normalization through :mod:`medledger.demographics`, the privacy-preserving encoding, the matcher both modes
share) and the bootstrap commands ``medledger mpi link`` / ``medledger mpi dedupe``. The index service (tables,
routers, feeds, identity operations) comes next; docs/mpi.md says what is there.
"""
