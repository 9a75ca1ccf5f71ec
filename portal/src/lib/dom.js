// A tiny DOM builder: h("button", {onclick, class: "primary"}, label). No innerHTML anywhere, so
// text from the network (names, FHIR narrative, HL7 fields) can never become markup or script.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replace the children of ``el``. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A labelled form field: the label names the control (accessible), hint and error are described-by. */
let fieldSeq = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldSeq}`;
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hid = `${id}-hint`;
    control.setAttribute("aria-describedby", hid);
    parts.push(h("p", { class: "hint", id: hid }, hint));
  }
  return h("div", { class: "field" }, parts);
}

/**
 * A data table in a scrollable, focusable, named region (wide tables scroll sideways on a phone): column headers
 * ``head``, body ``rows`` (tr elements), the caption read by screen readers.
 */
export function dataTable(id, caption, head, rows) {
  return h(
    "div",
    { class: "table-wrap", id, tabindex: "0", role: "region", "aria-label": caption },
    h(
      "table",
      {},
      h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", {}, head.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows),
    ),
  );
}

/** Label/value pairs as a two-column table with row headers: compact on a phone, read in pairs by screen readers. */
export function pairTable(caption, rows, id) {
  return h(
    "div",
    { class: "table-wrap", id },
    h(
      "table",
      { class: "pairs" },
      h("caption", { class: "sr-only" }, caption),
      h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, v)))),
    ),
  );
}

/** A status line announced to screen readers (role=status) or as an alert for errors. */
export function notice(kind, text) {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}
