// The node operator's page, the one an operator leaves open: the node's health (its checks), the chain head and
// how far the node's index trails it, the node's work queues (anchoring, the access log, contract writes,
// notifications), the consortium's members and roles, and the node's staff accounts. It refreshes itself every
// few seconds while the tab is visible (and can be paused). Staff sign-in with a token, kept for this tab only
// (sessionStorage); a demo link may carry it as #token=… (taken and removed from the address bar at once).
// API: GET /v1/ops/overview, GET /v1/ops/members, GET /v1/staff (admin).
import { NodeApi } from "../lib/api.js";
import { dataTable, field, h, pairTable, replace } from "../lib/dom.js";
import { formatDate, formatNumber, t } from "../lib/i18n.js";
import { errorNotice, startPage } from "../lib/shell.js";

const TOKEN_KEY = "medledger.operator.token";
const EVERY_MS = 5000;
const QUEUES = ["anchor", "access_log", "chain_writes", "notifications", "anchor_batches"];
const CHECKS = ["chain", "ledger", "membership", "index", "anchor", "access_log", "chain_writes", "notifications"];
const STATUSES = ["pending_link", "queued", "submitted", "confirmed", "erased", "sent", "failed"];
const MEMBER_ROLES = ["hospital", "clinic", "lab", "cdc", "manufacturer", "researcher", "auditor", "relayer", "emergency"];
const STAFF_ROLES = ["clinician", "registrar", "admin", "auditor"];
const LEVELS = { ok: "✓", warning: "⚠", failing: "✗" };

// Before the router reads the hash: a #token= fragment signs in and leaves the address bar (and history).
(function takeToken() {
  const m = location.hash.match(/^#token=([^&]+)/);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
})();

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  data: null, // {overview, members, staff, staffError, membersError}
  error: null,
  updatedAt: null,
  paused: false,
  signInError: null,
};
let timer = null;
let inflight = false;
let current = null; // the mounted dashboard's {refresh, paint}

function known(list, value, prefix) {
  return list.includes(value) ? t(`${prefix}.${value}`) : value;
}

function short(hex) {
  return hex && hex.length > 14 ? `${hex.slice(0, 8)}…${hex.slice(-6)}` : hex;
}

function num(n) {
  return n === null || n === undefined ? "—" : formatNumber(n);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(state, { token: null, data: null, error: null, updatedAt: null });
  stop();
  current = null;
  location.hash = "#/dashboard";
  page.rerender();
}

function stop() {
  if (timer !== null) clearInterval(timer);
  timer = null;
}

async function load(api) {
  const [overview, members, staff] = await Promise.allSettled([
    api.get("/v1/ops/overview"),
    api.get("/v1/ops/members"),
    api.get("/v1/staff"),
  ]);
  if (overview.status === "rejected") throw overview.reason;
  return {
    overview: overview.value,
    members: members.status === "fulfilled" ? members.value.members : null,
    membersError: members.status === "rejected" ? members.reason : null,
    staff: staff.status === "fulfilled" ? staff.value.staff : null,
    staffError: staff.status === "rejected" ? staff.reason : null,
  };
}

// ------------------------------------------------------------------------------------------------ sign-in

function signInForm() {
  const input = h("input", { id: "staff-token", type: "password", autocomplete: "off", spellcheck: "false", required: true });
  return h(
    "form",
    {
      class: "card",
      "aria-labelledby": "signin-title",
      onsubmit: async (e) => {
        e.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        try {
          await new NodeApi("", token).get("/v1/ops/overview");
        } catch (err) {
          state.signInError = err;
          page.rerender();
          return;
        }
        sessionStorage.setItem(TOKEN_KEY, token);
        Object.assign(state, { token, signInError: null });
        page.rerender();
      },
    },
    h("h2", { id: "signin-title" }, t("operator.signin.title")),
    h("p", {}, t("operator.signin.intro")),
    state.signInError ? errorNotice(state.signInError) : null,
    field(t("operator.signin.token"), input, t("operator.signin.hint")),
    h("div", { class: "actions" }, h("button", { type: "submit" }, t("operator.signin.submit"))),
  );
}

// ------------------------------------------------------------------------------------------------ dashboard


function level(value) {
  const cls = value === "ok" ? "badge ok" : value === "failing" ? "badge break-glass" : "badge";
  return h("span", { class: cls }, `${LEVELS[value] || ""} `, known(Object.keys(LEVELS), value, "operator.level"));
}

/** What a check that is not OK means, in the reader's language from the overview's figures; the node's own
 * (English) detail only for a check this page does not know. */
