"""Timeline filters on the API (the patient's own and a clinician's): record classes by name and a clinical-time
window, answered from the ledger view; unknown classes and an inverted window are precise 422s."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clients.api import NodeRefused
from tests.sharing.conftest import Network

MAY_1_2024 = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp())


def test_the_timeline_filters_by_class_and_clinical_time(network: Network) -> None:
    patient, ids = network.patient(records=2)  # two lab results of 2024-05-01
    me = patient.session()
    staff = network.b.staff("clinician")
    address = patient.wallet.address
    for get in (
        lambda **q: me.get("/v1/me/timeline", **q),
        lambda **q: staff.get(f"/v1/patients/{address}/timeline", **q),
    ):
        assert sorted(i["record_id"] for i in get()["items"]) == sorted(ids)
        assert len(get(**{"class": "lab"})["items"]) == 2
        assert get(**{"class": "imaging"})["items"] == []
        assert len(get(**{"class": ["imaging", "lab"]})["items"]) == 2
        assert len(get(since=MAY_1_2024, until=MAY_1_2024 + 86_400)["items"]) == 2
        assert get(since=MAY_1_2024 + 86_400)["items"] == []
        assert get(until=MAY_1_2024 - 1)["items"] == []
        with pytest.raises(NodeRefused) as bad:
            get(**{"class": "astrology"})
        assert (bad.value.status, bad.value.code) == (422, "invalid_record_class")
        assert "lab" in bad.value.message
        with pytest.raises(NodeRefused) as inverted:
            get(since=MAY_1_2024 + 1, until=MAY_1_2024)
        assert (inverted.value.status, inverted.value.code) == (422, "indexer_bad_query")
