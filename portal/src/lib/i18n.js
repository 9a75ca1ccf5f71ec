// Every string the portal shows comes from a catalog (en, zh-CN); dates and numbers are formatted per locale.
// The chosen locale is kept in localStorage; the default follows the browser (zh* -> zh-CN).
// One catalog file per area (common, patient, clinician, auditor, operator), keys prefixed by area; a page
// bundles them all (a few KiB) so links between roles keep their language.
import enAuditor from "../i18n/en/auditor.json";
import enClinician from "../i18n/en/clinician.json";
import enCommon from "../i18n/en/common.json";
import enOperator from "../i18n/en/operator.json";
import enPatient from "../i18n/en/patient.json";
import zhAuditor from "../i18n/zh-CN/auditor.json";
import zhClinician from "../i18n/zh-CN/clinician.json";
import zhCommon from "../i18n/zh-CN/common.json";
import zhOperator from "../i18n/zh-CN/operator.json";
import zhPatient from "../i18n/zh-CN/patient.json";

const CATALOGS = {
  en: { ...enCommon, ...enPatient, ...enClinician, ...enAuditor, ...enOperator },
  "zh-CN": { ...zhCommon, ...zhPatient, ...zhClinician, ...zhAuditor, ...zhOperator },
};
export const LOCALES = [
  { code: "zh-CN", name: "中文" },
  { code: "en", name: "English" },
];
const KEY = "medledger.locale";

let current = pick();

function pick() {
  const saved = globalThis.localStorage?.getItem(KEY);
  if (saved && CATALOGS[saved]) return saved;
  const nav = (globalThis.navigator?.language || "en").toLowerCase();
  return nav.startsWith("zh") ? "zh-CN" : "en";
}

export function locale() {
  return current;
}

export function setLocale(code) {
  if (!CATALOGS[code]) return;
  current = code;
  localStorage.setItem(KEY, code);
  document.documentElement.lang = code;
  for (const fn of listeners) fn(code);
}

const listeners = new Set();
/** Call ``fn`` after every locale change (pages re-render). */
export function onLocale(fn) {
  listeners.add(fn);
}

/** Whether the catalogs have ``key`` (for optional texts, such as one per error code: t() logs a missing key). */
export function has(key) {
  return key in CATALOGS.en;
}

/** The text of ``key`` in the current locale, with ``{name}`` placeholders filled from ``vars``. */
export function t(key, vars = {}) {
  const text = CATALOGS[current][key] ?? CATALOGS.en[key];
  if (text === undefined) {
    console.error(`missing message ${key}`);
    return key;
  }
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in vars ? String(vars[name]) : m));
}

export function formatDate(value) {
  const d = value instanceof Date ? value : new Date(typeof value === "number" ? value * 1000 : value);
  if (Number.isNaN(d.getTime())) return "";
  return new Intl.DateTimeFormat(current, { dateStyle: "medium", timeStyle: "short" }).format(d);
}

export function formatNumber(n, options = {}) {
  return new Intl.NumberFormat(current, options).format(n);
}
