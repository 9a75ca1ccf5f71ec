"""The record viewers (portal/src/lib/viewers.js, dicom.js, hl7.js, fhir.js) in a real browser.

The viewers module is bundled on its own (the pinned esbuild) and served to Chromium from a routed origin, so
each test hands it exact bytes: DICOM from pydicom's test files, whose canvas pixels are compared with pydicom's
own modality LUT and VOI LUT (numpy) mapped to 8 bits; FHIR resources whose narrative tries to inject markup;
an HL7 v2 ORU message; and truncated or random input, which must never throw out of the viewer.
"""

from __future__ import annotations

import base64
import hashlib
import random
import shutil
import subprocess
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from tests.portal.conftest import axe_violations, screenshot

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "portal" / "src"
ORIGIN = "http://viewer.test"
ORU = (ROOT / "tests" / "node" / "data" / "hl7" / "oru_r01.hl7").read_bytes()


def dicom_file(name: str) -> bytes:
    return Path(str(get_testdata_file(name, download=False))).read_bytes()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    node = shutil.which("node")
    assert node is not None, "Node.js is required (scripts/bootstrap.sh): the viewers are bundled with esbuild"
    out = tmp_path_factory.mktemp("viewers")
    entry = out / "entry.js"
    entry.write_text(
        f'import {{ renderRecord, sniffFormat }} from "{SRC / "lib" / "viewers.js"}";\n'
        f'import {{ parseDicom }} from "{SRC / "lib" / "dicom.js"}";\n'
        f'import {{ setLocale }} from "{SRC / "lib" / "i18n.js"}";\n'
        "window.Viewers = { renderRecord, sniffFormat, parseDicom, setLocale };\n"
    )
    script = (
        "import { build } from 'esbuild';"
        f"await build({{ entryPoints: [{str(entry)!r}], outfile: {str(out / 'viewers.js')!r}, bundle: true,"
        " format: 'iife', target: 'es2022', logLevel: 'warning' });"
    )
    subprocess.run([node, "--input-type=module", "-e", script], check=True, cwd=ROOT, capture_output=True)
    return (out / "viewers.js").read_text()


@pytest.fixture
def viewer(page_factory: Any, bundle: str) -> Iterator[Any]:
    """A page on a routed origin with window.Viewers loaded and a render(bytes, format?) helper."""
    page = page_factory()
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Viewer</title>'
        '<link rel="stylesheet" href="/styles.css"><script src="/viewers.js"></script></head>'
        '<body><main id="main"><h1>Record</h1><div id="out"></div></main></body></html>'
    )
    css = (SRC / "styles.css").read_text()

    def serve(route: Any) -> None:
        path = route.request.url.removeprefix(ORIGIN)
        if path == "/viewers.js":
            route.fulfill(body=bundle, content_type="text/javascript")
        elif path == "/styles.css":
            route.fulfill(body=css, content_type="text/css")
        else:
            route.fulfill(body=html, content_type="text/html")

    page.route(f"{ORIGIN}/**", serve)
    page.goto(f"{ORIGIN}/")
    page.wait_for_function("window.Viewers !== undefined")

    def render(data: bytes, fmt: str | None = None) -> Any:
        page.evaluate(
            """([b64, fmt]) => {
                const bin = atob(b64); const bytes = new Uint8Array(bin.length);
                for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
                const out = document.getElementById('out'); out.replaceChildren();
                window.Viewers.renderRecord(out, { bytes, format: fmt || undefined });
            }""",
            [base64.b64encode(data).decode(), fmt],
        )
        return page

    page.render = render  # type: ignore[attr-defined]
    yield page
    assert page.console_errors == []


# ------------------------------------------------------------------------------------------------ DICOM


def canvas_gray(page: Any) -> Any:
    """The canvas's red channel (gray images: r = g = b) as a rows x columns array."""
    w, h, data = page.evaluate(
        """() => { const c = document.querySelector('canvas.dicom');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   const gray = []; let same = true;
                   for (let i = 0; i < d.length; i += 4) {
                     gray.push(d[i]); same &&= d[i] === d[i+1] && d[i] === d[i+2] && d[i+3] === 255;
                   }
                   if (!same) throw new Error('not gray'); return [c.width, c.height, gray]; }"""
    )
    return np.array(data, dtype=np.uint8).reshape(h, w)


