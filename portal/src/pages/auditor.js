// The auditor's page, served by the auditor's own service (`medledger audit serve`), never by a node: choose a
// scope (a patient, an institution or a block range), run the audit (the service re-indexes the chain itself),
// read the report with its violations and warnings, download it as JSON or as a FHIR AuditEvent bundle.
// API: POST /v1/audits {scope}, GET /v1/audits/{id} (202 while running), GET /v1/audits/{id}/auditevents.
import { NodeApi } from "../lib/api.js";
import { dataTable, field, h, notice, pairTable, replace } from "../lib/dom.js";
import { formatDate, formatNumber, t } from "../lib/i18n.js";
import { errorNotice, startPage } from "../lib/shell.js";

const api = new NodeApi("");
const POLL_MS = 400;
const KINDS = ["patient", "institution", "range"];
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

// Kept across re-renders (a language switch re-renders the page; the report stays).
const state = {
  kind: "patient",
  address: "",
  from: "",
  to: "",
  running: null, // {id, progress} while an audit runs
  report: null,
  id: null,
  error: null,
  seeded: false,
};

// The codes the report uses that have a translated name (anything else is shown as its code).
const NAMED = {
  "auditor.class": ["demographics", "encounter", "lab", "imaging", "clinical_note", "diagnostic_report", "condition", "medication", "allergy", "immunization", "procedure", "vital_signs", "self_test"],
  "auditor.purpose": ["treatment", "referral", "research", "emergency", "family", "public_health", "payment"],
  "auditor.finding": ["access_unauthorized", "access_unknown_record", "access_patient_mismatch", "access_after_erasure", "ciphertext_mismatch", "ciphertext_missing", "erased_ciphertext_served", "custodian_unreachable", "access_logged_by_other"],
  "auditor.ciphertext": ["match", "mismatch", "missing", "erased", "served_after_erasure", "unchecked"],
};

/** Translated name of a code from the report (record class, purpose, finding); the code itself if unknown. */
function named(prefix, value) {
  if (value === null || value === undefined || value === "") return "—";
  return NAMED[prefix].includes(String(value)) ? t(`${prefix}.${value}`) : String(value);
}

function scopeBody() {
  if (state.kind === "range") return { kind: "range", from_block: Number(state.from), to_block: Number(state.to) };
  return { kind: state.kind, address: state.address.trim() };
}

function validate() {
  if (state.kind === "range") {
    const ok = /^\d+$/.test(state.from) && /^\d+$/.test(state.to);
    if (!ok) return t("auditor.form.range_invalid");
    if (Number(state.from) > Number(state.to)) return t("auditor.form.range_order");
    return null;
  }
  return ADDRESS.test(state.address.trim()) ? null : t("auditor.form.address_invalid");
}

function download(name, data, type) {
  const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2) + "\n"], { type }));
  const a = h("a", { href: url, download: name, class: "sr-only" }, name);
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function run(view) {
  const problem = validate();
  if (problem) {
    state.error = { message: problem, code: null, local: true };
    return view.refresh({ focus: "error" });
  }
  state.error = null;
  state.report = null;
  state.running = { progress: null };
  view.refresh();
  try {
    const started = await api.post("/v1/audits", { scope: scopeBody() });
    state.id = started.id;
    state.running = { id: started.id, progress: started.progress };
    for (;;) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const reply = await api.get(`/v1/audits/${encodeURIComponent(started.id)}`);
      if (reply.schema === "medledger-audit") {
        state.report = reply;
        break;
      }
      state.running = { id: started.id, progress: reply.progress };
      view.progress();
    }
  } catch (err) {
    // Served by a node (which runs no audits) rather than by the auditor's service: say where audits run.
    state.error = err.status === 404 && err.code === "not_found" ? { message: t("auditor.no_service"), local: true } : err;
  } finally {
    state.running = null;
  }
  view.refresh({ focus: state.error ? "error" : "report" });
}

