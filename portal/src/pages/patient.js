// The patient's wallet app: sign in with her own wallet (the app's keystore, or a browser wallet), see her
// records from every institution, decrypt them here (her key never leaves the browser), grant and revoke
// access, see every read (break-glass flagged), her notifications, and request erasure. It does what
// clients/patient.py does, over the same documented HTTP API.
import { NodeApi } from "../lib/api.js";
import { fromBase64, toHex } from "../lib/bytes.js";
import { openRelease, sha256 } from "../lib/crypto.js";
import { field, h, notice, replace } from "../lib/dom.js";
import { formatDate, formatNumber, has, t } from "../lib/i18n.js";
import { deleteKeystore, keystoreAddress, listKeystores, saveKeystore } from "../lib/keystore.js";
import { errorText, startPage } from "../lib/shell.js";
import { classMask, deadline, eraseTyped, grantTyped, registerKeyTyped, revokeTyped } from "../lib/typed.js";
import { renderRecord } from "../lib/viewers.js";
import { AppWallet, BrowserWallet, Sessions, nodeBase } from "../lib/wallet.js";

// medledger.vocabulary: RecordClass (code = index + 1) and Purpose (code = index + 1), the API's words.
const CLASSES = [
  "demographics", "encounter", "lab", "imaging", "clinical_note", "diagnostic_report", "condition",
  "medication", "allergy", "immunization", "procedure", "vital_signs", "self_test",
]; // prettier-ignore
const PURPOSES = ["treatment", "referral", "research", "emergency", "family", "public_health", "payment"];
const CHANNELS = ["email", "sms", "voice", "push"];
const NOTICE_KINDS = ["break_glass_opened", "break_glass_access"];
const AUTH_KINDS = ["grant", "break_glass", "patient", "custodian"];
const STATUSES = ["active", "superseded", "erased"];
const MEDIA_FORMATS = { "application/fhir+json": "fhir", "application/hl7-v2": "hl7v2", "application/dicom": "dicom" };

const FIRST_PAGE = 100; // the first timeline page is small, so it renders at once; the rest come 1000 at a time
const PAGE = 1000;
const SHOWN = 50; // timeline rows in the DOM at first; "show more" adds more

let me = null; // Sessions of the signed-in wallet
let walletJson = null; // the unlocked app wallet's keystore (for export)

const classLabel = (c) => (CLASSES.includes(c) ? t(`patient.class.${c}`) : c);
const purposeLabel = (p) => (PURPOSES.includes(p) ? t(`patient.purpose.${p}`) : p);
const short = (a) => (a && a.length > 12 ? `${a.slice(0, 6)}…${a.slice(-4)}` : a);

/** An error for her: this page's text for its code, else the portal's, else the node's own message. */
function problem(err) {
  if (has(`patient.error.${err?.code}`)) return t(`patient.error.${err.code}`);
  if (has(`error.${err?.code}`)) return errorText(err);
  return err?.message || String(err);
}

function problemNotice(err) {
  console.warn(err);
  return h("p", { class: "notice error", role: "alert" }, problem(err), err?.code ? h("code", {}, ` ${err.code}`) : null);
}

/** Run ``fn`` for a button: disabled while it runs, progress and outcome in ``status`` (a live region). */
async function act(button, status, fn) {
  button.disabled = true;
  replace(status, notice("info", t("patient.working")));
  try {
    const done = await fn((text) => replace(status, notice("info", text)));
    replace(status, done ? notice("ok", done) : "");
  } catch (err) {
    replace(status, problemNotice(err));
  } finally {
    button.disabled = false;
  }
}

const liveRegion = () => h("div", { "aria-live": "polite" });

function progressText(key) {
  let last = -1;
  return (update) => (fraction) => {
    const pct = Math.floor(fraction * 100);
    if (pct !== last && pct % 5 === 0) update(t(key, { pct: formatNumber(pct) }));
    last = pct;
  };
}

// ------------------------------------------------------------------------------------------- directory

/** Names of institutions as the node reported them (timeline custodians, grantees, accessors): address -> name. */
const names = new Map();
function learn(address, name, endpoint) {
  if (!address) return;
  const key = address.toLowerCase();
  const known = names.get(key) || { address };
  if (name) known.name = name;
  if (endpoint) known.endpoint = endpoint;
  names.set(key, known);
}
const nameOf = (address) => names.get(String(address).toLowerCase())?.name || address;

// The consortium's member roles (medledger.vocabulary.Role), as GET /v1/consortium/members names them.
const MEMBER_ROLES = ["hospital", "clinic", "lab", "cdc", "manufacturer", "researcher", "auditor", "relayer", "emergency"];
const roleLabel = (r) => (MEMBER_ROLES.includes(r) ? t(`patient.role.${r}`) : r);
// Relaying transactions and answering emergencies are what a member may do, not what it is: a hospital that
// relays is still "Hospital" to her (and the label fits a phone). Shown only for a member with no other role.
const DUTIES = ["relayer", "emergency"];
const memberRoles = (roles) => (roles.some((r) => !DUTIES.includes(r)) ? roles.filter((r) => !DUTIES.includes(r)) : roles);

