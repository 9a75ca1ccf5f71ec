// HL7 v2 (ER7) messages for the record viewer: segments, fields, components and the standard escape sequences,
// with the delimiters the message's own MSH declares. Values are plain strings (rendered as text, never markup).

export class Hl7Error extends Error {
  constructor(message) {
    super(message);
    this.code = "hl7_unreadable";
  }
}

/** Parse ER7 text into {delims, segments: [{id, fields: [string[] of components per field]}]}. */
export function parseHl7(text) {
  // MLLP framing bytes and a BOM may surround the message; segments end in CR (LF tolerated).
  const clean = text.replace(/^\uFEFF/, "").replace(/[\x0b\x1c]/g, "").trim();
  if (!clean.startsWith("MSH") || clean.length < 8) throw new Hl7Error("no MSH segment");
  const field = clean[3];
  const [component, repetition, escape, sub] = [clean[4], clean[5], clean[6], clean[7]];
  const delims = { field, component, repetition, escape, sub };
  const segments = clean
    .split(/\r\n|\r|\n/)
    .filter((s) => s.length >= 3)
    .map((line) => {
      const id = line.slice(0, 3);
      let parts = line.split(field);
      // MSH-1 is the field separator itself, so MSH's fields are numbered one further than the split says.
      if (id === "MSH") parts = ["MSH", field, ...parts.slice(1)];
      return { id, fields: parts };
    });
  return { delims, segments };
}

/** Decode the standard escape sequences (\F\ \S\ \T\ \R\ \E\ \Xhh..\, \.br\) of one value. */
export function unescape(value, delims) {
  if (!value || !delims.escape || !value.includes(delims.escape)) return value || "";
  const e = delims.escape.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
  return value.replace(new RegExp(`${e}([^${e}]*)${e}`, "g"), (m, body) => {
    if (body === "F") return delims.field;
    if (body === "S") return delims.component;
    if (body === "T") return delims.sub;
    if (body === "R") return delims.repetition;
    if (body === "E") return delims.escape;
    if (body === ".br") return "\n";
    if (/^X([0-9A-Fa-f]{2})+$/.test(body)) return body.slice(1).replace(/../g, (hh) => String.fromCharCode(parseInt(hh, 16)));
    return "";
  });
}

/** Field ``n`` (1-based, as HL7 numbers them) of ``segment``: its first repetition's components, unescaped. */
export function components(segment, n, delims) {
  const raw = segment.fields[n] || "";
  const rep = raw.split(delims.repetition)[0];
  return rep.split(delims.component).map((c) => unescape(c.split(delims.sub)[0], delims));
}

export function fieldText(segment, n, delims) {
  return unescape(segment.fields[n] || "", delims);
}

/** An HL7 TS/DTM (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) as a Date, or null. */
export function hl7Time(value) {
  const m = /^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$/.exec((value || "").trim());
  if (!m) return null;
  const [, y, mo = "01", d = "01", hh = "00", mi = "00", ss = "00", tz] = m;
  const zone = tz ? `${tz.slice(0, 3)}:${tz.slice(3)}` : "";
  const date = new Date(`${y}-${mo}-${d}T${hh}:${mi}:${ss}${zone}`);
  return Number.isNaN(date.getTime()) ? null : { date, dateOnly: m[4] === undefined };
}

/**
 * The results of an ORU-like message: {patient, message, orders: [{service, time, results: [...]}]}, each
 * result {setId, code, text, system, valueType, value, units, range, flags, status, time}.
 */
export function oruResults(message) {
  const { delims, segments } = message;
  const out = { patient: null, message: null, orders: [] };
  let order = null;
  for (const seg of segments) {
    if (seg.id === "MSH") {
      out.message = { type: components(seg, 9, delims).filter(Boolean).join("^"), time: fieldText(seg, 7, delims), control: fieldText(seg, 10, delims), sender: components(seg, 4, delims)[0] };
    } else if (seg.id === "PID") {
      const name = components(seg, 5, delims);
      const id = components(seg, 3, delims);
      out.patient = { name: [name[1], name[0]].filter(Boolean).join(" "), family: name[0], given: name[1], id: id[0], authority: id[3], birth: fieldText(seg, 7, delims), sex: fieldText(seg, 8, delims) };
    } else if (seg.id === "OBR") {
      const svc = components(seg, 4, delims);
      order = { service: svc[1] || svc[0], serviceCode: svc[0], time: fieldText(seg, 7, delims), results: [] };
      out.orders.push(order);
    } else if (seg.id === "OBX") {
      if (!order) {
        order = { service: "", serviceCode: "", time: "", results: [] };
        out.orders.push(order);
      }
      const id = components(seg, 3, delims);
      const units = components(seg, 6, delims);
      const valueType = fieldText(seg, 2, delims);
      // OBX-5 may repeat and, for coded types, hold components: show its repetitions' readable parts.
      const rawValue = seg.fields[5] || "";
      const value = rawValue
        .split(delims.repetition)
        .map((rep) => {
          const parts = rep.split(delims.component).map((c) => unescape(c, delims));
          return ["CE", "CWE", "CNE"].includes(valueType) ? parts[1] || parts[0] : parts.filter(Boolean).join(" ");
        })
        .join("; ");
      order.results.push({
        setId: fieldText(seg, 1, delims),
        code: id[0],
        text: id[1] || "",
        system: id[2] || "",
        valueType,
        value,
        units: units[1] || units[0] || "",
        range: fieldText(seg, 7, delims),
        flags: (seg.fields[8] || "").split(delims.repetition).map((f) => unescape(f, delims)).filter(Boolean),
        status: fieldText(seg, 11, delims),
        time: fieldText(seg, 14, delims) || order.time,
        notes: [],
      });
    } else if (seg.id === "NTE" && order && order.results.length) {
      order.results[order.results.length - 1].notes.push(fieldText(seg, 3, delims));
    }
  }
  return out;
}
