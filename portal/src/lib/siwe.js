// Sign-In with Ethereum: the EIP-4361 text exactly as medledger/auth/siwe.py's SiweMessage.to_text() writes it
// (and its strict parser accepts): no scheme prefix, a statement, LF line ends, no trailing newline, the
// EIP-55 address, Issued At in UTC with "Z" and no fraction.

export const STATEMENT = "Sign in to MedLedger to see and control your health records.";

export function issuedAt(date = new Date()) {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** ``ctx``: the node's GET /v1/auth/siwe/nonce reply ({domain, uri, chain_id, nonce}); ``address``: EIP-55. */
export function siweMessage(ctx, address, when = new Date()) {
  return [
    `${ctx.domain} wants you to sign in with your Ethereum account:`,
    address,
    "",
    STATEMENT,
    "",
    `URI: ${ctx.uri}`,
    "Version: 1",
    `Chain ID: ${ctx.chain_id}`,
    `Nonce: ${ctx.nonce}`,
    `Issued At: ${issuedAt(when)}`,
  ].join("\n");
}
