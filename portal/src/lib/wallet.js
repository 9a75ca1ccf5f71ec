// The patient's signer, two kinds behind one interface:
//  * AppWallet: the app's own wallet (ethers v6), a keystore v3 kept in IndexedDB and unlocked with her
//    password; it signs and also derives her X25519 key (clients/wallet.py), so it can decrypt records.
//  * BrowserWallet: an EIP-1193 provider (window.ethereum, e.g. MetaMask): personal_sign and
//    eth_signTypedData_v4. It never reveals a private key, so the X25519 key cannot be derived from it.
// And the sign-ins (SIWE, per node) made with either: the patient token of each node she talks to.
import { Wallet, getAddress } from "ethers";
import { NodeApi } from "./api.js";
import { fromHex, toHex, utf8 } from "./bytes.js";
import { x25519FromWalletKey } from "./crypto.js";
import { siweMessage } from "./siwe.js";

export class WalletError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** ethers wants only the types of the signed struct (EIP712Domain is derived from the domain). */
function ethersTypes(typed) {
  return { [typed.primaryType]: typed.types[typed.primaryType] };
}

export class AppWallet {
  constructor(wallet) {
    this.kind = "app";
    this.wallet = wallet;
    this.address = wallet.address;
    this._keys = null;
  }

  static async create(password, progress) {
    if (!password) throw new WalletError("wallet_password_empty", "empty password");
    const wallet = new Wallet(toHex(crypto.getRandomValues(new Uint8Array(32))));
    const json = await wallet.encrypt(password, progress);
    return { wallet: new AppWallet(wallet), json };
  }

  static async unlock(json, password, progress) {
    try {
      return new AppWallet(await Wallet.fromEncryptedJson(json, password, progress));
    } catch (err) {
      const msg = String(err?.message || err);
      if (/password/i.test(msg)) throw new WalletError("wallet_password_wrong", "wrong password");
      throw new WalletError("wallet_unreadable", msg);
    }
  }

  get canDecrypt() {
    return true;
  }

  signMessage(text) {
    return this.wallet.signMessage(text);
  }

  signTyped(typed) {
    return this.wallet.signTypedData(typed.domain, ethersTypes(typed), typed.message);
  }

  /** Her X25519 key pair: {secret, publicKey} (derived once per unlock, kept in memory). */
  async encryptionKeys() {
    this._keys ??= await x25519FromWalletKey(fromHex(this.wallet.privateKey));
    return this._keys;
  }
}

export class BrowserWallet {
  constructor(provider, address) {
    this.kind = "browser";
    this.provider = provider;
    this.address = address;
  }

  static available() {
    return typeof window !== "undefined" && !!window.ethereum?.request;
  }

  static async connect() {
    if (!BrowserWallet.available()) throw new WalletError("wallet_no_provider", "no EIP-1193 provider");
    let accounts;
    try {
      accounts = await window.ethereum.request({ method: "eth_requestAccounts" });
    } catch (err) {
      throw new WalletError("wallet_rejected", String(err?.message || err));
    }
    if (!accounts?.length) throw new WalletError("wallet_rejected", "no account");
    return new BrowserWallet(window.ethereum, getAddress(accounts[0]));
  }

  get canDecrypt() {
    return false;
  }

  async _ask(method, params) {
    try {
      return await this.provider.request({ method, params });
    } catch (err) {
      throw new WalletError("wallet_rejected", String(err?.message || err));
    }
  }

  signMessage(text) {
    return this._ask("personal_sign", [toHex(utf8(text)), this.address]);
  }

  async signTyped(typed) {
    // Wallets refuse typed data for a chain other than their active one: switch first (the wallet asks her),
    // and say which chain it must be if that fails (e.g. the wallet does not know the consortium's chain).
    const want = `0x${Number(typed.domain.chainId).toString(16)}`;
    const active = await this._ask("eth_chainId", []);
    if (String(active).toLowerCase() !== want) {
      try {
        await this.provider.request({ method: "wallet_switchEthereumChain", params: [{ chainId: want }] });
      } catch {
        throw new WalletError("wallet_wrong_chain", `switch the wallet to chain ${Number(typed.domain.chainId)}`);
      }
    }
    return this._ask("eth_signTypedData_v4", [this.address, JSON.stringify(typed)]);
  }

  async encryptionKeys() {
    return null;
  }
}

/** The node base of ``url`` for NodeApi: "" when it is this page's own node (same origin). */
export function nodeBase(url) {
  if (!url) return "";
  try {
    const origin = new URL(url).origin;
    return origin === location.origin ? "" : origin;
  } catch {
    return "";
  }
}

/** Her signed-in sessions: one patient token per node, made on first use by a SIWE sign-in. */
export class Sessions {
  constructor(wallet) {
    this.wallet = wallet;
    this.nodes = new Map();
  }

  get address() {
    return this.wallet.address;
  }

  /** An API client for the home node (this origin) with no token: the consent relay is public. */
  get relay() {
    return new NodeApi("");
  }

  /** A signed-in API client for the node at ``url`` ("" or null: the home node). */
  async at(url = "") {
    const base = nodeBase(url);
    const now = Date.now() / 1000;
    const known = this.nodes.get(base);
    if (known?.pending) return (await known.pending).api;
    if (known && known.expires - 30 > now) return known.api;
    const pending = this._signIn(base);
    this.nodes.set(base, { api: null, expires: 0, pending });
    try {
      const { api, expires } = await pending;
      this.nodes.set(base, { api, expires });
      return api;
    } catch (err) {
      this.nodes.delete(base);
      throw err;
    }
  }

  async _signIn(base) {
    const api = new NodeApi(base);
    const ctx = await api.get("/v1/auth/siwe/nonce");
    const message = siweMessage(ctx, this.wallet.address);
    const signature = await this.wallet.signMessage(message);
    const reply = await api.post("/v1/auth/siwe", { message, signature });
    api.token = reply.token;
    return { api, expires: reply.expires_at };
  }
}
