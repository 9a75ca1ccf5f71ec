// A small DICOM Part 10 reader for the record viewer: the file meta group, then the data set in explicit or
// implicit VR little endian (or the retired explicit big endian), keeping the top-level elements and skipping
// sequences by their lengths or delimiters. Every read is bounds-checked: a truncated or hostile file throws
// DicomError, never reads past the buffer, and nesting is capped so no input can recurse without end.

export class DicomError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export const TS = {
  IMPLICIT_LE: "1.2.840.10008.1.2",
  EXPLICIT_LE: "1.2.840.10008.1.2.1",
  DEFLATED_LE: "1.2.840.10008.1.2.1.99",
  EXPLICIT_BE: "1.2.840.10008.1.2.2",
};
const NATIVE = new Set([TS.IMPLICIT_LE, TS.EXPLICIT_LE, TS.EXPLICIT_BE]);

// VRs whose explicit form has 2 reserved bytes and a 4-byte length (PS3.5 7.1.2).
const LONG_VR = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]);
const UNDEFINED = 0xffffffff;
const MAX_DEPTH = 16;

/** The elements the viewer reads, with the VR used to decode them (implicit VR files carry none). */
export const TAGS = {
  "00020010": ["TransferSyntaxUID", "UI"],
  "00080005": ["SpecificCharacterSet", "CS"],
  "00080020": ["StudyDate", "DA"],
  "00080030": ["StudyTime", "TM"],
  "00080060": ["Modality", "CS"],
  "00080070": ["Manufacturer", "LO"],
  "00080080": ["InstitutionName", "LO"],
  "00081030": ["StudyDescription", "LO"],
  "0008103E": ["SeriesDescription", "LO"],
  "00100010": ["PatientName", "PN"],
  "00100020": ["PatientID", "LO"],
  "00100030": ["PatientBirthDate", "DA"],
  "00100040": ["PatientSex", "CS"],
  "00180015": ["BodyPartExamined", "CS"],
  "00180050": ["SliceThickness", "DS"],
  "00200013": ["InstanceNumber", "IS"],
  "00280002": ["SamplesPerPixel", "US"],
  "00280004": ["PhotometricInterpretation", "CS"],
  "00280006": ["PlanarConfiguration", "US"],
  "00280008": ["NumberOfFrames", "IS"],
  "00280010": ["Rows", "US"],
  "00280011": ["Columns", "US"],
  "00280030": ["PixelSpacing", "DS"],
  "00280100": ["BitsAllocated", "US"],
  "00280101": ["BitsStored", "US"],
  "00280102": ["HighBit", "US"],
  "00280103": ["PixelRepresentation", "US"],
  "00281050": ["WindowCenter", "DS"],
  "00281051": ["WindowWidth", "DS"],
  "00281052": ["RescaleIntercept", "DS"],
  "00281053": ["RescaleSlope", "DS"],
  "00281054": ["RescaleType", "LO"],
  "00281056": ["VOILUTFunction", "CS"],
};
const PIXEL_DATA = "7FE00010";

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
    this.little = true;
  }

  need(n) {
    if (n < 0 || this.pos + n > this.bytes.length) throw new DicomError("truncated", `the file ends inside an element at byte ${this.pos}`);
  }

  u16() {
    this.need(2);
    const v = this.view.getUint16(this.pos, this.little);
    this.pos += 2;
    return v;
  }

  u32() {
    this.need(4);
    const v = this.view.getUint32(this.pos, this.little);
    this.pos += 4;
    return v;
  }

  vr() {
    this.need(2);
    const a = this.bytes[this.pos];
    const b = this.bytes[this.pos + 1];
    this.pos += 2;
    return String.fromCharCode(a, b);
  }

  skip(n) {
    this.need(n);
    this.pos += n;
  }
}

function hex4(n) {
  return n.toString(16).toUpperCase().padStart(4, "0");
}

function isVr(a, b) {
  return a >= 0x41 && a <= 0x5a && b >= 0x41 && b <= 0x5a;
}

/**
 * Read one element header at the reader's position: {tag, vr, length, start} (start = the value's offset).
 * Item and delimiter tags (FFFE,xxxx) have no VR in any transfer syntax.
 */
