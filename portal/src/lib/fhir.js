// FHIR R4 resources for the record viewer: the main elements of the common clinical resources as
// [label key, text] rows, in reading order. Text only: the XHTML narrative is reduced to its text content by an
// inert parse (DOMParser: no script runs, nothing is fetched) and never inserted as markup.

/** CodeableConcept / Coding -> "text (system code)" in the most readable form present. */
export function concept(cc) {
  if (!cc || typeof cc !== "object") return "";
  if (Array.isArray(cc)) return cc.map(concept).filter(Boolean).join("; ");
  const codings = Array.isArray(cc.coding) ? cc.coding : cc.code || cc.display ? [cc] : [];
  const c = codings.find((x) => x && (x.display || x.code)) || {};
  const label = cc.text || c.display || "";
  const code = c.code ? `${shortSystem(c.system)}${c.code}` : "";
  if (label && code) return `${label} (${code})`;
  return String(label || code);
}

function shortSystem(system) {
  const known = { "http://loinc.org": "LOINC ", "http://snomed.info/sct": "SNOMED ", "http://unitsofmeasure.org": "UCUM " };
  return known[system] || "";
}

export function quantity(q) {
  if (!q || typeof q !== "object") return "";
  const unit = q.unit || q.code || "";
  const value = q.value === undefined ? "" : String(q.value);
  return `${q.comparator || ""}${value}${unit ? ` ${unit}` : ""}`.trim();
}

function range(r) {
  if (!r || typeof r !== "object") return "";
  const lo = quantity(r.low);
  const hi = quantity(r.high);
  const span = lo && hi ? `${lo} – ${hi}` : lo ? `≥ ${lo}` : hi ? `≤ ${hi}` : "";
  return [span, r.text].filter(Boolean).join(" ");
}

export function humanName(n) {
  if (!n || typeof n !== "object") return "";
  if (n.text) return String(n.text);
  const given = Array.isArray(n.given) ? n.given.join(" ") : n.given || "";
  return [...(n.prefix || []), given, n.family || "", ...(n.suffix || [])].filter(Boolean).join(" ");
}

function reference(r) {
  if (!r || typeof r !== "object") return "";
  const id = r.identifier ? [r.identifier.system, r.identifier.value].filter(Boolean).join("|") : "";
  return [r.display, r.reference, id].filter(Boolean).join(" · ");
}

function identifier(i) {
  if (!i || typeof i !== "object") return "";
  return [concept(i.type), i.system, i.value].filter(Boolean).join(" · ");
}

function address(a) {
  if (!a || typeof a !== "object") return "";
  if (a.text) return String(a.text);
  return [...(a.line || []), a.city, a.district, a.state, a.postalCode, a.country].filter(Boolean).join(", ");
}

/** value[x] / effective[x] style choice elements: the first present, rendered as text (time: {time}). */
export function choice(resource, prefix) {
  for (const [key, v] of Object.entries(resource || {})) {
    if (!key.startsWith(prefix) || key.length === prefix.length) continue;
    const type = key.slice(prefix.length);
    if (type === "Quantity" || type === "Age" || type === "Duration") return { text: quantity(v) };
    if (type === "CodeableConcept" || type === "Coding") return { text: concept(v) };
    if (type === "Range") return { text: range(v) };
    if (type === "Ratio") return { text: `${quantity(v.numerator)} / ${quantity(v.denominator)}` };
    if (type === "Period") return { period: v };
    if (type === "DateTime" || type === "Instant" || type === "Date") return { time: v };
    if (type === "Boolean") return { bool: v };
    if (type === "SampledData") return { text: String(v.data || "").slice(0, 200) };
    if (v !== null && typeof v !== "object") return { text: String(v) };
  }
  return null;
}

const list = (v) => (Array.isArray(v) ? v : v === undefined || v === null ? [] : [v]);

/** The narrative's text (inert parse of the XHTML; its markup is dropped). */
export function narrativeText(resource) {
  const div = resource?.text?.div;
  if (typeof div !== "string" || !div) return "";
  const doc = new DOMParser().parseFromString(div, "text/html");
  for (const el of doc.querySelectorAll("script, style")) el.remove();
  for (const el of doc.querySelectorAll("br")) el.replaceWith("\n");
  for (const el of doc.querySelectorAll("p, div, li, tr, h1, h2, h3, h4, h5, h6")) el.append("\n");
  return (doc.body.textContent || "").replace(/[ \t]+/g, " ").replace(/\n\s*\n+/g, "\n").trim();
}

/**
 * Rows for ``resource``: [[label key, value]], value a string or {time} / {period} / {bool} / {code: key}
 * for the viewer to format per locale. Unknown resource types get their top-level scalar elements.
 */