/** The consortium's active members (GET /v1/consortium/members at her home node), asked once per sign-in. */
let directory = null; // { owner, members: Promise<list> }
function consortiumMembers() {
  if (directory?.owner !== me) {
    const owner = me;
    const members = (async () => {
      const api = await owner.at("");
      const reply = await api.get("/v1/consortium/members");
      for (const m of reply.members) learn(m.address, m.name, m.endpoint);
      return reply.members;
    })();
    directory = { owner, members };
    members.catch(() => directory?.owner === owner && (directory = null)); // asked again next time
  }
  return directory.members;
}

// ------------------------------------------------------------------------------------------- timeline

/** Her timeline, loaded once per sign-in: the first page at once, then the rest in the background. */
class Timeline {
  constructor() {
    this.reset();
  }

  reset() {
    this.items = [];
    this.done = false;
    this.error = null;
    this.started = null;
    this.listeners = new Set();
  }

  start() {
    this.started ??= this._load();
    return this.started;
  }

  on(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  _emit() {
    for (const fn of [...this.listeners]) fn(this);
  }

  async _load() {
    const owner = me;
    try {
      const api = await me.at("");
      let cursor = null;
      let limit = FIRST_PAGE;
      do {
        const page = await api.get("/v1/me/timeline", { limit, cursor });
        if (owner !== me) return;
        for (const e of page.items) learn(e.custodian, e.custodian_name, e.custodian_endpoint);
        this.items.push(...page.items);
        cursor = page.next_cursor;
        limit = PAGE;
        if (!cursor) this.done = true;
        this._emit();
      } while (cursor);
    } catch (err) {
      this.error = err;
      this.done = true;
      this._emit();
    }
  }

  /** The entry of ``recordId``, waiting for more pages if it is not loaded yet. */
  async find(recordId) {
    this.start();
    const id = recordId.toLowerCase();
    for (;;) {
      const hit = this.items.find((e) => e.record_id.toLowerCase() === id);
      if (hit || this.done) return hit || null;
      await new Promise((resolve) => {
        const off = this.on(() => (off(), resolve()));
      });
    }
  }

  /** Custodian nodes she has records at (their URLs), for notifications and contacts. */
  custodianNodes() {
    const seen = new Map();
    for (const e of this.items) if (e.custodian_endpoint && !seen.has(e.custodian)) seen.set(e.custodian, e.custodian_endpoint);
    return [...seen].map(([address, url]) => ({ address, url, name: nameOf(address) }));
  }
}
const timeline = new Timeline();

function mark(name) {
  performance.mark(`medledger:${name}`);
}

// ------------------------------------------------------------------------------------------- sign-in

async function signedIn(sessions, json, ctx) {
  await sessions.at("");
  me = sessions;
  walletJson = json;
  mark("signed-in");
  timeline.reset();
  names.clear();
  timeline.start();
  if (location.hash.startsWith("#/timeline") || location.hash === "" || location.hash === "#/") ctx.rerender();
  else location.hash = "#/timeline";
}

function signOut() {
  me = null;
  walletJson = null;
  timeline.reset();
  names.clear();
  location.hash = "#/wallet";
  page.rerender();
}

function passwordInput(autocomplete) {
  return h("input", { type: "password", autocomplete, required: true, minlength: 8 });
}

async function renderSignIn(main, ctx) {
  main.append(h("p", {}, t("patient.signin.intro")));
  const stored = await listKeystores().catch(() => []);

  if (stored.length) {
    const section = h("section", { class: "card", "aria-labelledby": "stored-h" }, h("h2", { id: "stored-h" }, t("patient.signin.stored")));
    for (const entry of stored) {
      const password = passwordInput("current-password");
      const status = liveRegion();
      const unlock = h("button", { type: "submit" }, t("patient.signin.unlock"));
      const forget = h("button", { type: "button", class: "secondary" }, t("patient.signin.forget"));
      let armed = false;
      forget.addEventListener("click", async () => {
        if (!armed) {
          armed = true;
          forget.textContent = t("patient.signin.forgetConfirm");
          replace(status, notice("warn", t("patient.signin.forgetWarn")));
          return;
        }
        await deleteKeystore(entry.address);
        ctx.rerender();
      });
      const form = h(
        "form",
        { class: "unlock", dataset: { address: entry.address } },
        h("p", { class: "mono" }, entry.address),
        field(t("patient.signin.password"), password),
        h("div", { class: "actions" }, unlock, forget),
        status,
      );
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        act(unlock, status, async (update) => {
          const wallet = await AppWallet.unlock(entry.json, password.value, progressText("patient.signin.unlocking")(update));
          update(t("patient.signin.signingIn"));
          await signedIn(new Sessions(wallet), entry.json, ctx);
        });
      });
      section.append(form);
    }
    main.append(section);
  }

  // Create a new wallet.
  {
    const password = passwordInput("new-password");
    const again = passwordInput("new-password");
    const status = liveRegion();
    const create = h("button", { type: "submit" }, t("patient.signin.create"));
    const form = h(
      "form",
      { id: "create-wallet", class: "card", "aria-labelledby": "create-h" },
      h("h2", { id: "create-h" }, t("patient.signin.createTitle")),
      h("p", { class: "hint" }, t("patient.signin.createHint")),
      field(t("patient.signin.newPassword"), password, t("patient.signin.passwordHint")),
      field(t("patient.signin.repeatPassword"), again),
      h("div", { class: "actions" }, create),
      status,
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      act(create, status, async (update) => {
        if (password.value !== again.value) throw Object.assign(new Error("mismatch"), { code: "wallet_password_mismatch" });
        const { wallet, json } = await AppWallet.create(password.value, progressText("patient.signin.encrypting")(update));
        await saveKeystore(wallet.address, json);
        update(t("patient.signin.signingIn"));
        await signedIn(new Sessions(wallet), json, ctx);
      });
    });
    main.append(form);
  }

  // Import a keystore file (from clients/wallet.py, another wallet app, or this app's export).
  {
    const file = h("input", { type: "file", accept: ".json,application/json", required: true });
    const password = passwordInput("current-password");
    const status = liveRegion();
    const load = h("button", { type: "submit" }, t("patient.signin.import"));
    const form = h(
      "form",
      { id: "import-wallet", class: "card", "aria-labelledby": "import-h" },
      h("h2", { id: "import-h" }, t("patient.signin.importTitle")),
      h("p", { class: "hint" }, t("patient.signin.importHint")),
      field(t("patient.signin.file"), file),
      field(t("patient.signin.password"), password),
      h("div", { class: "actions" }, load),
      status,
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      act(load, status, async (update) => {
        const json = file.files[0] ? await file.files[0].text() : "";
        if (keystoreAddress(json) === null) throw Object.assign(new Error("not a keystore"), { code: "wallet_unreadable" });
        const wallet = await AppWallet.unlock(json, password.value, progressText("patient.signin.unlocking")(update));
        await saveKeystore(wallet.address, json);
        update(t("patient.signin.signingIn"));
        await signedIn(new Sessions(wallet), json, ctx);
      });
    });
    main.append(form);
  }

  // A browser wallet (EIP-1193).
  {
    const status = liveRegion();
    const section = h(
      "section",
      { class: "card", "aria-labelledby": "browser-h" },
      h("h2", { id: "browser-h" }, t("patient.signin.browserTitle")),
      h("p", { class: "hint" }, t("patient.signin.browserHint")),
    );
    if (BrowserWallet.available()) {
      const connect = h("button", { type: "button", id: "connect-browser-wallet" }, t("patient.signin.browser"));
      connect.addEventListener("click", () =>
        act(connect, status, async (update) => {
          mark("signin-start");
          const wallet = await BrowserWallet.connect();
          update(t("patient.signin.signingIn"));
          await signedIn(new Sessions(wallet), null, ctx);
        }),
      );
      section.append(h("div", { class: "actions" }, connect), status);
    } else {
      section.append(h("p", { class: "muted" }, t("patient.signin.noBrowserWallet")));
    }
    main.append(section);
  }
}

