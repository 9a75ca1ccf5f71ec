// The clinician workspace: a staff member of this node signs in with their staff bearer token, finds a patient
// by ledger address, reads the merged timeline across custodians, opens records (wherever they are held: the
// node fetches them from their custodian under the patient's consent, and says what authorized each read),
// opens break-glass with a reason, and uploads records for ingest. The same HTTP API as `medledger clinician`.
import { ApiError, NodeApi } from "../lib/api.js";
import { field, h, replace } from "../lib/dom.js";
import { formatDate, formatNumber, t } from "../lib/i18n.js";
import { startPage } from "../lib/shell.js";
import { formatOf, kvLayout, renderRecord } from "../lib/viewers.js";

const TOKEN_KEY = "medledger.clinician.token";
const NODE_KEY = "medledger.clinician.node";
const RECENT_KEY = "medledger.clinician.recent";
const PURPOSES = ["treatment", "referral", "emergency", "research", "family", "public_health", "payment"];
const CLASSES = new Set([
  "demographics",
  "encounter",
  "lab",
  "imaging",
  "clinical_note",
  "diagnostic_report",
  "condition",
  "medication",
  "allergy",
  "immunization",
  "procedure",
  "vital_signs",
]);
const INGEST_STATUSES = new Set(["queued", "pending_link", "duplicate", "failed"]);
const LEDGER_STATUSES = new Set(["active", "superseded", "erased"]);
// Codes with a sentence of their own in the catalog; any other code shows the node's message beside it.
const KNOWN_ERRORS = new Set([
  "unauthenticated",
  "forbidden",
  "node_unreachable",
  "consent_denied",
  "invalid_address",
  "invalid_purpose",
  "invalid_request",
  "record_not_found",
  "record_erased",
  "record_not_anchored",
  "patient_not_linked",
  "custodian_unreachable",
  "ledger_unavailable",
  "not_emergency_member",
  "break_glass_already_open",
  "payload_too_large",
  "unknown_format",
  "empty_body",
  "dicom_truncated",
  "dicom_not_dicom",
  "dicom_missing_patient_id",
  "hl7_missing_msh",
  "hl7_missing_patient_id",
  "fhir_invalid_json",
  "fhir_missing_patient",
  "token_missing",
  "patient_mrn_missing",
]);

// ------------------------------------------------------------------------------------------- session

// A URL fragment "#token=mlst_...[&patient=0x...]" signs in (the demo prints such links); it is removed from
// the address bar at once so the token does not linger in the history.
(function tokenFromFragment() {
  const m = /^#token=([^&]+)(?:&patient=(0x[0-9a-fA-F]{40}))?/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  sessionStorage.removeItem(NODE_KEY);
  history.replaceState(null, "", `${location.pathname}${location.search}${m[2] ? `#/patient?p=${m[2]}` : "#/find"}`);
})();

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function api() {
  return new NodeApi("", token());
}

function nodeInfo() {
  try {
    return JSON.parse(sessionStorage.getItem(NODE_KEY) || "null");
  } catch {
    return null;
  }
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(NODE_KEY);
  location.hash = "#/signin";
}

/** Check the token against the node (GET /v1/status: any staff member) and remember the node's name. */
async function checkToken(value) {
  const status = await new NodeApi("", value).get("/v1/status");
  sessionStorage.setItem(TOKEN_KEY, value);
  sessionStorage.setItem(NODE_KEY, JSON.stringify({ name: status.name, address: status.address }));
  return status;
}

function errorBox(err) {
  const code = err?.code || "error";
  const text = KNOWN_ERRORS.has(code) ? t(`clinician.error.${code}`) : err?.message || String(err);
  return h(
    "div",
    { class: "notice error", role: "alert", dataset: { code } },
    h("p", {}, text),
    h("p", { class: "muted" }, t("clinician.error.code"), " ", h("code", {}, code), err?.status ? ` · HTTP ${err.status}` : null),
  );
}

/** Views that need a signed-in node: send the browser to the sign-in form (and back afterwards). */
function requireSession(view) {
  return async (main, params, ctx) => {
    if (!token()) {
      const next = location.hash || "#/find";
      location.replace(`#/signin?next=${encodeURIComponent(next)}`);
      return;
    }
    if (!nodeInfo()) {
      try {
        await checkToken(token());
        ctx.rerender();
        return;
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) sessionStorage.removeItem(TOKEN_KEY);
        main.append(errorBox(err), h("p", {}, h("a", { href: "#/signin" }, t("clinician.signin.again"))));
        return;
      }
    }
    try {
      await view(main, params, ctx);
    } catch (err) {
      if (err instanceof ApiError && err.code === "unauthenticated") {
        sessionStorage.removeItem(TOKEN_KEY);
        sessionStorage.removeItem(NODE_KEY);
      }
      main.append(errorBox(err));
    }
  };
}

