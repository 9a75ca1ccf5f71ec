"""The clients' error codes (patient, clinician and wallet CLIs, the auditor) in the registry (medledger.errors).

None crosses the node's HTTP API (``api=False``); each keeps the status an HTTP surface would give it, so a code
means the same everywhere. Codes the clients share with the node (``invalid_record_id``, ``invalid_reason``) are
the node's (node.error_codes).
"""

from __future__ import annotations

from medledger.errors import define

define("node_unreachable", 502, "the node's API cannot be reached", api=False)
define("verification_failed", 502, "what the node returned does not verify against the chain", api=False)
define("staff_token_missing", 500, "no staff token in the environment", api=False)
define("invalid_classes", 422, "no record class given", api=False)
define("confirmation_required", 422, "an irreversible operation was not confirmed (--yes)", api=False)
define("input_missing", 422, "an input file or directory does not exist, or there is none", api=False)
define("output_exists", 409, "the output file exists (--force overwrites it)", api=False)
define("output_unwritable", 500, "the output file cannot be written", api=False)

# clients.wallet, clients.wallet_cli
define("wallet_not_found", 500, "no wallet file at the path", api=False)
define("wallet_unreadable", 500, "the wallet file cannot be read or is not a keystore v3 file", api=False)
define("wallet_exists", 409, "a wallet file exists at the path; it is never overwritten", api=False)
define("wallet_password_empty", 422, "the wallet password is empty", api=False)
define("wallet_password_wrong", 422, "the wallet password does not decrypt the wallet", api=False)
define("key_missing", 500, "the environment variable meant to hold a private key is not set", api=False)
define("invalid_key", 422, "not a valid private key (hex)", api=False)

# clients.auditor
define("audit_database_error", 500, "the auditor's re-index database cannot be used", api=False)
define("audit_io_error", 500, "the auditor cannot read or write a file", api=False)