// ------------------------------------------------------------------------------------------- wallet view

function download(name, bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  const a = h("a", { href: url, download: name, class: "sr-only" }, name);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function renderWallet(main, params, ctx) {
  if (!me) return renderSignIn(main, ctx);
  const w = me.wallet;
  main.append(
    h(
      "section",
      { class: "card", "aria-labelledby": "account-h" },
      h("h2", { id: "account-h" }, t("patient.wallet.account")),
      h(
        "dl",
        {},
        h("dt", {}, t("patient.wallet.address")),
        h("dd", { class: "mono", id: "wallet-address" }, w.address),
        h("dt", {}, t("patient.wallet.kind")),
        h("dd", {}, t(w.kind === "app" ? "patient.wallet.kindApp" : "patient.wallet.kindBrowser")),
      ),
      w.canDecrypt ? notice("ok", t("patient.wallet.canDecrypt")) : notice("warn", t("patient.wallet.cannotDecrypt")),
    ),
  );

  // Her encryption key on chain: records are wrapped to it. Only the app wallet can derive it.
  const keyCard = h("section", { class: "card", "aria-labelledby": "enc-h" }, h("h2", { id: "enc-h" }, t("patient.wallet.encryptionKey")));
  main.append(keyCard);
  if (w.canDecrypt) {
    const keys = await w.encryptionKeys();
    const status = liveRegion();
    const register = h("button", { type: "button", id: "register-key" }, t("patient.wallet.register"));
    keyCard.append(h("p", { class: "mono" }, toHex(keys.publicKey)), h("p", { class: "hint" }, t("patient.wallet.registerHint")));
    const state = h("p", { id: "key-state" });
    keyCard.append(state, h("div", { class: "actions" }, register), status);
    me.relay
      .get(`/v1/consent/context/${w.address}`)
      .then((c) => replace(state, c.consortium_nonce > 0 ? t("patient.wallet.registered") : t("patient.wallet.notRegistered")))
      .catch((err) => replace(state, problemNotice(err)));
    register.addEventListener("click", () =>
      act(register, status, async () => {
        const c = await me.relay.get(`/v1/consent/context/${w.address}`);
        const dl = deadline();
        const pub = toHex(keys.publicKey);
        const signature = await w.signTyped(registerKeyTyped(c, w.address, pub, dl));
        const out = await me.relay.post("/v1/patients/keys", {
          patient: w.address, encryption_key: pub, nonce: c.consortium_nonce, deadline: dl, signature, chain_id: c.chain_id,
        }); // prettier-ignore
        replace(state, t("patient.wallet.registered"));
        return t("patient.wallet.registeredIn", { block: formatNumber(out.block_number) });
      }),
    );
  } else {
    keyCard.append(h("p", {}, t("patient.wallet.browserKey")));
  }

  const actions = h("div", { class: "actions" });
  if (walletJson) {
    actions.append(
      h(
        "button",
        { type: "button", id: "export-wallet", onclick: () => download(`medledger-wallet-${w.address}.json`, walletJson, "application/json") },
        t("patient.wallet.export"),
      ),
    );
  }
  actions.append(h("button", { type: "button", class: "secondary", onclick: signOut }, t("patient.wallet.signOut")));
  main.append(
    h(
      "section",
      { class: "card", "aria-labelledby": "backup-h" },
      h("h2", { id: "backup-h" }, t("patient.wallet.backup")),
      h("p", { class: "hint" }, t(walletJson ? "patient.wallet.exportHint" : "patient.wallet.browserBackup")),
      actions,
    ),
  );
}

// ------------------------------------------------------------------------------------------- timeline view

function dayStart(value) {
  return value ? new Date(`${value}T00:00:00`).getTime() / 1000 : -Infinity;
}
function dayEnd(value) {
  return value ? new Date(`${value}T23:59:59.999`).getTime() / 1000 : Infinity;
}

function timelineRow(e) {
  return h(
    "li",
    { class: "card", dataset: { record: e.record_id } },
    h("a", { href: `#/record?id=${e.record_id}` }, classLabel(e.record_class)),
    " ",
    e.status !== "active" ? h("span", { class: "badge" }, STATUSES.includes(e.status) ? t(`patient.status.${e.status}`) : e.status) : null,
    h("br"),
    h("span", { class: "muted" }, formatDate(e.event_time), " · ", e.custodian_name || short(e.custodian)),
  );
}

function renderTimeline(main) {
  const kind = h("select", {}, h("option", { value: "" }, t("patient.timeline.allClasses")), CLASSES.map((c) => h("option", { value: c }, classLabel(c))));
  const from = h("input", { type: "date" });
  const to = h("input", { type: "date" });
  const filters = h(
    "form",
    { class: "card grid", role: "search", "aria-label": t("patient.timeline.filter") },
    field(t("patient.timeline.class"), kind),
    field(t("patient.timeline.from"), from),
    field(t("patient.timeline.to"), to),
  );
  filters.addEventListener("submit", (e) => e.preventDefault());
  const status = h("p", { role: "status", id: "timeline-status" });
  const list = h("ol", { id: "timeline", class: "plain", "aria-label": t("patient.view.timeline") });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, t("patient.timeline.more"));
  main.append(filters, status, list, h("div", { class: "actions" }, more));

  let limit = SHOWN;
  let matches = [];
  let scanned = 0; // timeline items already filtered into ``matches``
  let wanted = () => true;

  function refilter() {
    const c = kind.value;
    const lo = dayStart(from.value);
    const hi = dayEnd(to.value);
    wanted = (e) => (!c || e.record_class === c) && e.event_time >= lo && e.event_time <= hi;
    matches = [];
    scanned = 0;
    limit = SHOWN;
    list.replaceChildren();
    update();
  }

  function update() {
    if (!list.isConnected && scanned) return off();
    const items = timeline.items;
    for (; scanned < items.length; scanned++) if (wanted(items[scanned])) matches.push(items[scanned]);
    // Append only what became visible: rows already shown (and a focused link among them) stay put.
    const rows = [];
    for (let i = list.childElementCount; i < Math.min(limit, matches.length); i++) rows.push(timelineRow(matches[i]));
    if (rows.length) {
      list.append(...rows);
      if (!main.dataset.firstRender) {
        main.dataset.firstRender = "1";
        mark("timeline-first");
      }
    }
    more.hidden = matches.length <= limit;
    if (timeline.error) replace(status, problemNotice(timeline.error));
    else if (!timeline.done) replace(status, t("patient.timeline.loading", { n: formatNumber(items.length) }));
    else {
      replace(
        status,
        items.length === 0
          ? t("patient.timeline.empty")
          : t("patient.timeline.count", { shown: formatNumber(Math.min(limit, matches.length)), n: formatNumber(matches.length), total: formatNumber(items.length) }),
      );
      if (main.dataset.state !== "complete") {
        main.dataset.state = "complete";
        mark("timeline-complete");
      }
    }
  }

  for (const input of [kind, from, to]) input.addEventListener("change", refilter);
  more.addEventListener("click", () => {
    const first = list.childElementCount;
    limit += 100;
    update();
    list.children[first]?.querySelector("a")?.focus();
  });
  const off = timeline.on(update);
  timeline.start();
  update();
}