function classLabel(name) {
  return CLASSES.has(name) ? t(`clinician.class.${name}`) : name;
}

function shortHex(value) {
  const s = String(value || "");
  return s.length > 14 ? `${s.slice(0, 8)}…${s.slice(-6)}` : s;
}

function validAddress(value) {
  return /^0x[0-9a-fA-F]{40}$/.test(value);
}

function remember(address) {
  const list = recent().filter((a) => a.toLowerCase() !== address.toLowerCase());
  list.unshift(address);
  sessionStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, 8)));
}

function recent() {
  try {
    const list = JSON.parse(sessionStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(list) ? list.filter(validAddress) : [];
  } catch {
    return [];
  }
}

// ------------------------------------------------------------------------------------------- views

function renderSignin(main, params) {
  const input = h("input", {
    type: "password",
    name: "token",
    autocomplete: "off",
    spellcheck: "false",
    "aria-required": "true",
    placeholder: "mlst_…",
    class: "mono",
  });
  const out = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit" }, t("clinician.signin.submit"));
  const form = h(
    "form",
    {
      class: "card",
      onsubmit: async (e) => {
        e.preventDefault();
        const value = input.value.trim();
        replace(out);
        if (!value) {
          replace(out, errorBox({ code: "token_missing" }));
          input.focus();
          return;
        }
        button.disabled = true;
        try {
          await checkToken(value);
          const next = params.next && params.next.startsWith("#/") && !params.next.startsWith("#/signin") ? params.next : "#/find";
          location.hash = next;
        } catch (err) {
          sessionStorage.removeItem(TOKEN_KEY);
          sessionStorage.removeItem(NODE_KEY);
          replace(out, errorBox(err));
          input.setAttribute("aria-invalid", "true");
          input.focus();
        } finally {
          button.disabled = false;
        }
      },
    },
    h("p", {}, t("clinician.signin.intro")),
    field(t("clinician.signin.token"), input, t("clinician.signin.tokenHint")),
    h("div", { class: "actions" }, button),
  );
  main.append(form, out);
  if (token() && nodeInfo()) main.append(h("p", {}, t("clinician.signin.already", { node: nodeInfo().name }), " ", h("a", { href: "#/find" }, t("clinician.find.title"))));
  input.focus();
}

function renderFind(main) {
  const input = h("input", { type: "text", name: "patient", autocomplete: "off", spellcheck: "false", "aria-required": "true", class: "mono", placeholder: "0x…" });
  const out = h("div", { "aria-live": "polite" });
  main.append(
    h(
      "form",
      {
        class: "card",
        onsubmit: (e) => {
          e.preventDefault();
          const value = input.value.trim();
          if (!validAddress(value)) {
            input.setAttribute("aria-invalid", "true");
            replace(out, errorBox({ code: "invalid_address" }));
            input.focus();
            return;
          }
          location.hash = `#/patient?p=${value}`;
        },
      },
      field(t("clinician.find.address"), input, t("clinician.find.addressHint")),
      h("div", { class: "actions" }, h("button", { type: "submit" }, t("clinician.find.submit"))),
    ),
    out,
  );
  main.append(mrnSearch());
  const seen = recent();
  if (seen.length) {
    main.append(
      h("h2", {}, t("clinician.find.recent")),
      h(
        "ul",
        {},
        seen.map((a) => h("li", {}, h("a", { href: `#/patient?p=${a}`, class: "mono" }, a))),
      ),
    );
  }
  input.focus();
}

/** Search this node's own directory by MRN (GET /v1/patients): the desk knows the MRN, not the address. */
function mrnSearch() {
  const mrn = h("input", { type: "text", name: "mrn", autocomplete: "off", spellcheck: "false", "aria-required": "true" });
  const authority = h("input", { type: "text", name: "authority", autocomplete: "off", spellcheck: "false" });
  const out = h("div", { "aria-live": "polite", class: "mrn-results" });
  return h(
    "section",
    { "aria-labelledby": "mrn-h" },
    h("h2", { id: "mrn-h" }, t("clinician.find.byMrn")),
    h(
      "form",
      {
        class: "card",
        onsubmit: async (e) => {
          e.preventDefault();
          replace(out);
          if (!mrn.value.trim()) {
            replace(out, errorBox({ code: "patient_mrn_missing", message: t("clinician.find.mrnMissing") }));
            mrn.focus();
            return;
          }
          try {
            const found = await api().get("/v1/patients", { mrn: mrn.value.trim(), authority: authority.value.trim() });
            if (found.items.length === 0) {
              replace(out, h("p", { class: "notice warn", role: "status" }, t("clinician.find.noMatch")));
              return;
            }
            const list = h("ul", { class: "matches" }, found.items.map(matchItem));
            Object.assign(list.style, { listStyle: "none", padding: "0" });
            replace(out, list);
          } catch (err) {
            replace(out, errorBox(err));
          }
        },
      },
      field(t("clinician.find.mrn"), mrn),
      field(t("clinician.find.authority"), authority, t("clinician.find.authorityHint")),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "secondary" }, t("clinician.find.search"))),
    ),
    out,
  );
}

