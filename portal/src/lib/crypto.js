// The patient's record crypto in the browser, byte for byte what medledger/crypto.py does, so a record is
// verified and decrypted here and the node never sees her key:
//   X25519 key    = sha256("medledger/patient-x25519/v1" ‖ secp256k1 private key)      (clients/wallet.py)
//   wrapped key   = 0x01 ‖ ephemeral pub(32) ‖ nonce(12) ‖ AES-256-GCM(record key) ‖ tag(16), AAD = the
//                   first 33 bytes; GCM key = HKDF-SHA256(shared, salt none, info = "medledger/ecies/v1" ‖
//                   ephemeral pub ‖ recipient pub)
//   ciphertext    = 0x01 ‖ nonce(12) ‖ AES-256-GCM(payload) ‖ tag(16), AAD = "medledger/record/v1" ‖
//                   record id(32) ‖ custodian address(20)
//   commitment    = SHA-256(ciphertext), read from the chain by the home node (the custodian cannot swap it).
// WebCrypto does SHA-256, HKDF and AES (native, ~GB/s); @noble/curves does X25519, which WebCrypto lacks in
// some browsers still in use.
import { x25519 } from "@noble/curves/ed25519.js";
import { concat, equalBytes, fromHex, utf8 } from "./bytes.js";

export const PATIENT_KEY_LABEL = utf8("medledger/patient-x25519/v1");
const ECIES_INFO = utf8("medledger/ecies/v1");
const RECORD_AAD_PREFIX = utf8("medledger/record/v1");
const VERSION = 0x01;

/** An error of the wallet's own checks; ``code`` is stable (the page translates it). */
export class WalletCryptoError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** The X25519 key pair derived from the wallet's secp256k1 private key (32 bytes). */
export async function x25519FromWalletKey(privateKey) {
  const secret = await sha256(concat(PATIENT_KEY_LABEL, privateKey));
  return { secret, publicKey: x25519.getPublicKey(secret) };
}

async function gcmDecrypt(rawKey, nonce, data, aad, code) {
  const key = await crypto.subtle.importKey("raw", rawKey, "AES-GCM", false, ["decrypt"]);
  try {
    return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, key, data));
  } catch {
    throw new WalletCryptoError(code, "does not authenticate");
  }
}

/** Inverse of medledger.crypto.wrap_to_x25519: the record key wrapped to ``keys`` at release time. */
export async function unwrapWithX25519(wrapped, keys) {
  if (wrapped.length < 1 + 32 + 12 + 16 || wrapped[0] !== VERSION) throw new WalletCryptoError("decryption_failed", "malformed wrapped key");
  const header = wrapped.subarray(0, 33);
  const ephemeral = wrapped.subarray(1, 33);
  const nonce = wrapped.subarray(33, 45);
  let shared;
  try {
    shared = x25519.getSharedSecret(keys.secret, ephemeral);
  } catch {
    throw new WalletCryptoError("decryption_failed", "invalid ephemeral key");
  }
  const ikm = await crypto.subtle.importKey("raw", shared, "HKDF", false, ["deriveBits"]);
  // No salt: RFC 5869's default (a hash-length zero string) is what an empty HMAC key pads to.
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: concat(ECIES_INFO, ephemeral, keys.publicKey) },
    ikm,
    256,
  );
  return gcmDecrypt(new Uint8Array(bits), nonce, wrapped.subarray(45), header, "decryption_failed");
}

export function recordAad(recordId, custodian) {
  const rid = typeof recordId === "string" ? fromHex(recordId) : recordId;
  const addr = fromHex(custodian);
  if (rid.length !== 32 || addr.length !== 20) throw new WalletCryptoError("decryption_failed", "bad record context");
  return concat(RECORD_AAD_PREFIX, rid, addr);
}

export async function decryptRecord(ciphertext, key, recordId, custodian) {
  if (ciphertext.length < 1 + 12 + 16 || ciphertext[0] !== VERSION) throw new WalletCryptoError("decryption_failed", "malformed ciphertext");
  return gcmDecrypt(key, ciphertext.subarray(1, 13), ciphertext.subarray(13), recordAad(recordId, custodian), "decryption_failed");
}

/**
 * What clients/patient.py download() does after fetching: check SHA-256(ciphertext) against the commitment the
 * home node read from the chain, unwrap the record key with her X25519 key, decrypt. Returns the plaintext.
 */
export async function openRelease({ ciphertext, wrappedKey, commitment, recordId, custodian, keys }) {
  // Hash and decryption run at once (WebCrypto works off the main thread; ~2x faster on a 40 MB DICOM), and
  // the plaintext is only handed out once the hash matched.
  const digest = sha256(ciphertext);
  digest.catch(() => {});
  const key = await unwrapWithX25519(wrappedKey, keys).catch(async (err) => {
    await digest.then(check);
    throw err;
  });
  const plaintext = decryptRecord(ciphertext, key, recordId, custodian);
  plaintext.catch(() => {}); // awaited below, after the commitment check (no "unhandled rejection" meanwhile)
  check(await digest);
  return plaintext;

  function check(d) {
    if (!equalBytes(d, fromHex(commitment))) {
      throw new WalletCryptoError("verification_failed", "the custodian's ciphertext does not match the on-chain commitment");
    }
  }
}