// ------------------------------------------------------------------------------------------- record view

function detailList(pairs) {
  return h(
    "dl",
    {},
    pairs.filter(Boolean).map(([k, v, cls]) => [h("dt", {}, k), h("dd", { class: cls || null }, v)]),
  );
}

async function renderRecordView(main, params) {
  const entry = params.id ? await timeline.find(params.id) : null;
  if (!entry) {
    main.append(problemNotice({ code: "record_not_found" }), h("p", {}, h("a", { href: "#/timeline" }, t("patient.record.back"))));
    return;
  }
  main.querySelector("h1").textContent = `${classLabel(entry.record_class)} · ${formatDate(entry.event_time)}`;
  main.append(
    h("p", {}, h("a", { href: "#/timeline" }, t("patient.record.back"))),
    h(
      "section",
      { class: "card", "aria-labelledby": "meta-h" },
      h("h2", { id: "meta-h" }, t("patient.record.details")),
      detailList([
        [t("patient.record.class"), classLabel(entry.record_class)],
        [t("patient.record.custodian"), entry.custodian_name || entry.custodian],
        [t("patient.record.time"), formatDate(entry.event_time)],
        [t("patient.record.status"), STATUSES.includes(entry.status) ? t(`patient.status.${entry.status}`) : entry.status],
        [t("patient.record.id"), entry.record_id, "mono"],
        [t("patient.record.commitment"), entry.commitment, "mono"],
        [t("patient.record.block"), formatNumber(entry.block_number)],
      ]),
    ),
  );

  const content = h("section", { class: "card", id: "record-content", "aria-labelledby": "content-h" }, h("h2", { id: "content-h" }, t("patient.record.content")));
  main.append(content);
  if (!me.wallet.canDecrypt) {
    content.append(notice("warn", t("patient.record.noKey")));
  } else if (entry.status === "erased") {
    content.append(h("p", {}, t("patient.record.erased")));
  } else {
    const status = liveRegion();
    const view = h("div", { class: "viewer" });
    const open = h("button", { type: "button", id: "decrypt" }, t("patient.record.decrypt"));
    content.append(h("p", { class: "hint" }, t("patient.record.decryptHint")), h("div", { class: "actions" }, open), status, view);
    open.addEventListener("click", () =>
      act(open, status, async (update) => {
        if (!entry.custodian_endpoint) throw Object.assign(new Error("no endpoint"), { code: "custodian_unknown" });
        const custodian = await me.at(entry.custodian_endpoint);
        update(t("patient.record.fetching"));
        const body = await custodian.get(`/v1/records/${entry.record_id}/release`);
        update(t("patient.record.verifying"));
        mark("decrypt-start");
        const keys = await me.wallet.encryptionKeys();
        const ciphertext = fromBase64(body.ciphertext);
        mark("decrypt-decoded");
        const bytes = await openRelease({
          ciphertext,
          wrappedKey: fromBase64(body.wrapped_key),
          commitment: entry.commitment,
          recordId: entry.record_id,
          custodian: entry.custodian,
          keys,
        });
        mark("decrypt-end");
        view.replaceChildren();
        view.dataset.sha256 = toHex(await sha256(bytes), "");
        view.dataset.bytes = String(bytes.length);
        const media = body.record.media_type;
        renderRecord(view, { bytes, format: MEDIA_FORMATS[media], recordClass: entry.record_class, typeCode: body.record.type_code });
        view.append(
          h(
            "div",
            { class: "actions" },
            h(
              "button",
              { type: "button", class: "secondary", onclick: () => download(`${entry.record_id.slice(2, 14)}.${MEDIA_FORMATS[media] === "dicom" ? "dcm" : MEDIA_FORMATS[media] === "hl7v2" ? "hl7" : "json"}`, bytes, media) },
              t("patient.record.save"),
            ),
          ),
        );
        return t("patient.record.verified", { size: formatNumber(bytes.length) });
      }),
    );
  }

  // Erasure: crypto-shredding at the custodian, on her signed request (clients/patient.py erase()).
  if (entry.status !== "erased") {
    const status = liveRegion();
    const sure = h("input", { type: "checkbox", id: "erase-sure" });
    const erase = h("button", { type: "button", class: "danger", id: "erase" }, t("patient.erase.button"));
    erase.addEventListener("click", () =>
      act(erase, status, async () => {
        if (!sure.checked) throw Object.assign(new Error("confirm"), { code: "erase_unconfirmed" });
        const c = await me.relay.get(`/v1/consent/context/${me.address}`);
        const dl = deadline();
        const signature = await me.wallet.signTyped(eraseTyped(c, me.address, entry.record_id, dl));
        // The request is its own authentication (her signature), so no sign-in at the custodian is needed.
        if (!entry.custodian_endpoint) throw Object.assign(new Error("no endpoint"), { code: "custodian_unknown" });
        const custodian = new NodeApi(nodeBase(entry.custodian_endpoint));
        const out = await custodian.post(`/v1/records/${entry.record_id}/erase`, { patient: me.address, deadline: dl, signature });
        entry.status = "erased";
        return t(out.status === "confirmed" ? "patient.erase.confirmed" : "patient.erase.pending");
      }),
    );
    main.append(
      h(
        "details",
        { class: "card" },
        h("summary", {}, t("patient.erase.title")),
        h("p", {}, t("patient.erase.explain")),
        h("div", { class: "field" }, h("label", { for: "erase-sure" }, sure, " ", t("patient.erase.sure"))),
        h("div", { class: "actions" }, erase),
        status,
      ),
    );
  }
}

