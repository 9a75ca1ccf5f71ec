"""Chain client shared by node, indexer and clients: JSON-RPC, ABI codec, transaction sender, contract
wrappers, EIP-712 typed data, deployment and the Anvil dev chain."""