function matchItem(m) {
  const facts = [
    `${t("clinician.find.mrn")}: ${m.mrn}`,
    m.assigning_authority && `${t("clinician.find.authority")}: ${m.assigning_authority}`,
    m.birth_date && `${t("clinician.find.born")}: ${m.birth_date}`,
  ];
  return h(
    "li",
    { class: "card", dataset: { mrn: m.mrn } },
    h("p", {}, h("strong", {}, [m.given_name, m.family_name].filter(Boolean).join(" ") || m.mrn)),
    h("p", { class: "muted" }, facts.filter(Boolean).join(" · ")),
    m.linked
      ? h("a", { href: `#/patient?p=${m.address}`, class: "button" }, t("clinician.find.open"))
      : h("p", { class: "notice warn" }, t("clinician.find.notLinked")),
  );
}

async function renderPatient(main, params) {
  const patient = params.p || "";
  if (!validAddress(patient)) {
    main.append(errorBox({ code: "invalid_address" }), h("p", {}, h("a", { href: "#/find" }, t("clinician.find.title"))));
    return;
  }
  main.append(h("p", {}, t("clinician.patient.address"), " ", h("code", { class: "mono", id: "patient-address" }, patient)));
  const section = h("section", { "aria-labelledby": "timeline-h" }, h("h2", { id: "timeline-h" }, t("clinician.timeline.title")));
  main.append(section);
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "timeline" },
    h("caption", { class: "sr-only" }, t("clinician.timeline.caption")),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["time", "class", "custodian", "status", "record", "open"].map((c) => h("th", { scope: "col" }, t(`clinician.timeline.col.${c}`))),
      ),
    ),
    tbody,
  );
  const more = h("div", { class: "actions" });
  const count = h("p", { class: "muted", role: "status" });
  // A focusable, named region: on a narrow screen the table scrolls sideways, by keyboard too.
  section.append(count, h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-labelledby": "timeline-h" }, table), more);
  let shown = 0;

  const load = async (cursor) => {
    const page = await api().get(`/v1/patients/${patient}/timeline`, { limit: 50, cursor });
    remember(patient);
    for (const item of page.items) {
      const open = `#/record?p=${patient}&id=${item.record_id}&c=${encodeURIComponent(item.custodian_name || "")}`;
      tbody.append(
        h(
          "tr",
          { dataset: { record: item.record_id, cls: item.record_class } },
          h("td", {}, formatDate(item.event_time)),
          h("td", {}, classLabel(item.record_class)),
          h("td", {}, item.custodian_name || shortHex(item.custodian)),
          h("td", {}, LEDGER_STATUSES.has(item.status) ? t(`clinician.timeline.status.${item.status}`) : item.status),
          h("td", { class: "mono", title: item.record_id }, shortHex(item.record_id)),
          h(
            "td",
            {},
            h(
              "a",
              { href: open, class: "button secondary", "aria-label": t("clinician.timeline.openLabel", { cls: classLabel(item.record_class), time: formatDate(item.event_time) }) },
              t("clinician.timeline.open"),
            ),
          ),
        ),
      );
    }
    shown += page.items.length;
    count.textContent = shown ? t("clinician.timeline.count", { n: formatNumber(shown) }) : t("clinician.timeline.empty");
    replace(
      more,
      page.next_cursor
        ? h(
            "button",
            {
              type: "button",
              class: "secondary",
              onclick: async (e) => {
                e.target.disabled = true;
                try {
                  await load(page.next_cursor);
                } catch (err) {
                  more.append(errorBox(err));
                }
              },
            },
            t("clinician.timeline.more"),
          )
        : null,
    );
  };
  main.append(breakGlassForm(patient, params.bg === "1"));
  try {
    await load(undefined);
  } catch (err) {
    section.append(errorBox(err));
  }
}

