"""Schemathesis hooks for tests/node/test_schemathesis.py (loaded by the ``st`` CLI through SCHEMATHESIS_HOOKS).

The OpenAPI document names the format of ledger addresses (``eth-address``): 0x and 40 hex digits in one case,
or EIP-55 checksummed. A regex cannot say the checksum, so a generator reading only the pattern makes mixed-case
addresses with wrong checksums, which the node rightly refuses; this strategy makes the addresses the format
means, in each of the spellings the node takes.
"""

from __future__ import annotations

import schemathesis
from eth_utils import to_checksum_address
from hypothesis import strategies as st


def _spellings(raw: bytes) -> st.SearchStrategy[str]:
    return st.sampled_from(["0x" + raw.hex(), "0x" + raw.hex().upper(), str(to_checksum_address(raw))])


schemathesis.openapi.format("eth-address", st.binary(min_size=20, max_size=20).flatmap(_spellings))