// ------------------------------------------------------------------------------------------- grants

async function loadGrants() {
  const api = await me.at("");
  const grants = await api.get("/v1/me/grants");
  for (const g of grants) learn(g.grantee, g.grantee_name);
  return grants;
}

function grantCard(g, onRevoke) {
  const now = Date.now() / 1000;
  const active = !g.revoked && g.valid_until > now;
  const status = liveRegion();
  const card = h(
    "li",
    { class: "card", dataset: { grant: g.grant_id } },
    h("h3", {}, g.grantee_name || g.grantee, " ", h("span", { class: "badge" }, t("patient.grants.number", { id: g.grant_id }))),
    detailList([
      [t("patient.grants.classes"), g.classes.map(classLabel).join(t("patient.listSep"))],
      [t("patient.grants.purpose"), purposeLabel(g.purpose)],
      [t("patient.grants.validUntil"), formatDate(g.valid_until)],
      !active && [t("patient.grants.state"), t(g.revoked ? "patient.grants.revoked" : "patient.grants.expired")],
    ]),
  );
  if (active) {
    const revoke = h("button", { type: "button", class: "danger" }, t("patient.grants.revoke"));
    revoke.setAttribute("aria-label", t("patient.grants.revokeLabel", { id: g.grant_id, who: g.grantee_name || g.grantee }));
    revoke.addEventListener("click", () =>
      act(revoke, status, async () => {
        const c = await me.relay.get(`/v1/consent/context/${me.address}`);
        const dl = deadline();
        const signature = await me.wallet.signTyped(revokeTyped(c, me.address, g.grant_id, dl));
        await me.relay.post(`/v1/consents/${g.grant_id}/revoke`, {
          patient: me.address, nonce: c.consent_nonce, deadline: dl, signature, chain_id: c.chain_id,
        }); // prettier-ignore
        onRevoke();
        return t("patient.grants.revokedNow", { id: g.grant_id });
      }),
    );
    card.append(h("div", { class: "actions" }, revoke), status);
  }
  return card;
}

