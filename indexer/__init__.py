"""Indexer: reorg-safe chain follower into SQL (issue 4 on)."""