function scopeForm(view) {
  const radios = KINDS.map((kind) =>
    h(
      "label",
      { class: "choice" },
      h("input", {
        type: "radio",
        name: "scope-kind",
        value: kind,
        checked: state.kind === kind,
        onchange: () => {
          state.kind = kind;
          view.toggle();
        },
      }),
      ` ${t(`auditor.scope.${kind}`)}`,
    ),
  );
  const address = h("input", {
    id: "audit-address",
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    class: "mono",
    size: 44,
    value: state.address,
    placeholder: "0x…",
    oninput: (e) => (state.address = e.target.value),
  });
  const from = h("input", { id: "audit-from", type: "number", min: 0, inputmode: "numeric", value: state.from, oninput: (e) => (state.from = e.target.value) });
  const to = h("input", { id: "audit-to", type: "number", min: 0, inputmode: "numeric", value: state.to, oninput: (e) => (state.to = e.target.value) });
  const addressGroup = h("div", {}, field(t(`auditor.form.${state.kind === "institution" ? "institution" : "patient"}_address`), address, t("auditor.form.address_hint")));
  const rangeGroup = h("div", {}, field(t("auditor.form.from_block"), from), field(t("auditor.form.to_block"), to, t("auditor.form.range_hint")));
  const button = h("button", { type: "submit", id: "audit-run" }, t("auditor.form.run"));
  view.toggle = () => {
    const range = state.kind === "range";
    addressGroup.hidden = range;
    rangeGroup.hidden = !range;
    addressGroup.querySelector("label").textContent = t(`auditor.form.${state.kind === "institution" ? "institution" : "patient"}_address`);
  };
  // aria-disabled rather than disabled while an audit runs: a disabled button would drop the keyboard focus.
  view.busy = (busy) => {
    button.setAttribute("aria-disabled", busy ? "true" : "false");
    button.textContent = t(busy ? "auditor.form.running" : "auditor.form.run");
  };
  const form = h(
    "form",
    {
      class: "card",
      "aria-labelledby": "audit-form-title",
      novalidate: true,
      onsubmit: (e) => {
        e.preventDefault();
        if (state.running === null) run(view);
      },
    },
    h("h2", { id: "audit-form-title" }, t("auditor.form.title")),
    h("fieldset", {}, h("legend", {}, t("auditor.form.scope")), h("div", { class: "actions" }, radios)),
    addressGroup,
    rangeGroup,
    h("div", { class: "actions" }, button),
  );
  view.toggle();
  view.busy(state.running !== null);
  return form;
}

function progressText() {
  const p = state.running?.progress;
  if (!p || !p.blocks_total) return t("auditor.running.start");
  return t("auditor.running.progress", {
    done: formatNumber(p.blocks_done),
    total: formatNumber(p.blocks_total),
    events: formatNumber(p.events),
  });
}

function scopeText(scope) {
  if (scope.kind === "range") return t("auditor.report.scope_range", { from: formatNumber(scope.from_block), to: formatNumber(scope.to_block) });
  return t(`auditor.report.scope_${scope.kind}`, { address: scope.address });
}

function table(id, caption, head, rows, empty) {
  return rows.length === 0 ? h("p", { class: "muted", id }, empty) : dataTable(id, caption, head, rows);
}

function severityBadge(severity) {
  return severity === "violation"
    ? h("span", { class: "badge break-glass" }, t("auditor.severity.violation"))
    : h("span", { class: "badge" }, "⚠ ", t("auditor.severity.warning"));
}

function authText(auth) {
  const vars = { id: formatNumber(auth.id), kind: auth.kind };
  const known = ["grant", "break_glass", "patient", "custodian"].includes(auth.kind);
  return known ? t(`auditor.auth.${auth.kind}`, vars) : t("auditor.auth.other", vars);
}