function header(r, explicit) {
  const group = r.u16();
  const element = r.u16();
  const tag = hex4(group) + hex4(element);
  if (group === 0xfffe) return { tag, vr: "", length: r.u32(), start: r.pos };
  if (!explicit) return { tag, vr: "", length: r.u32(), start: r.pos };
  const vr = r.vr();
  let length;
  if (LONG_VR.has(vr)) {
    r.skip(2);
    length = r.u32();
  } else if (isVr(vr.charCodeAt(0), vr.charCodeAt(1))) {
    length = r.u16();
  } else {
    throw new DicomError("malformed", `element ${tag} has no valid VR`);
  }
  return { tag, vr, length, start: r.pos };
}

/** Skip the items of a sequence of undefined length up to and past its Sequence Delimitation Item. */
function skipUndefinedSequence(r, explicit, depth) {
  if (depth > MAX_DEPTH) throw new DicomError("malformed", "sequences nested too deeply");
  for (;;) {
    const item = header(r, explicit);
    if (item.tag === "FFFEE0DD") return; // sequence delimiter
    if (item.tag !== "FFFEE000") throw new DicomError("malformed", `unexpected ${item.tag} inside a sequence`);
    if (item.length !== UNDEFINED) {
      r.skip(item.length);
      continue;
    }
    // An item of undefined length: its elements up to the Item Delimitation Item.
    for (;;) {
      const el = header(r, explicit);
      if (el.tag === "FFFEE00D") break;
      skipValue(r, el, explicit, depth + 1);
    }
  }
}

/** Skip an encapsulated Pixel Data value (fragments up to the sequence delimiter); returns the fragments. */
function readFragments(r) {
  const fragments = [];
  for (;;) {
    const item = header(r, false);
    if (item.tag === "FFFEE0DD") return fragments;
    if (item.tag !== "FFFEE000" || item.length === UNDEFINED) throw new DicomError("malformed", "broken encapsulated pixel data");
    r.skip(item.length);
    fragments.push({ offset: item.start, length: item.length });
  }
}

function skipValue(r, el, explicit, depth) {
  if (el.length !== UNDEFINED) {
    r.skip(el.length);
    return;
  }
  // Undefined length: a sequence (SQ, or UN / implicit-VR data holding one), or encapsulated pixel data.
  if (el.tag === PIXEL_DATA) readFragments(r);
  else skipUndefinedSequence(r, el.vr === "UN" ? false : explicit, depth);
}

function textOf(bytes, decoder) {
  // Values are padded with a space (text) or NUL (UI) to an even length.
  return decoder.decode(bytes).replace(/[\0 ]+$/, "").replace(/^ +/, "");
}

function decoderFor(charset) {
  const terms = String(charset || "").split("\\").map((s) => s.trim());
  const last = terms[terms.length - 1];
  const name = { ISO_IR_192: "utf-8", "ISO_IR 192": "utf-8", GB18030: "gb18030", GBK: "gbk", "ISO_IR 100": "latin1", "ISO 2022 IR 100": "latin1" }[last];
  try {
    return new TextDecoder(name || "latin1");
  } catch {
    return new TextDecoder("latin1");
  }
}

function decodeValue(vr, bytes, little, decoder) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (vr === "US") {
    const out = [];
    for (let i = 0; i + 2 <= bytes.length; i += 2) out.push(view.getUint16(i, little));
    return out.length === 1 ? out[0] : out.length ? out : null;
  }
  const text = textOf(bytes, decoder);
  if (vr === "DS" || vr === "IS") {
    const nums = text
      .split("\\")
      .map((s) => Number(s.trim()))
      .filter((n) => Number.isFinite(n));
    return nums.length === 0 ? null : nums.length === 1 ? nums[0] : nums;
  }
  if (vr === "PN") return text.replace(/\^+/g, " ").replace(/=/g, " = ").trim();
  return text;
}

/**
 * Parse ``bytes`` (a Uint8Array). Returns {transferSyntax, littleEndian, values: {Keyword: value},
 * pixelData: {offset, length} | null, encapsulated: bool, fragments}. Throws DicomError on malformed input.
 */
