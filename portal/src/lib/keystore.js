// The app's wallets at rest: keystore v3 JSON (scrypt + AES-128-CTR, password-protected, the format common
// wallets import and clients/wallet.py writes) in this browser's IndexedDB. Only the encrypted JSON is kept;
// the private key exists only in memory while the wallet is unlocked.

const DB = "medledger-wallet";
const STORE = "keystores";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "address" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function run(mode, fn) {
  return open().then(
    (db) =>
      new Promise((resolve, reject) => {
        const tx = db.transaction(STORE, mode);
        const req = fn(tx.objectStore(STORE));
        tx.oncomplete = () => (db.close(), resolve(req?.result));
        tx.onerror = () => (db.close(), reject(tx.error));
      }),
  );
}

/** Every stored wallet: [{address, json, saved_at}], oldest first. */
export async function listKeystores() {
  const all = (await run("readonly", (s) => s.getAll())) || [];
  return all.sort((a, b) => a.saved_at - b.saved_at);
}

export function saveKeystore(address, json) {
  return run("readwrite", (s) => s.put({ address, json, saved_at: Date.now() }));
}

export function deleteKeystore(address) {
  return run("readwrite", (s) => s.delete(address));
}

/** The keystore's address (keystore v3 stores it lower-case without 0x), or null if it is not a keystore. */
export function keystoreAddress(json) {
  try {
    const data = typeof json === "string" ? JSON.parse(json) : json;
    if (!data || typeof data !== "object" || !(data.crypto || data.Crypto)) return null;
    return typeof data.address === "string" ? `0x${data.address.replace(/^0x/i, "")}` : "";
  } catch {
    return null;
  }
}
