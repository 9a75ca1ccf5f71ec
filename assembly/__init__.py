"""The assembly: the thin top of the house that wires the ``medledger`` command and the regional demo.

It is the only package that imports everything (``medledger`` ← ``indexer`` ← ``node`` ← ``workflows/*`` ←
``assembly``; see docs/architecture.md): it mounts every component's command group, the command groups of the
node modules this installation provides, and runs the demo, which starts real nodes in-process.
"""
