// Record viewers shared by the patient wallet and the clinician workspace: a record's plaintext bytes in,
// a readable view out. renderRecord(container, {bytes: Uint8Array, format}) where format is "fhir" | "hl7v2" |
// "dicom" (from the record's media type) or omitted (sniffed from the bytes).
// FHIR: the resource's main elements as a definition list; HL7 v2: OBX results as a table; DICOM: the image on
// a canvas with its VOI LUT (window center/width) and the main tags. Everything from the record is inserted as
// text (lib/dom.js has no innerHTML), and no input can throw out of renderRecord: a record that cannot be read
// is shown as such, with its raw text where that is safe to show.
import { defaultWindow, first, modalityPixels, parseDicom, windowToRgba } from "./dicom.js";
import { h } from "./dom.js";
import { narrativeText, resourceRows } from "./fhir.js";
import { hl7Time, oruResults, parseHl7 } from "./hl7.js";
import { formatDate, formatNumber, locale, t } from "./i18n.js";

export function sniffFormat(bytes) {
  if (bytes.length > 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d) return "dicom";
  const head = new TextDecoder().decode(bytes.subarray(0, 16)).replace(/^[\uFEFF\s\x0b]+/, "");
  if (head.startsWith("MSH")) return "hl7v2";
  if (head.startsWith("{")) return "fhir";
  // A bare DICOM data set (no preamble) starts with a group 0002 or 0008 element.
  if (bytes.length >= 8 && (bytes[0] === 0x02 || bytes[0] === 0x08) && bytes[1] === 0x00) return "dicom";
  return "fhir";
}

/** The viewer's format for a media type (the record read's Content-Type), or undefined to sniff. */
export function formatOf(mediaType) {
  const m = String(mediaType || "").toLowerCase();
  if (m.includes("dicom")) return "dicom";
  if (m.includes("hl7")) return "hl7v2";
  if (m.includes("json")) return "fhir";
  return undefined;
}

export function renderRecord(container, { bytes, format }) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes || []);
  const kind = format || sniffFormat(data);
  const view = h("div", { class: "record-view", dataset: { format: kind } });
  container.append(view);
  try {
    if (kind === "dicom") renderDicom(view, data);
    else if (kind === "hl7v2") renderHl7(view, data);
    else renderFhir(view, data);
  } catch (err) {
    // Whatever the bytes, the viewer says it could not read them instead of failing the page.
    view.replaceChildren(h("p", { class: "notice warn", role: "status" }, t("viewer.unreadable"), err?.code ? h("code", {}, ` ${err.code}`) : null));
    if (kind !== "dicom") view.append(rawText(new TextDecoder().decode(data.subarray(0, RAW_LIMIT))));
  }
  return view;
}

// ------------------------------------------------------------------------------------------ shared parts

const RAW_LIMIT = 200_000;

function rawText(text) {
  // A very large record would make a very large <pre>: its start is enough to see what it is.
  const shown = text.length > RAW_LIMIT ? `${text.slice(0, RAW_LIMIT)}\n…` : text;
  return h("details", { class: "raw" }, h("summary", {}, t("viewer.raw")), h("pre", { class: "mono", tabindex: "0" }, shown));
}

function dl(rows) {
  const list = h(
    "dl",
    { class: "kv" },
    rows.map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
  );
  kvLayout(list);
  return list;
}

/** Two columns, label beside value (set through the CSSOM: the page's CSP allows no inline style markup). */
export function kvLayout(list) {
  Object.assign(list.style, { display: "grid", gridTemplateColumns: "minmax(8rem, max-content) 1fr", gap: "0.25rem 1rem", margin: "0.5rem 0" });
  for (const dt of list.querySelectorAll(":scope > dt")) dt.style.fontWeight = "600";
  for (const dd of list.querySelectorAll(":scope > dd")) Object.assign(dd.style, { margin: "0", overflowWrap: "anywhere" });
  return list;
}

function dateOnly(value) {
  const m = /^(\d{4})(?:-?(\d{2}))?(?:-?(\d{2}))?$/.exec(String(value || ""));
  if (!m) return String(value || "");
  if (!m[2]) return m[1];
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +(m[3] || 1)));
  if (Number.isNaN(d.getTime())) return String(value);
  const opts = m[3] ? { dateStyle: "medium", timeZone: "UTC" } : { year: "numeric", month: "long", timeZone: "UTC" };
  return new Intl.DateTimeFormat(locale(), opts).format(d);
}