function breakGlassForm(patient, focus) {
  const reason = h("textarea", { name: "reason", rows: "3", maxlength: "1000", "aria-required": "true" });
  const duration = h(
    "select",
    { name: "duration" },
    [15, 60, 240, 720].map((m) => h("option", { value: String(m * 60), selected: m === 60 }, t("clinician.bg.minutes", { n: formatNumber(m) }))),
  );
  const confirm = h("input", { type: "checkbox", name: "confirm", id: "bg-confirm", "aria-required": "true" });
  const out = h("div", { "aria-live": "assertive" });
  const button = h("button", { type: "submit", class: "danger" }, t("clinician.bg.submit"));
  const section = h(
    "section",
    { class: "card break-glass", id: "break-glass", "aria-labelledby": "bg-h" },
    h("h2", { id: "bg-h" }, t("clinician.bg.title")),
    h("p", {}, t("clinician.bg.intro")),
    h(
      "form",
      {
        onsubmit: async (e) => {
          e.preventDefault();
          replace(out);
          const text = reason.value.trim();
          if (text.length < 10) {
            reason.setAttribute("aria-invalid", "true");
            replace(out, errorBox({ code: "invalid_reason", message: t("clinician.bg.reasonShort") }));
            reason.focus();
            return;
          }
          if (!confirm.checked) {
            replace(out, errorBox({ code: "not_confirmed", message: t("clinician.bg.confirmFirst") }));
            confirm.focus();
            return;
          }
          button.disabled = true;
          try {
            const opened = await api().post(`/v1/patients/${patient}/break-glass`, { reason: text, duration_seconds: Number(duration.value) });
            replace(
              out,
              h(
                "div",
                { class: "notice error", role: "alert", dataset: { breakGlass: String(opened.break_glass_id) } },
                h("p", {}, h("span", { class: "badge break-glass" }, t("clinician.bg.badge")), " ", t("clinician.bg.opened", { id: opened.break_glass_id, until: formatDate(opened.expires_at) })),
                h("p", {}, t("clinician.bg.audited")),
                h("p", {}, h("a", { href: "#timeline-h", onclick: (ev) => (ev.preventDefault(), document.getElementById("timeline-h")?.scrollIntoView()) }, t("clinician.bg.readNow"))),
              ),
            );
            sessionStorage.setItem(`medledger.clinician.bg.${patient.toLowerCase()}`, "1");
          } catch (err) {
            replace(out, errorBox(err));
          } finally {
            button.disabled = false;
          }
        },
      },
      field(t("clinician.bg.reason"), reason, t("clinician.bg.reasonHint")),
      field(t("clinician.bg.duration"), duration),
      h("div", { class: "field check" }, h("label", { for: "bg-confirm" }, confirm, " ", t("clinician.bg.confirm"))),
      h("div", { class: "actions" }, button),
    ),
    out,
  );
  if (focus) queueMicrotask(() => reason.focus());
  return section;
}