function renderReport(r) {
  const s = r.summary;
  const clean = r.result === "clean";
  const title = h("h2", { id: "report-title", tabindex: "-1" }, t("auditor.report.title"));
  const banner = clean
    ? h("p", { class: "notice ok", role: "status", id: "audit-result" }, "✓ ", h("strong", {}, t("auditor.report.clean")), " ", t("auditor.report.clean_detail"))
    : h("p", { class: "notice error", role: "alert", id: "audit-result" }, "✗ ", h("strong", {}, t("auditor.report.violations", { n: formatNumber(s.violations) })));
  const warnings = s.warnings
    ? h("p", { class: "notice warn", id: "audit-warnings" }, "⚠ ", t("auditor.report.warnings", { n: formatNumber(s.warnings) }))
    : null;
  const ciphertexts = s.ciphertexts_checked
    ? Object.entries(s.ciphertexts)
        .map(([verdict, n]) => `${named("auditor.ciphertext", verdict)}: ${formatNumber(n)}`)
        .join(" · ") || t("auditor.report.none")
    : t("auditor.report.not_checked");
  const downloads = h(
    "div",
    { class: "actions" },
    h("button", { type: "button", id: "download-json", onclick: () => download(`audit-${state.id}.json`, r, "application/json") }, t("auditor.download.json")),
    h(
      "button",
      {
        type: "button",
        id: "download-fhir",
        class: "secondary",
        onclick: async (e) => {
          const status = e.target.closest("section").querySelector(".download-status");
          replace(status);
          try {
            const bundle = await api.get(`/v1/audits/${encodeURIComponent(state.id)}/auditevents`);
            download(`audit-${state.id}-auditevents.json`, bundle, "application/fhir+json");
          } catch (err) {
            replace(status, errorNotice(err));
          }
        },
      },
      t("auditor.download.fhir"),
    ),
  );
  const findings = r.findings.map((f) => {
    const where = [
      f.block_number === null || f.block_number === undefined ? null : t("auditor.findings.at_block", { block: formatNumber(f.block_number) }),
      f.record_id ? t("auditor.findings.at_record", { record: short(f.record_id) }) : null,
    ].filter(Boolean);
    return h(
      "tr",
      { class: f.severity === "violation" ? "violation" : "warning" },
      h("td", {}, severityBadge(f.severity), " ", h("strong", {}, named("auditor.finding", f.code)), h("br"), h("code", { class: "muted" }, f.code)),
      h("td", {}, f.message, where.length ? [h("br"), h("span", { class: "muted" }, where.join(" · "))] : null),
    );
  });
  const accesses = r.accesses.map((a) =>
    h(
      "tr",
      {},
      h("td", {}, a.time ? formatDate(a.time) : "—"),
      h("td", {}, a.accessor_name || h("span", { class: "mono" }, short(a.accessor))),
      h("td", {}, a.custodian_name || h("span", { class: "mono" }, short(a.custodian))),
      h("td", {}, named("auditor.class", a.record_class)),
      h("td", {}, named("auditor.purpose", a.purpose)),
      h("td", {}, authText(a.authorization), a.break_glass ? [" ", h("span", { class: "badge break-glass" }, t("auditor.break_glass"))] : null),
      h(
        "td",
        {},
        a.verdict === "ok"
          ? h("span", { class: "badge ok" }, "✓ ", t("auditor.verdict.ok"))
          : [h("span", { class: "badge break-glass" }, "✗ ", t("auditor.verdict.violation")), " ", a.violations.map((c) => named("auditor.finding", c)).join(", ")],
      ),
    ),
  );
  return h(
    "section",
    { "aria-labelledby": "report-title", id: "report" },
    title,
    banner,
    warnings,
    downloads,
    h("div", { class: "download-status" }),
    pairTable(t("auditor.report.summary"), [
      [t("auditor.report.scope"), h("span", { class: "mono" }, scopeText(r.scope))],
      [t("auditor.report.generated"), formatDate(r.generated_at)],
      [t("auditor.report.chain"), t("auditor.report.chain_detail", { id: formatNumber(r.chain.chain_id, { useGrouping: false }), block: formatNumber(r.chain.indexed_block) })],
      [t("auditor.summary.accesses"), formatNumber(s.accesses)],
      [t("auditor.summary.break_glass_accesses"), formatNumber(s.break_glass_accesses)],
      [t("auditor.summary.grants"), formatNumber(s.grants)],
      [t("auditor.summary.break_glass_windows"), formatNumber(s.break_glass_windows)],
      [t("auditor.summary.erasures"), formatNumber(s.erasures)],
      [t("auditor.summary.records"), formatNumber(s.records)],
      [t("auditor.summary.ciphertexts"), ciphertexts],
    ]),
    h("h3", {}, t("auditor.findings.title")),
    table(
      "findings",
      t("auditor.findings.title"),
      [t("auditor.findings.finding"), t("auditor.findings.message")],
      findings,
      t("auditor.findings.none"),
    ),
    h("h3", {}, t("auditor.accesses.title")),
    table(
      "accesses",
      t("auditor.accesses.title"),
      [t("auditor.accesses.time"), t("auditor.accesses.accessor"), t("auditor.accesses.custodian"), t("auditor.accesses.class"), t("auditor.accesses.purpose"), t("auditor.accesses.authorization"), t("auditor.accesses.verdict")],
      accesses,
      t("auditor.accesses.none"),
    ),
  );
}

function short(hex) {
  return hex && hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

function seed(params) {
  // A link may preselect the scope (the demo prints one): #/audit?kind=patient&address=0x…
  if (state.seeded) return;
  state.seeded = true;
  if (KINDS.includes(params.kind)) state.kind = params.kind;
  if (params.address) state.address = params.address;
  if (params.from) state.from = params.from;
  if (params.to) state.to = params.to;
}

startPage({
  role: "auditor",
  home: "audit",
  nav: ["audit"],
  views: {
    audit: {
      title: "auditor.title",
      render(main, params) {
        seed(params);
        main.append(h("p", {}, t("auditor.intro")));
        const formSlot = h("div");
        const statusSlot = h("div", { id: "audit-status" });
        const resultSlot = h("div");
        const view = {
          toggle: () => {},
          busy: () => {},
          progress() {
            const line = statusSlot.querySelector(".progress");
            if (line) line.textContent = progressText();
          },
          refresh({ focus } = {}) {
            view.busy(state.running !== null);
            replace(statusSlot, state.running ? h("p", { class: "notice progress", role: "status" }, progressText()) : null);
            const error = state.error ? (state.error.local ? notice("error", state.error.message) : errorNotice(state.error)) : null;
            if (error) error.setAttribute("tabindex", "-1");
            replace(resultSlot, error, state.report ? renderReport(state.report) : null);
            if (focus === "report") resultSlot.querySelector("#report-title")?.focus();
            if (focus === "error") error?.focus();
          },
        };
        replace(formSlot, scopeForm(view));
        main.append(formSlot, statusSlot, resultSlot);
        view.refresh();
      },
    },
  },
});