/** An ISO date-time as a local date and time; a date alone as a date. */
function when(value) {
  const s = String(value || "");
  if (/^\d{4}(-\d{2}(-\d{2})?)?$/.test(s)) return dateOnly(s);
  return formatDate(s) || s;
}

const KNOWN_CODES = new Set([
  "viewer.fhir.status.final",
  "viewer.fhir.status.preliminary",
  "viewer.fhir.status.amended",
  "viewer.fhir.status.corrected",
  "viewer.fhir.status.registered",
  "viewer.fhir.status.cancelled",
  "viewer.fhir.status.entered-in-error",
  "viewer.fhir.status.finished",
  "viewer.fhir.status.active",
  "viewer.fhir.gender.male",
  "viewer.fhir.gender.female",
  "viewer.fhir.gender.other",
  "viewer.fhir.gender.unknown",
]);

function fhirValue(v) {
  if (typeof v === "string") return v;
  if (v.code) return KNOWN_CODES.has(v.code) ? `${t(v.code)} (${v.raw})` : v.raw;
  if (v.time) return when(v.time);
  if (v.date) return dateOnly(v.date);
  if (v.period) return [v.period.start && when(v.period.start), v.period.end && when(v.period.end)].filter(Boolean).join(" – ");
  if (v.bool !== undefined) return v.bool ? t("viewer.yes") : t("viewer.no");
  if (v.text !== undefined) return v.text;
  return "";
}

// ------------------------------------------------------------------------------------------------- FHIR

function fhirLabel(key) {
  // "@name": an element of a resource type without a dedicated view, shown by its FHIR name.
  return key.startsWith("@") ? key.slice(1) : t(key);
}

function renderFhir(view, bytes) {
  const text = new TextDecoder().decode(bytes);
  let doc;
  try {
    doc = JSON.parse(text);
  } catch {
    const err = new Error("not JSON");
    err.code = "fhir_invalid_json";
    throw err;
  }
  if (!doc || typeof doc !== "object" || typeof doc.resourceType !== "string") {
    const err = new Error("not a FHIR resource");
    err.code = "fhir_not_a_resource";
    throw err;
  }
  view.append(resourceSection(doc, 2, 0));
  view.append(rawText(JSON.stringify(doc, null, 2)));
}

const MAX_ENTRIES = 500;

function resourceSection(resource, level, depth) {
  const heading = h(`h${Math.min(level, 6)}`, {}, resourceTitle(resource));
  const section = h("section", { class: "fhir card", dataset: { resource: resource.resourceType } }, heading);
  if (resource.resourceType === "Bundle") {
    const entries = Array.isArray(resource.entry) ? resource.entry : [];
    section.append(
      dl(
        [
          [t("viewer.fhir.bundleType"), resource.type || ""],
          resource.timestamp ? [t("viewer.fhir.timestamp"), when(resource.timestamp)] : null,
          [t("viewer.fhir.entries"), formatNumber(entries.length)],
        ].filter(Boolean),
      ),
    );
    if (depth > 4) return section;
    for (const entry of entries.slice(0, MAX_ENTRIES)) {
      if (entry && typeof entry.resource === "object" && entry.resource && typeof entry.resource.resourceType === "string") {
        section.append(resourceSection(entry.resource, level + 1, depth + 1));
      }
    }
    if (entries.length > MAX_ENTRIES) section.append(h("p", { class: "muted" }, t("viewer.fhir.more", { n: formatNumber(entries.length - MAX_ENTRIES) })));
    return section;
  }
  const rows = resourceRows(resource).map(([key, value]) => [fhirLabel(key), fhirValue(value)]);
  if (rows.length) section.append(dl(rows));
  const narrative = narrativeText(resource);
  if (narrative) {
    const p = h("p", { class: "narrative" }, narrative);
    p.style.whiteSpace = "pre-line";
    section.append(h("h" + Math.min(level + 1, 6), {}, t("viewer.fhir.narrative")), p);
  }
  return section;
}

function resourceTitle(r) {
  const names = {
    Observation: "viewer.fhir.type.Observation",
    Patient: "viewer.fhir.type.Patient",
    DiagnosticReport: "viewer.fhir.type.DiagnosticReport",
    Bundle: "viewer.fhir.type.Bundle",
    Encounter: "viewer.fhir.type.Encounter",
  };
  const label = names[r.resourceType] ? t(names[r.resourceType]) : r.resourceType;
  return r.id ? `${label} · ${r.id}` : label;
}

// ----------------------------------------------------------------------------------------------- HL7 v2

const FLAGS = new Set(["H", "L", "HH", "LL", "A", "AA", "N", "<", ">"]);