def pydicom_8bit(ds: Any, center: float, width: float) -> Any:
    """pydicom's modality LUT then LINEAR VOI LUT for (center, width), mapped from its output range to 0..255."""
    ds = pydicom.dcmread(BytesIO(_bytes_of(ds)))
    ds.WindowCenter, ds.WindowWidth = center, width
    arr = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds, index=0)
    if ds.PixelRepresentation == 0:
        y_min, y_max = 0.0, 2.0**ds.BitsStored - 1
    else:
        y_min, y_max = -(2.0 ** (ds.BitsStored - 1)), 2.0 ** (ds.BitsStored - 1) - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        y_min, y_max = (v * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for v in (y_min, y_max))
    out = (arr - y_min) / (y_max - y_min) * 255
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 255 - out
    return out


def _bytes_of(ds: Any) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def set_window(page: Any, center: float, width: float) -> None:
    page.get_by_label("Window center").fill(str(center))
    page.get_by_label("Window width").fill(str(width))
    page.wait_for_function(
        f"document.querySelector('canvas.dicom').dataset.center === '{center}' && "
        f"document.querySelector('canvas.dicom').dataset.width === '{width}'"
    )


POSITIONS = [(0, 0), (10, 20), (64, 64), (40, 100), (100, 40), (127, 127), (70, 33), (90, 90)]


@pytest.mark.parametrize(("center", "width"), [(40, 400), (-600, 1500), (1000, 1), (300.5, 2000)])
def test_ct_windowing_matches_pydicom(viewer: Any, center: float, width: float) -> None:
    data = dicom_file("CT_small.dcm")
    viewer.render(data)
    set_window(viewer, center, width)
    got = canvas_gray(viewer)
    ds = pydicom.dcmread(BytesIO(data))
    want = pydicom_8bit(ds, center, width)
    assert got.shape == (ds.Rows, ds.Columns)
    for y, x in POSITIONS:
        assert abs(int(got[y, x]) - float(want[y, x])) <= 0.5 + 1e-9, (y, x, got[y, x], want[y, x])
    # And everywhere: the rounding is the only difference.
    assert float(np.max(np.abs(got.astype(float) - want))) <= 0.5 + 1e-9
    assert len(np.unique(got)) > 2 or width == 1


def test_ct_without_a_window_spans_its_values_and_lists_the_tags(viewer: Any) -> None:
    data = dicom_file("CT_small.dcm")
    viewer.render(data)
    ds = pydicom.dcmread(BytesIO(data))
    hu = apply_modality_lut(ds.pixel_array, ds)
    lo, hi = float(hu.min()), float(hu.max())
    # CT_small names no window: the viewer starts on its full range of Hounsfield units.
    assert float(viewer.get_by_label("Window center").input_value()) == (lo + hi + 1) / 2
    assert float(viewer.get_by_label("Window width").input_value()) == hi - lo + 1
    got = canvas_gray(viewer)
    want = pydicom_8bit(ds, (lo + hi + 1) / 2, hi - lo + 1)
    assert float(np.max(np.abs(got.astype(float) - want))) <= 0.5 + 1e-9
    assert got.min() == 0 and got.max() == 255
    tags = viewer.inner_text("section.dicom dl")
    for text in ("CT", "128", "MONOCHROME2", "-1,024", "Explicit VR Little Endian"):
        assert text in tags, text
    label = viewer.get_attribute("canvas.dicom", "aria-label")
    assert label == "CT image, 128 \u00d7 128 pixels"
    assert axe_violations(viewer) == []
    screenshot(viewer, "viewer-dicom-ct")


@pytest.mark.parametrize("name", ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm"])
def test_mr_uses_the_files_window_in_every_native_transfer_syntax(viewer: Any, name: str) -> None:
    data = dicom_file(name)
    viewer.render(data)
    ds = pydicom.dcmread(BytesIO(data))
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (600, 1600)
    assert viewer.get_by_label("Window center").input_value() == "600"
    assert viewer.get_by_label("Window width").input_value() == "1600"
    got = canvas_gray(viewer)
    want = pydicom_8bit(pydicom.dcmread(BytesIO(dicom_file("MR_small.dcm"))), 600, 1600)
    assert float(np.max(np.abs(got.astype(float) - want))) <= 0.5 + 1e-9
    # The three encodings of one image give the same pixels.
    digest = hashlib.sha256(got.tobytes()).hexdigest()
    viewer.render(dicom_file("MR_small.dcm"))
    assert hashlib.sha256(canvas_gray(viewer).tobytes()).hexdigest() == digest


def test_monochrome1_is_inverted(viewer: Any) -> None:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm", download=False))
    ds.PhotometricInterpretation = "MONOCHROME1"
    viewer.render(_bytes_of(ds))
    got = canvas_gray(viewer)
    want = pydicom_8bit(ds, 600, 1600)
    assert float(np.max(np.abs(got.astype(float) - want))) <= 0.5 + 1e-9
    viewer.get_by_role("button", name="Reset window").click()
    assert viewer.get_by_label("Window center").input_value() == "600"


def test_window_inputs_work_from_the_keyboard(viewer: Any) -> None:
    viewer.render(dicom_file("MR_small.dcm"))
    before = canvas_gray(viewer)
    viewer.get_by_label("Window width").focus()
    viewer.keyboard.press("ArrowUp")  # number inputs step by keyboard
    viewer.keyboard.press("Shift+Tab")
    assert viewer.evaluate("document.activeElement.classList.contains('wc')")
    for _ in range(50):
        viewer.keyboard.press("ArrowUp")  # 600 -> 650: the window moves up, the image darkens
    viewer.wait_for_function("document.querySelector('canvas.dicom').dataset.center === '650'")
    assert viewer.get_by_label("Window width").input_value() == "1601"
    after = canvas_gray(viewer)
    assert after.mean() < before.mean()
    assert "650" in viewer.inner_text("[role=status]")


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "MR_small_RLE.dcm", "JPEG-lossy.dcm", "image_dfl.dcm"])
def test_compressed_images_show_their_tags_and_say_so(viewer: Any, name: str) -> None:
    viewer.render(dicom_file(name))
    assert viewer.locator("canvas").count() == 0
    assert viewer.get_attribute("[data-reason]", "data-reason") == "compressed"
    assert "compressed" in viewer.inner_text("section.dicom")
    ts = str(pydicom.dcmread(get_testdata_file(name, download=False)).file_meta.TransferSyntaxUID)
    assert ts in viewer.inner_text("section.dicom dl")


