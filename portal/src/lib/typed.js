// EIP-712 typed data of the patient's relayed actions, as medledger/chain/typed_data.py builds it: the domain
// and the types come from the node (GET /v1/consent/context/{patient}), so the wallet signs the published
// schema, and the same document goes to ethers' signTypedData and to an EIP-1193 wallet's
// eth_signTypedData_v4.

function full(ctx, primary, domain, message) {
  return {
    types: { EIP712Domain: ctx.types.EIP712Domain, [primary]: ctx.types[primary] },
    primaryType: primary,
    domain,
    message,
  };
}

/** Seconds since the epoch ``seconds`` from now: the signature's deadline (clients/wallet.py deadline()). */
export function deadline(seconds = 900) {
  return Math.floor(Date.now() / 1000) + seconds;
}

export function grantTyped(ctx, patient, terms, dl) {
  return full(ctx, "Grant", ctx.consent_domain, {
    patient,
    grantee: terms.grantee,
    classes: terms.classes,
    purpose: terms.purpose,
    validFrom: terms.validFrom,
    validUntil: terms.validUntil,
    nonce: ctx.consent_nonce,
    deadline: dl,
  });
}

export function revokeTyped(ctx, patient, grantId, dl) {
  return full(ctx, "Revoke", ctx.consent_domain, { patient, grantId, nonce: ctx.consent_nonce, deadline: dl });
}

export function registerKeyTyped(ctx, patient, encryptionKeyHex, dl) {
  return full(ctx, "RegisterPatientKey", ctx.consortium_domain, {
    patient,
    encryptionKey: encryptionKeyHex,
    nonce: ctx.consortium_nonce,
    deadline: dl,
  });
}

export function eraseTyped(ctx, patient, recordIdHex, dl) {
  return full(ctx, "EraseRecord", ctx.erasure_domain, { patient, recordId: recordIdHex, deadline: dl });
}

/** Bit c of a grant's class mask covers record class c (medledger.vocabulary.class_mask). */
export function classMask(codes) {
  return codes.reduce((mask, c) => mask | (1 << c), 0);
}