async function renderRecordView(main, params) {
  const patient = params.p || "";
  const id = params.id || "";
  if (!validAddress(patient) || !/^0x[0-9a-fA-F]{64}$/.test(id)) {
    main.append(errorBox({ code: "invalid_request", message: "" }));
    return;
  }
  const bgOpen = sessionStorage.getItem(`medledger.clinician.bg.${patient.toLowerCase()}`) === "1";
  const purpose = PURPOSES.includes(params.purpose) ? params.purpose : bgOpen ? "emergency" : "treatment";
  const back = `#/patient?p=${patient}`;
  main.append(h("p", {}, h("a", { href: back }, t("clinician.record.back"))));
  const select = h(
    "select",
    { name: "purpose" },
    PURPOSES.map((p) => h("option", { value: p, selected: p === purpose }, t(`clinician.purpose.${p}`))),
  );
  main.append(
    h(
      "form",
      {
        class: "card purpose",
        onsubmit: (e) => {
          e.preventDefault();
          location.hash = `#/record?p=${patient}&id=${id}&c=${encodeURIComponent(params.c || "")}&purpose=${select.value}`;
        },
      },
      kvLayout(h("dl", { class: "kv" }, h("dt", {}, t("clinician.record.id")), h("dd", { class: "mono" }, id), params.c ? [h("dt", {}, t("clinician.record.custodian")), h("dd", {}, params.c)] : null)),
      field(t("clinician.record.purpose"), select, t("clinician.record.purposeHint")),
      h("div", { class: "actions" }, h("button", { type: "submit" }, t("clinician.record.read"))),
    ),
  );
  const status = h("p", { class: "muted", role: "status" }, t("clinician.record.loading"));
  main.append(status);
  let response;
  try {
    response = await api().request("GET", `/v1/patients/${patient}/records/${id}`, { query: { purpose }, raw: true, headers: { Accept: "*/*" } });
  } catch (err) {
    status.remove();
    main.append(errorBox(err));
    if (err.code === "consent_denied") {
      main.append(h("p", {}, t("clinician.record.deniedHelp"), " ", h("a", { href: `${back}&bg=1` }, t("clinician.bg.title"))));
    }
    return;
  }
  const bytes = new Uint8Array(await response.arrayBuffer());
  status.remove();
  const authorization = response.headers.get("X-MedLedger-Authorization") || "?";
  const custodian = response.headers.get("X-MedLedger-Custodian") || "";
  const decided = response.headers.get("X-MedLedger-Decided-Block") || "";
  const mediaType = response.headers.get("Content-Type") || "";
  const [kind, authId] = authorization.split(":");
  const breakGlass = kind === "break_glass";
  const authText = kind === "grant" ? t("clinician.auth.grant", { id: authId }) : breakGlass ? t("clinician.auth.break_glass", { id: authId }) : kind === "custodian" ? t("clinician.auth.custodian") : authorization;
  const info = h(
    "section",
    { class: breakGlass ? "card auth break-glass" : "card auth", "aria-labelledby": "auth-h", dataset: { authorization } },
    h("h2", { id: "auth-h" }, t("clinician.auth.title")),
    breakGlass
      ? h(
          "p",
          { class: "notice error", role: "alert" },
          h("span", { class: "badge break-glass" }, t("clinician.bg.badge")),
          " ",
          t("clinician.auth.breakGlassWarning"),
        )
      : null,
    kvLayout(h(
      "dl",
      { class: "kv" },
      h("dt", {}, t("clinician.auth.header")),
      h("dd", {}, h("code", { class: "mono", id: "authorization" }, authorization), " — ", authText),
      h("dt", {}, t("clinician.auth.custodian")),
      h("dd", { class: "mono" }, [params.c, custodian].filter(Boolean).join(" · ")),
      h("dt", {}, t("clinician.auth.decided")),
      h("dd", {}, decided ? formatNumber(Number(decided)) : "—"),
      h("dt", {}, t("clinician.auth.mediaType")),
      h("dd", { class: "mono" }, mediaType),
      h("dt", {}, t("clinician.auth.size")),
      h("dd", {}, t("clinician.auth.bytes", { n: formatNumber(bytes.length) })),
    )),
  );
  main.append(info);
  const viewer = h("section", { class: "viewer", "aria-label": t("clinician.record.content") });
  main.append(viewer);
  renderRecord(viewer, { bytes, format: formatOf(mediaType) });
}