async function renderGrants(main, params, ctx) {
  timeline.start();
  const lists = h("div", {});
  const formStatus = liveRegion();

  async function refresh() {
    replace(lists, notice("info", t("patient.loading")));
    try {
      const grants = await loadGrants();
      const now = Date.now() / 1000;
      const active = grants.filter((g) => !g.revoked && g.valid_until > now);
      const past = grants.filter((g) => !(g.revoked === false && g.valid_until > now));
      replace(
        lists,
        h("h2", { id: "active-h" }, t("patient.grants.active")),
        active.length
          ? h("ul", { class: "plain", id: "active-grants", "aria-labelledby": "active-h" }, active.map((g) => grantCard(g, refresh)))
          : h("p", { id: "active-grants" }, t("patient.grants.none")),
        past.length
          ? h(
              "details",
              {},
              h("summary", {}, t("patient.grants.past", { n: formatNumber(past.length) })),
              h("ul", { class: "plain", id: "past-grants" }, past.map((g) => grantCard(g, refresh))),
            )
          : null,
      );
      fillInstitutions();
    } catch (err) {
      replace(lists, problemNotice(err));
    }
  }

  // The consortium's members (name and roles, from the ledger through her home node), then any other
  // institution she knows of (a custodian, grantee or reader no longer a member), then one named by its
  // ledger address (as `medledger patient grant --to`), which also works while the member list cannot be read.
  const who = h("select", { id: "grantee" });
  const other = h("input", { type: "text", id: "grantee-address", inputmode: "text", autocomplete: "off", spellcheck: "false", placeholder: "0x…" });
  const otherField = field(t("patient.grants.address"), other, t("patient.grants.addressHint"));
  const directoryStatus = h("div", { id: "members-status", "aria-live": "polite" });
  let members = null;
  function fillInstitutions() {
    const chosen = who.value;
    const listed = new Set((members || []).map((m) => m.address.toLowerCase()));
    const memberOption = (m) => {
      const roles = memberRoles(m.roles).map(roleLabel).join(t("patient.listSep"));
      return h("option", { value: m.address }, roles ? t("patient.grants.member", { name: m.name, roles }) : m.name);
    };
    const others = [...names.values()].filter((n) => !listed.has(n.address.toLowerCase()));
    const otherOption = (n) => h("option", { value: n.address }, n.name ? `${n.name} (${short(n.address)})` : n.address);
    replace(
      who,
      members?.length ? h("optgroup", { label: t("patient.grants.members") }, members.map(memberOption)) : null,
      others.length
        ? members?.length
          ? h("optgroup", { label: t("patient.grants.known") }, others.map(otherOption))
          : others.map(otherOption)
        : null,
      h("option", { value: "" }, t("patient.grants.other")),
    );
    who.value = [...who.options].some((o) => o.value === chosen) ? chosen : who.options[0].value;
    otherField.hidden = who.value !== "";
  }
  consortiumMembers().then(
    (list) => {
      members = list;
      replace(directoryStatus, "");
      fillInstitutions();
    },
    (err) => {
      console.warn(err);
      // Her own words, and the node's code for whoever helps her (its message is the node's English).
      const code = err?.code ? h("code", {}, ` ${err.code}`) : null;
      replace(directoryStatus, h("p", { class: "notice warn", role: "status" }, t("patient.grants.membersUnavailable"), code));
    },
  );
  who.addEventListener("change", () => (otherField.hidden = who.value !== ""));
  const offNames = timeline.on(() => (who.isConnected ? fillInstitutions() : offNames()));

  const boxes = CLASSES.map((c, i) => {
    const box = h("input", { type: "checkbox", value: String(i + 1), id: `class-${c}` });
    return h("div", {}, h("label", { for: box.id }, box, " ", classLabel(c)));
  });
  const purpose = h("select", { id: "purpose" }, PURPOSES.map((p, i) => h("option", { value: String(i + 1) }, purposeLabel(p))));
  const days = h("input", { type: "number", id: "days", min: "1", max: "3650", value: "30", required: true });
  const submit = h("button", { type: "submit", id: "grant-submit" }, t("patient.grants.sign"));
  const form = h(
    "form",
    { class: "card", id: "grant-form", "aria-labelledby": "new-h" },
    h("h2", { id: "new-h" }, t("patient.grants.new")),
    field(t("patient.grants.institution"), who),
    directoryStatus,
    otherField,
    h("fieldset", {}, h("legend", {}, t("patient.grants.classes")), h("div", { class: "grid" }, boxes)),
    field(t("patient.grants.purpose"), purpose),
    field(t("patient.grants.days"), days, t("patient.grants.daysHint")),
    h("p", { class: "hint" }, t("patient.grants.signHint")),
    h("div", { class: "actions" }, submit),
    formStatus,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(submit, formStatus, async () => {
      const grantee = (who.value || other.value).trim();
      if (!/^0x[0-9a-fA-F]{40}$/.test(grantee)) throw Object.assign(new Error("grantee"), { code: "grantee_invalid" });
      const codes = boxes.map((b) => b.querySelector("input")).filter((b) => b.checked).map((b) => Number(b.value));
      if (!codes.length) throw Object.assign(new Error("classes"), { code: "classes_empty" });
      const c = await me.relay.get(`/v1/consent/context/${me.address}`);
      const now = Math.floor(Date.now() / 1000);
      const terms = {
        grantee,
        classes: classMask(codes),
        purpose: Number(purpose.value),
        validFrom: 0,
        validUntil: now + Math.round(Number(days.value) * 86400),
      };
      const dl = deadline();
      const signature = await me.wallet.signTyped(grantTyped(c, me.address, terms, dl));
      const out = await me.relay.post("/v1/consents", {
        patient: me.address, grantee: terms.grantee, classes: terms.classes, purpose: terms.purpose,
        valid_from: terms.validFrom, valid_until: terms.validUntil, nonce: c.consent_nonce, deadline: dl,
        signature, chain_id: c.chain_id,
      }); // prettier-ignore
      refresh();
      return t("patient.grants.created", { id: out.grant_id });
    });
  });
  main.append(form, lists);
  fillInstitutions();
  await refresh();
}

