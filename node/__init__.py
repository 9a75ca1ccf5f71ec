"""Institution node: ingest, encryption, off-chain storage, anchoring, consent-checked release (issue 3 on)."""