function checkDetail(c, o) {
  if (c.level === "ok") return "—";
  const chain = o.chain;
  const q = o.queues[c.name];
  switch (c.name) {
    case "chain":
      return [t("operator.detail.chain"), chain.error ? h("code", {}, ` ${chain.error.code}`) : null];
    case "ledger":
      return t("operator.detail.ledger");
    case "membership":
      return t(chain.member === false ? "operator.detail.not_member" : "operator.detail.membership_unknown");
    case "index":
      return chain.index_lag === null ? t("operator.detail.index_unknown") : t("operator.detail.index", { n: formatNumber(chain.index_lag) });
    default:
      if (q && q.oldest_pending_at && Date.now() - Date.parse(q.oldest_pending_at) > 300_000) return t("operator.detail.queue_old", { time: formatDate(q.oldest_pending_at) });
      if (q && q.counts.failed) return t("operator.detail.queue_failed", { n: formatNumber(q.counts.failed) });
      return h("span", { lang: "en" }, c.detail || "—");
  }
}

function healthSection(o) {
  const kind = o.health === "ok" ? "ok" : o.health === "failing" ? "error" : "warn";
  const rows = o.checks.map((c) =>
    h("tr", { dataset: { check: c.name } }, h("th", { scope: "row" }, known(CHECKS, c.name, "operator.check")), h("td", {}, level(c.level)), h("td", {}, checkDetail(c, o))),
  );
  return h(
    "section",
    { "aria-labelledby": "health-title" },
    h("h2", { id: "health-title" }, t("operator.health.title")),
    h("p", { class: `notice ${kind}`, id: "health" }, `${LEVELS[o.health]} `, h("strong", {}, t(`operator.health.${o.health}`))),
    dataTable("checks", t("operator.health.checks"), [t("operator.health.check"), t("operator.health.level"), t("operator.health.detail")], rows),
  );
}

function chainSection(o) {
  const c = o.chain;
  const yesNo = (v) => (v === null || v === undefined ? "—" : t(v ? "operator.yes" : "operator.no"));
  return h(
    "section",
    { "aria-labelledby": "chain-title" },
    h("h2", { id: "chain-title" }, t("operator.chain.title")),
    c.rpc_reachable ? null : h("p", { class: "notice error" }, t("operator.chain.unreachable"), c.error ? h("code", {}, ` ${c.error.code}`) : null),
    pairTable(t("operator.chain.title"), [
      [t("operator.node.name"), o.node.name],
      [t("operator.node.address"), h("span", { class: "mono" }, o.node.address)],
      [t("operator.node.origin"), h("span", { class: "mono" }, o.node.origin)],
      [t("operator.node.version"), o.node.version],
      [t("operator.chain.id"), c.chain_id === null ? "—" : formatNumber(c.chain_id, { useGrouping: false })],
      [t("operator.chain.head"), h("span", { id: "chain-head" }, num(c.head_block))],
      [t("operator.chain.indexed"), num(c.indexed_block)],
      [t("operator.chain.lag"), h("span", { id: "index-lag" }, c.index_lag === null ? "—" : t(c.index_lag === 1 ? "operator.chain.block" : "operator.chain.blocks", { n: formatNumber(c.index_lag) }))],
      [t("operator.chain.fresh"), yesNo(c.rpc_reachable ? c.ledger_fresh : null)],
      [t("operator.chain.member"), yesNo(c.member)],
      [t("operator.chain.roles"), c.roles.length ? c.roles.map((r) => known(MEMBER_ROLES, r, "operator.role")).join(t("operator.list_sep")) : "—"],
    ], "chain"),
  );
}

function queuesSection(o) {
  const rows = QUEUES.filter((name) => o.queues[name]).map((name) => {
    const q = o.queues[name];
    const breakdown = Object.entries(q.counts).map(([status, n]) =>
      h("span", { class: "badge", dataset: { status } }, `${known(STATUSES, status, "operator.status")} ${formatNumber(n)}`),
    );
    return h(
      "tr",
      { dataset: { queue: name } },
      h("th", { scope: "row" }, t(`operator.queue.${name}`)),
      h("td", { class: "pending" }, formatNumber(q.pending)),
      h("td", {}, breakdown.flatMap((b, i) => (i ? [" ", b] : [b]))),
      h("td", {}, q.oldest_pending_at ? formatDate(q.oldest_pending_at) : "—"),
    );
  });
  return h(
    "section",
    { "aria-labelledby": "queues-title" },
    h("h2", { id: "queues-title" }, t("operator.queues.title")),
    dataTable("queues", t("operator.queues.title"), [t("operator.queues.queue"), t("operator.queues.pending"), t("operator.queues.counts"), t("operator.queues.oldest")], rows),
  );
}