export function parseDicom(bytes) {
  const r = new Reader(bytes);
  const values = {};
  let hasPreamble = false;
  if (bytes.length >= 132 && bytes[128] === 0x44 && bytes[129] === 0x49 && bytes[130] === 0x43 && bytes[131] === 0x4d) {
    r.pos = 132;
    hasPreamble = true;
  }
  const latin1 = new TextDecoder("latin1");
  // File meta group (0002): always explicit VR little endian.
  let transferSyntax = null;
  while (r.pos + 4 <= bytes.length && r.view.getUint16(r.pos, true) === 0x0002) {
    const el = header(r, true);
    if (el.length === UNDEFINED) throw new DicomError("malformed", "file meta element of undefined length");
    r.need(el.length);
    if (el.tag === "00020010") transferSyntax = textOf(bytes.subarray(r.pos, r.pos + el.length), latin1);
    r.skip(el.length);
  }
  if (!hasPreamble && transferSyntax === null) {
    // No file meta: a bare data set. Guess implicit vs explicit VR from the first element's bytes 4-5.
    if (bytes.length < 8) throw new DicomError("not_dicom", "too short to be a DICOM file");
    // A group number written big endian (00 08 ...) marks the retired explicit big endian syntax.
    const bigEndian = bytes[0] === 0x00 && bytes[1] !== 0x00;
    transferSyntax = bigEndian ? TS.EXPLICIT_BE : isVr(bytes[4], bytes[5]) ? TS.EXPLICIT_LE : TS.IMPLICIT_LE;
  }
  if (transferSyntax === null) transferSyntax = TS.EXPLICIT_LE;
  values.TransferSyntaxUID = transferSyntax;
  const encapsulated = !NATIVE.has(transferSyntax);
  if (transferSyntax === TS.DEFLATED_LE) {
    // The data set itself is deflated: the header cannot be read without inflating it.
    return { transferSyntax, littleEndian: true, values, pixelData: null, encapsulated: true, fragments: [], deflated: true };
  }
  const explicit = transferSyntax !== TS.IMPLICIT_LE;
  r.little = transferSyntax !== TS.EXPLICIT_BE;
  let decoder = latin1;
  let pixelData = null;
  let fragments = [];
  let damage = null;
  try {
    while (r.pos < bytes.length) {
      if (bytes.length - r.pos < 8) throw new DicomError("truncated", "the file ends inside an element header");
      const el = header(r, explicit);
      const known = TAGS[el.tag];
      if (el.tag === PIXEL_DATA) {
        if (el.length === UNDEFINED) {
          fragments = readFragments(r);
          pixelData = { offset: el.start, length: r.pos - el.start };
        } else {
          // A cut-off pixel value keeps what is there: the viewer says the pixels are short.
          pixelData = { offset: el.start, length: Math.min(el.length, bytes.length - el.start) };
        }
        break; // nothing after the pixels is shown
      }
      if (known && el.length !== UNDEFINED) {
        r.need(el.length);
        const raw = bytes.subarray(r.pos, r.pos + el.length);
        const value = decodeValue(known[1], raw, r.little, decoder);
        if (value !== null && value !== "") values[known[0]] = value;
        if (known[0] === "SpecificCharacterSet") decoder = decoderFor(value);
        r.skip(el.length);
      } else {
        skipValue(r, el, explicit, 0);
      }
    }
  } catch (err) {
    // Past the file meta, a damaged data set still shows the elements read before the damage.
    if (!(err instanceof DicomError) || Object.keys(values).length <= 1) throw err;
    damage = err.code;
  }
  return { transferSyntax, littleEndian: r.little, values, pixelData, encapsulated, fragments, deflated: false, damage };
}