// ------------------------------------------------------------------------------------------- accesses

function authText(a) {
  const kind = AUTH_KINDS.includes(a.authorization) ? t(`patient.auth.${a.authorization}`) : a.authorization;
  return a.authorization === "grant" || a.authorization === "break_glass" ? `${kind} #${a.auth_id}` : kind;
}

async function renderAccesses(main) {
  timeline.start();
  const api = await me.at("");
  const summary = h("div", { id: "access-summary" });
  const list = h("ol", { class: "plain", id: "accesses", "aria-label": t("patient.view.accesses") });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, t("patient.accesses.more"));
  const status = liveRegion();
  main.append(h("p", { class: "hint" }, t("patient.accesses.intro")), summary, status, list, h("div", { class: "actions" }, more));
  const all = [];
  let cursor = null;

  async function loadMore() {
    const page = await api.get("/v1/me/accesses", { limit: 100, cursor });
    cursor = page.next_cursor;
    for (const a of page.items) learn(a.accessor, a.accessor_name);
    all.push(...page.items);
    const record = new Map(timeline.items.map((e) => [e.record_id.toLowerCase(), e]));
    list.append(
      ...page.items.map((a) => {
        const e = record.get(a.record_id.toLowerCase());
        return h(
          "li",
          { class: a.break_glass ? "card break-glass" : "card", dataset: { breakGlass: a.break_glass ? "1" : "0" } },
          a.break_glass ? h("p", {}, h("strong", { class: "badge break-glass" }, t("patient.accesses.breakGlass"))) : null,
          h("h3", {}, a.accessor.toLowerCase() === me.address.toLowerCase() ? t("patient.auth.patient") : a.accessor_name || a.accessor),
          detailList([
            [t("patient.accesses.when"), formatDate(a.block_time)],
            [t("patient.accesses.record"), h("a", { href: `#/record?id=${a.record_id}` }, e ? `${classLabel(e.record_class)} · ${formatDate(e.event_time)}` : short(a.record_id))],
            [t("patient.accesses.purpose"), purposeLabel(a.purpose)],
            [t("patient.accesses.authorization"), authText(a)],
            [t("patient.accesses.custodian"), nameOf(a.custodian)],
          ]),
        );
      }),
    );
    const glass = all.filter((a) => a.break_glass).length;
    replace(
      summary,
      all.length === 0 ? h("p", {}, t("patient.accesses.none")) : null,
      glass ? h("p", { class: "notice error", role: "alert" }, t("patient.accesses.glassSummary", { n: formatNumber(glass) })) : null,
    );
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => act(more, status, loadMore));
  await loadMore();
}

// ------------------------------------------------------------------------------------------- notifications

function noticeDetails(n) {
  const p = n.payload || {};
  const rows = [];
  if (p.accessor) rows.push([t("patient.notices.accessor"), nameOf(p.accessor)]);
  if (p.reason) rows.push([t("patient.notices.reason"), p.reason]);
  if (p.record_class) rows.push([t("patient.notices.recordClass"), classLabel(p.record_class)]);
  if (p.record_id) rows.push([t("patient.notices.record"), h("a", { href: `#/record?id=${p.record_id}` }, short(p.record_id))]);
  if (p.expires_at) rows.push([t("patient.notices.expires"), formatDate(p.expires_at)]);
  return detailList(rows);
}