function membersSection(d) {
  const body = d.members
    ? dataTable(
        "members",
        t("operator.members.title"),
        [t("operator.members.name"), t("operator.members.roles"), t("operator.members.address"), t("operator.members.endpoint"), t("operator.members.admitted")],
        d.members.map((m) =>
          h(
            "tr",
            {},
            h("td", {}, m.name, m.this_node ? [" ", h("span", { class: "badge ok" }, t("operator.members.this_node"))] : null),
            h("td", {}, m.roles.map((r) => known(MEMBER_ROLES, r, "operator.role")).join(t("operator.list_sep")) || "—"),
            h("td", { class: "mono" }, m.address),
            h("td", { class: "mono" }, m.endpoint || "—"),
            h("td", {}, t("operator.members.block", { n: formatNumber(m.admitted_block) })),
          ),
        ),
      )
    : ["ledger_unavailable", "chain_unavailable"].includes(d.membersError?.code)
      ? h("p", { class: "notice warn", id: "members" }, t("operator.members.unavailable"), h("code", {}, ` ${d.membersError.code}`))
      : errorNotice(d.membersError);
  return h("section", { "aria-labelledby": "members-title" }, h("h2", { id: "members-title" }, t("operator.members.title")), body);
}

function staffSection(d) {
  let body;
  if (d.staff) {
    body = dataTable(
      "staff",
      t("operator.staff.title"),
      [t("operator.staff.id"), t("operator.staff.name"), t("operator.staff.role"), t("operator.staff.created"), t("operator.staff.status")],
      d.staff.map((s) =>
        h(
          "tr",
          {},
          h("td", {}, formatNumber(s.id)),
          h("td", {}, s.name),
          h("td", {}, known(STAFF_ROLES, s.role, "operator.staff_role")),
          h("td", {}, formatDate(s.created_at)),
          h("td", {}, s.active ? h("span", { class: "badge ok" }, t("operator.staff.active")) : t("operator.staff.revoked", { when: formatDate(s.revoked_at) })),
        ),
      ),
    );
  } else if (d.staffError?.code === "forbidden") {
    body = h("p", { class: "notice", id: "staff" }, t("operator.staff.admin_only"));
  } else {
    body = errorNotice(d.staffError);
  }
  return h("section", { "aria-labelledby": "staff-title" }, h("h2", { id: "staff-title" }, t("operator.staff.title")), body);
}

function dashboard(main, params) {
  const every = Math.max(1, Number(params.every) || EVERY_MS / 1000) * 1000;
  const api = new NodeApi("", state.token);
  const updated = h("p", { class: "muted", id: "updated" });
  const errorSlot = h("div");
  const data = h("div", { id: "dashboard" });
  const pause = h("button", { type: "button", class: "secondary", id: "pause", "aria-pressed": "false" });
  const refreshNow = h("button", { type: "button", class: "secondary", id: "refresh" }, t("operator.refresh.now"));

  function paint() {
    pause.textContent = t(state.paused ? "operator.refresh.resume" : "operator.refresh.pause");
    pause.setAttribute("aria-pressed", state.paused ? "true" : "false");
    updated.textContent = state.updatedAt
      ? t(state.paused ? "operator.refresh.paused_at" : "operator.refresh.updated", { time: formatDate(state.updatedAt), seconds: formatNumber(every / 1000) })
      : t("operator.refresh.loading");
    replace(errorSlot, state.error ? [errorNotice(state.error), state.data ? h("p", { class: "muted" }, t("operator.refresh.stale")) : null] : null);
    if (!state.data) return;
    // Keep the keyboard focus where it was: the tables are rebuilt on every refresh, their ids are stable.
    const focused = data.contains(document.activeElement) ? document.activeElement.id : null;
    const o = state.data.overview;
    replace(data, healthSection(o), chainSection(o), queuesSection(o), membersSection(state.data), staffSection(state.data));
    if (focused) document.getElementById(focused)?.focus();
  }

  async function refresh() {
    if (inflight || !state.token) return;
    inflight = true;
    try {
      state.data = await load(api);
      state.error = null;
      state.updatedAt = new Date();
    } catch (err) {
      if (err.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        Object.assign(state, { token: null, data: null, signInError: err });
        stop();
        inflight = false;
        page.rerender();
        return;
      }
      state.error = err;
    } finally {
      inflight = false;
    }
    if (current === view) paint();
  }

  function tick() {
    if (!state.paused && !document.hidden) refresh();
  }

  pause.addEventListener("click", () => {
    state.paused = !state.paused;
    paint();
    if (!state.paused) refresh();
  });
  refreshNow.addEventListener("click", () => refresh());

  const view = { refresh, paint };
  current = view;
  stop();
  timer = setInterval(tick, every);
  main.append(
    h("p", {}, t("operator.intro")),
    h("div", { class: "actions" }, pause, refreshNow),
    updated,
    errorSlot,
    data,
  );
  paint();
  refresh();
}

// A hidden tab asks nothing; coming back refreshes at once.
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && current && !state.paused) current.refresh();
});

const page = startPage({
  role: "operator",
  home: "dashboard",
  nav: ["dashboard"],
  header: () =>
    state.token
      ? h("span", { class: "who" }, h("button", { type: "button", class: "secondary", id: "signout", onclick: signOut }, t("operator.signout")))
      : null,
  views: {
    dashboard: {
      title: "operator.title",
      render(main, params) {
        if (!state.token) {
          stop();
          current = null;
          main.append(signInForm());
          return;
        }
        dashboard(main, params);
      },
    },
  },
});