function hl7When(value) {
  const parsed = hl7Time(value);
  if (!parsed) return value || "";
  return parsed.dateOnly ? new Intl.DateTimeFormat(locale(), { dateStyle: "medium" }).format(parsed.date) : formatDate(parsed.date);
}

function flagText(flag) {
  const key = { "<": "below", ">": "above" }[flag] || flag;
  return FLAGS.has(flag) ? `${flag} (${t(`viewer.hl7.flag.${key}`)})` : flag;
}

function renderHl7(view, bytes) {
  const text = new TextDecoder().decode(bytes);
  const message = parseHl7(text);
  const oru = oruResults(message);
  const facts = [];
  if (oru.message) {
    facts.push([t("viewer.hl7.messageType"), oru.message.type]);
    if (oru.message.time) facts.push([t("viewer.hl7.messageTime"), hl7When(oru.message.time)]);
    if (oru.message.sender) facts.push([t("viewer.hl7.sender"), oru.message.sender]);
  }
  if (oru.patient) {
    facts.push([t("viewer.hl7.patient"), [oru.patient.name, oru.patient.id && `(${oru.patient.id})`].filter(Boolean).join(" ")]);
    if (oru.patient.birth) facts.push([t("viewer.hl7.birth"), hl7When(oru.patient.birth)]);
  }
  view.append(h("section", { class: "hl7 card" }, h("h2", {}, t("viewer.hl7.title")), dl(facts)));
  const results = oru.orders.flatMap((o) => o.results);
  if (results.length === 0) {
    view.append(h("p", { class: "muted" }, t("viewer.hl7.noResults")));
  }
  for (const [i, order] of oru.orders.entries()) {
    if (order.results.length === 0) continue;
    const table = resultsTable(order);
    // Seven columns do not fit a phone: the table keeps a readable width and its region scrolls sideways.
    table.style.minWidth = "40rem";
    const caption = table.querySelector("caption").textContent;
    view.append(
      h(
        "div",
        { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption || t("viewer.hl7.results"), dataset: { order: i } },
        table,
      ),
    );
  }
  view.append(rawText(text.replace(/\r\n?|\n/g, "\n")));
}

function resultsTable(order) {
  const caption = [order.service || t("viewer.hl7.results"), order.time && hl7When(order.time)].filter(Boolean).join(" · ");
  return h(
    "table",
    { class: "hl7-results" },
    h("caption", {}, caption),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["code", "test", "value", "units", "range", "flags", "time"].map((c) => h("th", { scope: "col" }, t(`viewer.hl7.col.${c}`))),
      ),
    ),
    h(
      "tbody",
      {},
      order.results.map((r) =>
        h(
          "tr",
          { class: r.flags.some((f) => f !== "N") ? "abnormal" : null },
          h("td", { class: "mono" }, [r.code, r.system && h("span", { class: "muted" }, ` ${r.system}`)]),
          h("th", { scope: "row" }, r.text, r.notes.length ? h("p", { class: "hint" }, r.notes.join(" ")) : null),
          h("td", {}, r.value),
          h("td", {}, r.units),
          h("td", {}, r.range),
          h("td", {}, r.flags.map(flagText).join(", ")),
          h("td", {}, hl7When(r.time)),
        ),
      ),
    ),
  );
}

// ------------------------------------------------------------------------------------------------ DICOM

const SHOWN_TAGS = [
  "PatientName",
  "PatientID",
  "PatientBirthDate",
  "PatientSex",
  "Modality",
  "StudyDate",
  "StudyDescription",
  "SeriesDescription",
  "BodyPartExamined",
  "InstitutionName",
  "Manufacturer",
  "Rows",
  "Columns",
  "BitsAllocated",
  "BitsStored",
  "PixelRepresentation",
  "PhotometricInterpretation",
  "RescaleSlope",
  "RescaleIntercept",
  "WindowCenter",
  "WindowWidth",
  "PixelSpacing",
  "SliceThickness",
  "NumberOfFrames",
  "TransferSyntaxUID",
];

const TRANSFER_SYNTAX_NAMES = {
  "1.2.840.10008.1.2": "Implicit VR Little Endian",
  "1.2.840.10008.1.2.1": "Explicit VR Little Endian",
  "1.2.840.10008.1.2.1.99": "Deflated Explicit VR Little Endian",
  "1.2.840.10008.1.2.2": "Explicit VR Big Endian",
  "1.2.840.10008.1.2.4.50": "JPEG Baseline",
  "1.2.840.10008.1.2.4.57": "JPEG Lossless",
  "1.2.840.10008.1.2.4.70": "JPEG Lossless SV1",
  "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
  "1.2.840.10008.1.2.4.81": "JPEG-LS Near-lossless",
  "1.2.840.10008.1.2.4.90": "JPEG 2000 Lossless",
  "1.2.840.10008.1.2.4.91": "JPEG 2000",
  "1.2.840.10008.1.2.5": "RLE Lossless",
};

