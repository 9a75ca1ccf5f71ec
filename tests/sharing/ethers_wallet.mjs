// A patient's wallet written against ethers v6, as a third-party wallet would be: it reads the signing
// context (schema, domain, nonce) from a MedLedger node, signs a grant with ethers' signTypedData, relays it,
// then signs and relays the revocation of that grant. Used by tests/sharing/test_wallet_signatures.py.
//
// usage: node ethers_wallet.mjs <node-url> <private-key> <grantee> <classes> <valid-until> <deadline>
// Prints one JSON line: {address, grant: {signature, status, body}, revoke: {signature, status, body}}.
import { Wallet } from "ethers";

const [node, key, grantee, classes, validUntil, deadline] = process.argv.slice(2);
const wallet = new Wallet(key);

async function context() {
  const r = await fetch(`${node}/v1/consent/context/${wallet.address}`);
  if (!r.ok) throw new Error(`context: HTTP ${r.status} ${await r.text()}`);
  return r.json();
}

async function post(path, body) {
  const r = await fetch(`${node}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

let ctx = await context();
const grant = {
  patient: wallet.address, grantee, classes: BigInt(classes), purpose: 1, validFrom: 0,
  validUntil: BigInt(validUntil), nonce: BigInt(ctx.consent_nonce), deadline: BigInt(deadline),
};
const grantSig = await wallet.signTypedData(ctx.consent_domain, { Grant: ctx.types.Grant }, grant);
const granted = await post("/v1/consents", {
  patient: wallet.address, grantee, classes: Number(classes), purpose: 1, valid_from: 0,
  valid_until: Number(validUntil), nonce: ctx.consent_nonce, deadline: Number(deadline), signature: grantSig,
  chain_id: ctx.chain_id,
});

let revoked = null;
let revokeSig = null;
if (granted.status === 201) {
  ctx = await context();
  const revoke = {
    patient: wallet.address, grantId: BigInt(granted.body.grant_id), nonce: BigInt(ctx.consent_nonce),
    deadline: BigInt(deadline),
  };
  revokeSig = await wallet.signTypedData(ctx.consent_domain, { Revoke: ctx.types.Revoke }, revoke);
  revoked = await post(`/v1/consents/${granted.body.grant_id}/revoke`, {
    patient: wallet.address, nonce: ctx.consent_nonce, deadline: Number(deadline), signature: revokeSig,
    chain_id: ctx.chain_id,
  });
}
console.log(JSON.stringify({
  address: wallet.address,
  grant: { signature: grantSig, ...granted },
  revoke: revoked && { signature: revokeSig, ...revoked },
}));
