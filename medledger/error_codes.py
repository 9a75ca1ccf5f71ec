"""The common package's error codes (chain client, crypto, blobs, addresses, CLI, Merkle trees) in the registry.

Declared here rather than next to each class so the library modules stay free of HTTP concerns; the base codes
are in :mod:`medledger.errors`, the authentication library's in :mod:`medledger.auth.errors`. Importing this
module (the node's :mod:`node.error_codes` does) registers them.
"""

from __future__ import annotations

from medledger.errors import define

# medledger.chain
define("chain_unavailable", 503, "the chain's JSON-RPC endpoint cannot be reached; retry later")
define("rpc_error", 502, "the chain's JSON-RPC endpoint answered with an error")
define("contract_reverted", 422, "the contract refused the transaction (details name its error)")
define("transaction_failed", 502, "a transaction could not be sent or was mined as failed")
define("transaction_timeout", 504, "no receipt arrived in time; the transaction may still be mined")

# medledger.crypto: callers that decrypt stored data re-raise it under their own code; one that escapes is ours.
define("decryption_failed", 500, "a ciphertext or wrapped key does not authenticate under its key and context")

# medledger.blobs
define("blob_not_found", 500, "the stored ciphertext is missing from the blob store (nothing was released)")
define("blob_corrupted", 500, "the stored ciphertext failed its integrity check (nothing was released)")
define("blob_store_unavailable", 503, "the blob store (e.g. the Kubo daemon) cannot be reached or failed")

# medledger.addresses
define("invalid_address", 422, "not a 0x-prefixed 20-byte address with a valid EIP-55 checksum")

# medledger.cli_support: what every command line prints for failures outside the error hierarchy.
define("usage", 422, "the command line is invalid (see --help)", api=False)
define("file_error", 500, "a file cannot be read or written", api=False)

# medledger.chain.merkle: no API route builds Merkle trees (the auditor and scripts do).
define("merkle_empty", 422, "a Merkle tree needs at least one value", api=False)
define("merkle_format", 422, "a Merkle tree dump does not have the OpenZeppelin format", api=False)
define("merkle_invalid", 422, "a Merkle tree dump is inconsistent", api=False)
define("merkle_index", 422, "a Merkle value index is out of bounds", api=False)
define("merkle_not_in_tree", 422, "the leaf is not in the Merkle tree", api=False)
define("merkle_node", 422, "a Merkle node is not 32 bytes of hex", api=False)
define("merkle_value", 422, "a Merkle value does not match the leaf encoding", api=False)
define("merkle_encoding", 422, "the Merkle leaf encoding is not a list of supported Solidity types", api=False)
