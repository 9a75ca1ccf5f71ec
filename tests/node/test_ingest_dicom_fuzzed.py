"""Inputs the fuzzers found that reached parse()'s last-resort handler (``ingest_unparseable``): each now gets
its precise code from the DICOM reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.ingest import parse
from node.ingest.errors import IngestError

DATA = Path(__file__).parent / "data" / "dicom-fuzz"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("unknown-vr-in-file-meta.bin", "dicom_invalid_vr"),
        ("length-not-multiple-of-vr.bin", "dicom_truncated"),
        ("deflate-stream-cut-short.bin", "dicom_truncated"),
    ],
)
def test_fuzzed_dicom_gets_its_precise_code(name: str, code: str) -> None:
    with pytest.raises(IngestError) as err:
        parse((DATA / name).read_bytes())
    assert err.value.code == code