def test_color_and_bare_data_sets(viewer: Any) -> None:
    viewer.render(dicom_file("SC_rgb_small_odd.dcm"))
    ds = pydicom.dcmread(get_testdata_file("SC_rgb_small_odd.dcm", download=False))
    px = viewer.evaluate(
        "() => Array.from(document.querySelector('canvas.dicom').getContext('2d').getImageData(2, 1, 1, 1).data)"
    )
    assert px[:3] == [int(v) for v in ds.pixel_array[1, 2]]
    for name in ("ExplVR_LitEndNoMeta.dcm", "ExplVR_BigEndNoMeta.dcm"):  # no preamble, no file meta
        viewer.render(dicom_file(name), "dicom")
        assert "RTPLAN" in viewer.inner_text("section.dicom dl")


def test_no_input_crashes_the_dicom_viewer(viewer: Any) -> None:
    """Truncated at every kind of boundary, sequences of undefined length, UN sequences, random bytes: the viewer
    shows what it can or says it cannot read; nothing throws and nothing reads past the buffer."""
    ct = dicom_file("CT_small.dcm")
    rng = random.Random(7)
    odd = ("MR_truncated.dcm", "rtplan_truncated.dcm", "nested_priv_SQ.dcm", "UN_sequence.dcm", "badVR.dcm")
    inputs = [dicom_file(n) for n in odd]
    inputs += [ct[:n] for n in (0, 1, 131, 132, 133, 140, 200, 300, 700, 1000, 5000, len(ct) - 1)]
    noise = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))) for _ in range(40)]
    inputs += [bytes(128) + b"DICM" + n for n in noise] + noise
    mutated = bytearray(ct)
    for _ in range(60):
        mutated[rng.randrange(132, 1200)] = rng.randrange(256)
    inputs.append(bytes(mutated))
    for n, data in enumerate(inputs):
        viewer.render(data, "dicom")
        assert viewer.locator(".record-view").count() == 1, n
    # Damage before the pixels: the tags read up to it, and the reason in words.
    viewer.render(ct[:700], "dicom")
    assert viewer.get_attribute("[data-reason]", "data-reason") == "damaged"
    assert "CT" in viewer.inner_text("section.dicom dl")
    viewer.render(ct[:5000], "dicom")
    assert viewer.get_attribute("[data-reason]", "data-reason") == "damaged"
    assert "-1,024" in viewer.inner_text("section.dicom dl")
    viewer.render(ct[:8000], "dicom")  # inside the pixel data
    assert viewer.get_attribute("[data-reason]", "data-reason") == "pixels_truncated"
    viewer.render(ct[:140], "dicom")  # nothing but the file meta
    assert "could not be read" in viewer.inner_text("#out")
    viewer.render(dicom_file("MR_truncated.dcm"))
    assert viewer.get_attribute("[data-reason]", "data-reason") == "pixels_truncated"


# ------------------------------------------------------------------------------------------ FHIR, HL7 v2