function renderUpload(main) {
  const input = h("input", { type: "file", name: "files", multiple: true, accept: ".hl7,.txt,.dcm,.json,application/dicom,application/json,application/fhir+json" });
  const button = h("button", { type: "submit" }, t("clinician.upload.submit"));
  const progress = h("p", { class: "muted", role: "status" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "upload-results" },
    h("caption", {}, t("clinician.upload.results")),
    h("thead", {}, h("tr", {}, ["file", "status", "class", "record", "error"].map((c) => h("th", { scope: "col" }, t(`clinician.upload.col.${c}`))))),
    tbody,
  );
  const results = h("div", { class: "table-wrap", hidden: true, tabindex: "0", role: "region", "aria-label": t("clinician.upload.results") }, table);
  main.append(
    h(
      "form",
      {
        class: "card",
        onsubmit: async (e) => {
          e.preventDefault();
          const files = [...input.files];
          if (files.length === 0) {
            progress.textContent = t("clinician.upload.none");
            input.focus();
            return;
          }
          button.disabled = true;
          tbody.replaceChildren();
          results.hidden = false;
          let done = 0;
          let failed = 0;
          // One request per file, in order: each file gets its own result (a bad file fails alone).
          for (const file of files) {
            progress.textContent = t("clinician.upload.progress", { done: formatNumber(done), total: formatNumber(files.length), name: file.name });
            try {
              const reply = await api().request("POST", "/v1/ingest", { body: file, headers: { "Content-Type": "application/octet-stream" } });
              for (const [i, rec] of reply.records.entries()) {
                if (rec.status === "failed") failed += 1;
                tbody.append(
                  h(
                    "tr",
                    { dataset: { file: file.name, status: rec.status, code: rec.error?.code || "", recordId: rec.record_id } },
                    i === 0 ? h("th", { scope: "row", rowspan: String(reply.records.length) }, file.name) : null,
                    h("td", {}, h("span", { class: rec.status === "failed" ? "badge" : "badge ok" }, statusLabel(rec.status))),
                    h("td", {}, [classLabel(rec.record_class), rec.type_code && h("span", { class: "muted" }, ` ${rec.type_code}`)]),
                    h("td", { class: "mono", title: rec.record_id }, shortHex(rec.record_id)),
                    h("td", {}, rec.error ? [h("code", {}, rec.error.code), " ", rec.error.message] : "—"),
                  ),
                );
              }
            } catch (err) {
              failed += 1;
              tbody.append(
                h(
                  "tr",
                  { dataset: { file: file.name, status: "refused", code: err.code || "" } },
                  h("th", { scope: "row" }, file.name),
                  h("td", {}, h("span", { class: "badge" }, t("clinician.upload.refused"))),
                  h("td", {}, "—"),
                  h("td", {}, "—"),
                  h("td", {}, h("code", {}, err.code || "error"), " ", KNOWN_ERRORS.has(err.code) ? t(`clinician.error.${err.code}`) : err.message, err.status ? ` (HTTP ${err.status})` : null),
                ),
              );
            }
            done += 1;
          }
          progress.textContent = t("clinician.upload.done", { total: formatNumber(files.length), failed: formatNumber(failed) });
          button.disabled = false;
        },
      },
      field(t("clinician.upload.files"), input, t("clinician.upload.hint")),
      h("div", { class: "actions" }, button),
    ),
    progress,
    results,
  );
}

function statusLabel(status) {
  return INGEST_STATUSES.has(status) ? t(`clinician.upload.status.${status}`) : status;
}

function header() {
  const info = nodeInfo();
  if (!token() || !info) return null;
  return h(
    "span",
    { class: "who" },
    t("clinician.signedIn", { node: info.name }),
    " ",
    h("button", { type: "button", class: "secondary", onclick: signOut }, t("clinician.signout")),
  );
}

startPage({
  role: "clinician",
  home: "find",
  nav: ["find", "upload"],
  header,
  views: {
    signin: { title: "clinician.signin.title", render: renderSignin },
    find: { title: "clinician.find.title", render: requireSession(renderFind) },
    patient: { title: "clinician.patient.title", render: requireSession(renderPatient) },
    record: { title: "clinician.record.title", render: requireSession(renderRecordView) },
    upload: { title: "clinician.upload.title", render: requireSession(renderUpload) },
  },
});
