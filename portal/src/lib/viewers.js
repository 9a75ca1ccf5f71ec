// Record viewers shared by the patient wallet and the clinician workspace: a record's plaintext bytes in,
// a readable view out. renderRecord(container, {bytes: Uint8Array, recordClass, typeCode, format}) where
// format is "fhir" | "hl7v2" | "dicom" (from the timeline entry or sniffed from the bytes).
// FHIR: the resource's main elements as a definition list; HL7 v2: OBX results as a table; DICOM: the image on
// a canvas with its VOI LUT (window center/width) and the main tags.
import { h } from "./dom.js";

export function sniffFormat(bytes) {
  if (bytes.length > 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d) return "dicom";
  const head = new TextDecoder().decode(bytes.subarray(0, 8));
  if (head.startsWith("MSH")) return "hl7v2";
  return "fhir";
}

export function renderRecord(container, { bytes, format }) {
  const kind = format || sniffFormat(bytes);
  // Placeholder until the per-format viewers land: the text of the record, never as markup.
  const text = kind === "dicom" ? `${bytes.length} bytes of DICOM` : new TextDecoder().decode(bytes);
  container.append(h("pre", { class: "mono" }, text));
}