EVIL = (
    '<div xmlns="http://www.w3.org/1999/xhtml"><p>Hb <b>normal</b></p>'
    '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"></div>'
)
OBSERVATION = {
    "resourceType": "Observation",
    "id": "hb-1",
    "status": "final",
    "text": {"status": "generated", "div": EVIL},
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}]},
    "subject": {"reference": "Patient/p1", "display": "Wang Fang"},
    "effectiveDateTime": "2024-05-01T08:30:00Z",
    "valueQuantity": {"value": 13.2, "unit": "g/dL", "system": "http://unitsofmeasure.org", "code": "g/dL"},
    "referenceRange": [{"low": {"value": 12, "unit": "g/dL"}, "high": {"value": 16, "unit": "g/dL"}}],
    "interpretation": [{"coding": [{"code": "N", "display": "Normal"}]}],
}
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "name": [{"family": "Wang", "given": ["Fang"]}, {"text": "王芳"}],
    "gender": "female",
    "birthDate": "1980-05-01",
    "identifier": [{"system": "urn:oid:1.2.156.1", "value": "MRN-1"}],
}
REPORT = {
    "resourceType": "DiagnosticReport",
    "id": "r1",
    "status": "final",
    "code": {"text": "Complete blood count"},
    "effectiveDateTime": "2024-05-01T09:00:00+08:00",
    "result": [{"reference": "Observation/hb-1"}],
    "conclusion": "<b>No anaemia</b>",
}


def test_fhir_resources_read_as_definition_lists_and_never_as_markup(viewer: Any) -> None:
    import json

    viewer.render(json.dumps(OBSERVATION).encode(), "fhir")
    dl = viewer.inner_text("section.fhir dl")
    expected = ("Hemoglobin (LOINC 718-7)", "13.2 g/dL", "12 g/dL \u2013 16 g/dL", "Final (final)", "Wang Fang", "2024")
    for text in expected:
        assert text in dl, text
    narrative = viewer.inner_text(".narrative")
    assert "Hb normal" in narrative
    assert viewer.evaluate("window.__pwned") is None
    assert viewer.locator("#out script, #out img, #out b").count() == 0

    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": PATIENT}, {"resource": OBSERVATION}, {"resource": REPORT}, {"bad": 1}],
    }
    viewer.render(json.dumps(bundle).encode())  # sniffed
    sections = viewer.locator("section.fhir section.fhir")
    assert sections.count() == 3
    patient = sections.nth(0).inner_text()
    assert "Fang Wang" in patient and "王芳" in patient and "Female" in patient and "1980" in patient
    report = sections.nth(2).inner_text()
    assert "Complete blood count" in report and "<b>No anaemia</b>" in report  # text, shown literally
    assert viewer.locator("#out b").count() == 0
    assert axe_violations(viewer) == []
    screenshot(viewer, "viewer-fhir-bundle")

    for bad in (b"{", b"[1,2]", b'{"resourceType": 5}', bytes(range(256))):
        viewer.render(bad, "fhir")
        assert "could not be read" in viewer.inner_text("#out")


def test_hl7_oru_results_as_a_table(viewer: Any) -> None:
    viewer.render(ORU)
    rows = viewer.locator("table.hl7-results tbody tr")
    assert rows.count() == 2
    first = [c.strip() for c in rows.nth(0).locator("td, th").all_inner_texts()]
    assert first[0].startswith("2093-3")
    assert first[1].startswith("Cholesterol [Mass/volume] in Serum or Plasma")
    assert first[2:6] == ["185", "mg/dL", "<200", "N (normal)"]
    assert "2024" in first[6]
    assert "Fasting sample" in first[1]
    assert "Eva Smit" in viewer.inner_text("section.hl7")
    headers = viewer.locator("table.hl7-results thead th").all_inner_texts()
    assert headers == ["Code", "Test", "Value", "Units", "Reference range", "Flags", "Observed"]
    assert axe_violations(viewer) == []
    screenshot(viewer, "viewer-hl7-oru")
    # Escapes decode to text; a field holding markup stays text.
    odd = ORU.replace(b"|185|", b"|<i>1\\S\\2</i>|").replace(b"|N|", b"|H~A|")
    viewer.render(odd)
    cells = viewer.locator("table.hl7-results tbody tr").nth(0).locator("td").all_inner_texts()
    assert cells[1] == "<i>1^2</i>" and cells[4] == "H (high), A (abnormal)"
    assert viewer.locator("#out i").count() == 0


def test_viewers_speak_chinese(viewer: Any) -> None:
    viewer.evaluate("window.Viewers.setLocale('zh-CN')")
    viewer.render(ORU)
    headers = viewer.locator("table.hl7-results thead th").all_inner_texts()
    assert headers[:3] == ["代码", "检验项目", "结果值"]
    viewer.render(dicom_file("MR_small.dcm"))
    assert viewer.get_by_label("窗位").input_value() == "600"
    assert axe_violations(viewer) == []
    screenshot(viewer, "viewer-dicom-mr-zh-CN")