async function renderNotifications(main) {
  await timeline.start();
  const nodes = [{ url: "", name: t("patient.notices.home") }, ...timeline.custodianNodes().filter((n) => nodeBase(n.url) !== "")];
  const list = h("ol", { class: "plain", id: "notifications", "aria-label": t("patient.view.notifications") });
  const problems = h("div", {});
  main.append(problems, list);
  const all = [];
  await Promise.all(
    nodes.map(async (node) => {
      try {
        const api = await me.at(node.url);
        for (const n of await api.get("/v1/me/notifications")) all.push({ ...n, node: node.name });
      } catch (err) {
        problems.append(problemNotice(err));
      }
    }),
  );
  all.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  if (!all.length) list.replaceWith(h("p", { id: "notifications" }, t("patient.notices.none")));
  for (const n of all) {
    const glass = n.kind.startsWith("break_glass");
    list.append(
      h(
        "li",
        { class: glass ? "card break-glass" : "card", dataset: { kind: n.kind } },
        h("h3", {}, glass ? h("strong", { class: "badge break-glass" }, t("patient.accesses.breakGlass")) : null, " ", NOTICE_KINDS.includes(n.kind) ? t(`patient.notices.kind.${n.kind}`) : n.kind),
        h("p", { class: "muted" }, formatDate(n.created_at), " · ", n.node),
        noticeDetails(n),
      ),
    );
  }

  // Where each node also sends them (e-mail, SMS, voice, push).
  const section = h("section", { class: "card", "aria-labelledby": "contacts-h" }, h("h2", { id: "contacts-h" }, t("patient.contacts.title")), h("p", { class: "hint" }, t("patient.contacts.intro")));
  main.append(section);
  const at = h("select", { id: "contact-node" }, nodes.map((n, i) => h("option", { value: String(i) }, n.name)));
  const current = h("div", { id: "contacts" });
  const channel = h("select", { id: "contact-channel" }, CHANNELS.map((c) => h("option", { value: c }, t(`patient.contacts.channel.${c}`))));
  const destination = h("input", { type: "text", id: "contact-destination", required: true, autocomplete: "email" });
  const add = h("button", { type: "submit" }, t("patient.contacts.add"));
  const status = liveRegion();
  const form = h(
    "form",
    {},
    h("h3", {}, t("patient.contacts.new")),
    field(t("patient.contacts.channel"), channel),
    field(t("patient.contacts.destination"), destination, t("patient.contacts.destinationHint")),
    h("div", { class: "actions" }, add),
    status,
  );
  section.append(field(t("patient.contacts.node"), at), current, form);

  async function show() {
    replace(current, notice("info", t("patient.loading")));
    try {
      const api = await me.at(nodes[Number(at.value)].url);
      const contacts = await api.get("/v1/me/notification-contacts");
      replace(
        current,
        contacts.length
          ? h(
              "ul",
              { class: "plain" },
              contacts.map((c) => {
                const rm = h("button", { type: "button", class: "secondary", "aria-label": t("patient.contacts.removeLabel", { dest: c.destination }) }, t("patient.contacts.remove"));
                const s = liveRegion();
                rm.addEventListener("click", () =>
                  act(rm, s, async () => {
                    await api.delete(`/v1/me/notification-contacts/${c.id}`);
                    show();
                  }),
                );
                return h("li", {}, `${CHANNELS.includes(c.channel) ? t(`patient.contacts.channel.${c.channel}`) : c.channel}: `, h("span", { class: "mono" }, c.destination), " ", rm, s);
              }),
            )
          : h("p", {}, t("patient.contacts.none")),
      );
    } catch (err) {
      replace(current, problemNotice(err));
    }
  }
  at.addEventListener("change", show);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    act(add, status, async () => {
      const api = await me.at(nodes[Number(at.value)].url);
      await api.post("/v1/me/notification-contacts", { channel: channel.value, destination: destination.value.trim() });
      destination.value = "";
      await show();
      return t("patient.contacts.added");
    });
  });
  await show();
}

// ------------------------------------------------------------------------------------------- the page

/** Views that need her signed in show the sign-in first. */
function signedInOnly(render) {
  return async (main, params, ctx) => {
    if (!me) {
      main.append(notice("info", t("patient.signin.first")));
      return renderSignIn(main, ctx);
    }
    return render(main, params, ctx);
  };
}

const page = startPage({
  role: "patient",
  home: "timeline",
  nav: ["timeline", "grants", "accesses", "notifications", "wallet"],
  header: () =>
    me
      ? h("span", { class: "who" }, t("patient.signedInAs"), " ", h("span", { class: "mono", title: me.address }, short(me.address)))
      : null,
  views: {
    timeline: { title: "patient.view.timeline", render: signedInOnly(renderTimeline) },
    record: { title: "patient.view.record", render: signedInOnly(renderRecordView) },
    grants: { title: "patient.view.grants", render: signedInOnly(renderGrants) },
    accesses: { title: "patient.view.accesses", render: signedInOnly(renderAccesses) },
    notifications: { title: "patient.view.notifications", render: signedInOnly(renderNotifications) },
    wallet: { title: "patient.view.wallet", render: renderWallet },
  },
});