/** The first number of a value that may be multi-valued (WindowCenter "40\\400" -> 40). */
export function first(value) {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * The first frame's stored pixel values after the modality LUT (rescale slope/intercept), as a Float32Array
 * of rows*columns (monochrome) — or null with a reason code if the file's pixels cannot be shown here.
 */
export function modalityPixels(parsed, bytes) {
  const v = parsed.values;
  if (parsed.deflated || parsed.encapsulated) return { error: "compressed" };
  if (!parsed.pixelData) return { error: parsed.damage ? "damaged" : "no_pixels" };
  const rows = v.Rows | 0;
  const cols = v.Columns | 0;
  const bits = v.BitsAllocated | 0;
  const samples = v.SamplesPerPixel === undefined ? 1 : v.SamplesPerPixel | 0;
  const photometric = String(v.PhotometricInterpretation || "MONOCHROME2").toUpperCase();
  if (rows <= 0 || cols <= 0 || rows * cols > 32 * 1024 * 1024) return { error: "bad_size" };
  if (![8, 16, 32].includes(bits)) return { error: "unsupported_bits" };
  const bytesPer = bits / 8;
  const n = rows * cols;
  if (parsed.pixelData.length < n * samples * bytesPer) return { error: "pixels_truncated" };
  const view = new DataView(bytes.buffer, bytes.byteOffset + parsed.pixelData.offset, n * samples * bytesPer);
  if (photometric === "RGB" && samples === 3 && bits === 8) {
    const planar = (v.PlanarConfiguration | 0) === 1;
    const rgb = new Uint8ClampedArray(n * 4);
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) rgb[i * 4 + c] = view.getUint8(planar ? c * n + i : i * 3 + c);
      rgb[i * 4 + 3] = 255;
    }
    return { rows, cols, rgb, photometric };
  }
  if (samples !== 1 || (photometric !== "MONOCHROME1" && photometric !== "MONOCHROME2")) return { error: "unsupported_photometric" };
  const stored = Math.min(Math.max(v.BitsStored | 0 || bits, 1), bits);
  const signed = (v.PixelRepresentation | 0) === 1;
  const slope = v.RescaleSlope === undefined ? 1 : first(v.RescaleSlope);
  const intercept = v.RescaleIntercept === undefined ? 0 : first(v.RescaleIntercept);
  const little = parsed.littleEndian;
  const out = new Float32Array(n);
  // Stored values occupy BitsStored bits ending at HighBit (almost always BitsStored - 1: then no shift); the
  // sign bit of a signed value is the top one of them.
  const high = v.HighBit === undefined ? stored - 1 : v.HighBit | 0;
  const shift = high >= stored - 1 && high < bits ? high - (stored - 1) : 0;
  const mask = stored >= 32 ? 0xffffffff : 2 ** stored - 1;
  const signBit = 2 ** (stored - 1);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    let raw = bits === 8 ? view.getUint8(i) : bits === 16 ? view.getUint16(i * 2, little) : view.getUint32(i * 4, little);
    if (shift) raw >>>= shift;
    raw = stored >= 32 ? raw : raw & mask;
    if (signed && raw >= signBit) raw -= 2 * signBit;
    const value = raw * slope + intercept;
    out[i] = value;
    if (value < min) min = value;
    if (value > max) max = value;
  }
  return { rows, cols, values: out, min, max, photometric };
}

/**
 * The VOI LUT's LINEAR function (PS3.3 C.11.2.1.2.1) of modality values into 8-bit display values, inverted for
 * MONOCHROME1 (whose minimum is white): x <= c - 0.5 - (w-1)/2 -> 0; x > c - 0.5 + (w-1)/2 -> 255; else
 * ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.
 */
export function windowToRgba(pixels, center, width, rgba) {
  const n = pixels.values.length;
  const out = rgba || new Uint8ClampedArray(n * 4);
  const w = Math.max(width, 1);
  const c = center - 0.5;
  const w1 = w - 1;
  const lo = c - w1 / 2;
  const hi = c + w1 / 2;
  const invert = pixels.photometric === "MONOCHROME1";
  const values = pixels.values;
  for (let i = 0; i < n; i++) {
    const x = values[i];
    let y;
    if (x <= lo) y = 0;
    else if (x > hi) y = 255;
    else y = Math.round(((x - c) / w1 + 0.5) * 255);
    if (invert) y = 255 - y;
    const j = i * 4;
    out[j] = out[j + 1] = out[j + 2] = y;
    out[j + 3] = 255;
  }
  return out;
}

/** The window a file asks for, else one spanning its values (the full range maps to black..white). */
export function defaultWindow(parsed, pixels) {
  const c = first(parsed.values.WindowCenter);
  const w = first(parsed.values.WindowWidth);
  if (Number.isFinite(c) && Number.isFinite(w) && w >= 1) return { center: c, width: w };
  const min = Number.isFinite(pixels.min) ? pixels.min : 0;
  const max = Number.isFinite(pixels.max) ? pixels.max : 255;
  return { center: (min + max + 1) / 2, width: Math.max(max - min + 1, 1) };
}