export function resourceRows(resource) {
  const r = resource;
  const rows = [];
  const add = (key, value) => {
    if (value === undefined || value === null || value === "") return;
    if (Array.isArray(value) && value.length === 0) return;
    rows.push([key, value]);
  };
  const status = r.status ? { code: `viewer.fhir.status.${r.status}`, raw: r.status } : "";
  switch (r.resourceType) {
    case "Observation": {
      add("viewer.fhir.code", concept(r.code));
      add("viewer.fhir.value", choice(r, "value") || (r.dataAbsentReason ? concept(r.dataAbsentReason) : ""));
      add("viewer.fhir.interpretation", concept(r.interpretation));
      add("viewer.fhir.referenceRange", list(r.referenceRange).map(range).filter(Boolean).join("; "));
      add("viewer.fhir.effective", choice(r, "effective"));
      add("viewer.fhir.issued", r.issued ? { time: r.issued } : "");
      add("viewer.fhir.status", status);
      add("viewer.fhir.category", concept(r.category));
      add("viewer.fhir.subject", reference(r.subject));
      add("viewer.fhir.performer", list(r.performer).map(reference).filter(Boolean).join("; "));
      for (const c of list(r.component)) {
        const v = choice(c, "value");
        add("viewer.fhir.component", `${concept(c.code)}: ${v?.text ?? (v?.bool !== undefined ? String(v.bool) : "")}`);
      }
      break;
    }
    case "Patient": {
      add("viewer.fhir.name", list(r.name).map(humanName).filter(Boolean).join("; "));
      add("viewer.fhir.gender", r.gender ? { code: `viewer.fhir.gender.${r.gender}`, raw: r.gender } : "");
      add("viewer.fhir.birthDate", r.birthDate ? { date: r.birthDate } : "");
      add("viewer.fhir.deceased", choice(r, "deceased"));
      add("viewer.fhir.identifier", list(r.identifier).map(identifier).filter(Boolean).join("; "));
      add("viewer.fhir.telecom", list(r.telecom).map((x) => [x.system, x.value].filter(Boolean).join(": ")).filter(Boolean).join("; "));
      add("viewer.fhir.address", list(r.address).map(address).filter(Boolean).join("; "));
      break;
    }
    case "DiagnosticReport": {
      add("viewer.fhir.code", concept(r.code));
      add("viewer.fhir.status", status);
      add("viewer.fhir.category", concept(r.category));
      add("viewer.fhir.effective", choice(r, "effective"));
      add("viewer.fhir.issued", r.issued ? { time: r.issued } : "");
      add("viewer.fhir.subject", reference(r.subject));
      add("viewer.fhir.performer", list(r.performer).map(reference).filter(Boolean).join("; "));
      add("viewer.fhir.result", list(r.result).map(reference).filter(Boolean).join("; "));
      add("viewer.fhir.conclusion", r.conclusion);
      add("viewer.fhir.conclusionCode", concept(r.conclusionCode));
      add("viewer.fhir.presentedForm", list(r.presentedForm).map((a) => [a.title, a.contentType].filter(Boolean).join(" · ")).filter(Boolean).join("; "));
      break;
    }
    case "Encounter": {
      add("viewer.fhir.status", status);
      add("viewer.fhir.class", concept(r.class));
      add("viewer.fhir.type", concept(r.type));
      add("viewer.fhir.period", r.period ? { period: r.period } : "");
      add("viewer.fhir.subject", reference(r.subject));
      add("viewer.fhir.reason", concept(r.reasonCode));
      break;
    }
    case "Condition":
    case "AllergyIntolerance":
    case "Procedure":
    case "Immunization":
    case "MedicationStatement":
    case "MedicationRequest": {
      add("viewer.fhir.code", concept(r.code || r.vaccineCode || r.medicationCodeableConcept));
      add("viewer.fhir.status", status || concept(r.clinicalStatus));
      add("viewer.fhir.effective", choice(r, "onset") || choice(r, "performed") || choice(r, "occurrence") || choice(r, "effective") || (r.authoredOn ? { time: r.authoredOn } : null));
      add("viewer.fhir.subject", reference(r.subject || r.patient));
      break;
    }
    default:
      break;
  }
  if (rows.length === 0) {
    for (const [key, value] of Object.entries(r)) {
      if (key === "resourceType" || key === "text" || key === "meta") continue;
      if (value !== null && typeof value !== "object") rows.push([`@${key}`, String(value)]);
    }
  }
  const notes = list(r.note)
    .map((n) => (typeof n === "string" ? n : n?.text))
    .filter(Boolean);
  if (notes.length) rows.push(["viewer.fhir.note", notes.join("\n")]);
  return rows;
}