function tagValue(name, v) {
  if (v === undefined) return null;
  if (name === "StudyDate" || name === "PatientBirthDate") return dateOnly(v);
  if (name === "TransferSyntaxUID") return TRANSFER_SYNTAX_NAMES[v] ? `${TRANSFER_SYNTAX_NAMES[v]} (${v})` : v;
  if (Array.isArray(v)) return v.map((x) => (typeof x === "number" ? formatNumber(x) : x)).join(" \\ ");
  return typeof v === "number" ? formatNumber(v) : String(v);
}

let viewerSeq = 0;

function renderDicom(view, bytes) {
  const parsed = parseDicom(bytes);
  const v = parsed.values;
  const id = `dv${++viewerSeq}`;
  const section = h("section", { class: "dicom card" }, h("h2", {}, t("viewer.dicom.title")));
  view.append(section);
  const pixels = modalityPixels(parsed, bytes);
  if (pixels.error) {
    section.append(h("p", { class: "notice warn", role: "status", dataset: { reason: pixels.error } }, t(`viewer.dicom.${pixels.error}`)));
  } else {
    section.append(imagePanel(id, parsed, pixels));
  }
  const rows = SHOWN_TAGS.filter((n) => v[n] !== undefined).map((n) => [t(`viewer.dicom.tag.${n}`), tagValue(n, v[n])]);
  section.append(h("h3", {}, t("viewer.dicom.tags")), dl(rows));
}

function imagePanel(id, parsed, pixels) {
  const { rows, cols } = pixels;
  const canvas = h("canvas", {
    class: "dicom",
    width: cols,
    height: rows,
    role: "img",
    "aria-label": t("viewer.dicom.image", { modality: parsed.values.Modality || "DICOM", cols, rows }),
  });
  // Small images are shown enlarged (pixels kept sharp); the stylesheet caps the width at the container's.
  Object.assign(canvas.style, { width: `${Math.min(Math.max(cols, 384), cols * 4)}px`, imageRendering: "pixelated" });
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(cols, rows);
  const panel = h("div", { class: "dicom-panel" }, canvas);
  if (pixels.rgb) {
    image.data.set(pixels.rgb);
    ctx.putImageData(image, 0, 0);
    return panel;
  }
  const initial = defaultWindow(parsed, pixels);
  const center = h("input", { id: `${id}-wc`, type: "number", step: "any", value: String(initial.center), class: "wc", inputmode: "decimal" });
  const width = h("input", { id: `${id}-ww`, type: "number", step: "any", min: "1", value: String(initial.width), class: "ww", inputmode: "decimal" });
  const status = h("p", { class: "hint", id: `${id}-status`, role: "status" });
  let pending = false;
  const draw = () => {
    pending = false;
    const c = Number(center.value);
    const w = Number(width.value);
    if (!Number.isFinite(c) || !Number.isFinite(w) || w < 1) {
      status.textContent = t("viewer.dicom.badWindow");
      return;
    }
    windowToRgba(pixels, c, w, image.data);
    ctx.putImageData(image, 0, 0);
    canvas.dataset.center = String(c);
    canvas.dataset.width = String(w);
    status.textContent = t("viewer.dicom.windowNow", { center: formatNumber(c), width: formatNumber(w) });
  };
  const schedule = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(draw);
  };
  center.addEventListener("input", schedule);
  width.addEventListener("input", schedule);
  const reset = h(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: () => {
        center.value = String(initial.center);
        width.value = String(initial.width);
        draw();
      },
    },
    t("viewer.dicom.reset"),
  );
  const fileWindow = Number.isFinite(first(parsed.values.WindowCenter)) ? "file" : "range";
  panel.append(
    h(
      "fieldset",
      { class: "window" },
      h("legend", {}, t("viewer.dicom.window")),
      h("div", { class: "field" }, h("label", { for: center.id }, t("viewer.dicom.center")), center),
      h("div", { class: "field" }, h("label", { for: width.id }, t("viewer.dicom.width")), width),
      h("p", { class: "hint" }, t(fileWindow === "file" ? "viewer.dicom.fromFile" : "viewer.dicom.fromRange")),
      h("div", { class: "actions" }, reset),
      status,
    ),
  );
  draw();
  return panel;
}
