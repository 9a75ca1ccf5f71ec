"""ConsentRegistry on a real Anvil: direct and relayed (EIP-712) grants and revocations, replacement of the
current grant, isAuthorized windows, and break-glass windows, through the Python wrappers."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from medledger.chain.abi import ContractRevert
from medledger.chain.contracts import DecodedEvent
from medledger.chain.sender import Receipt
from medledger.chain.typed_data import (
    CONSENT_DOMAIN_NAME,
    CONSORTIUM_DOMAIN_NAME,
    domain,
    grant_typed_data,
    recover_signer,
    revoke_typed_data,
    sign_typed_data,
)
from medledger.chain.types import GrantTerms
from medledger.vocabulary import Purpose, RecordClass, Role, class_mask

LAB_AND_IMAGING = class_mask([RecordClass.LAB, RecordClass.IMAGING])
REASON = keccak(text="unconscious patient, ED admission #4711")
DAY = 24 * 60 * 60


# ---------------------------------------------------------------------------------------------- helpers


def terms(
    grantee: str,
    *,
    classes: int = LAB_AND_IMAGING,
    purpose: int = Purpose.TREATMENT,
    valid_from: int = 0,
    valid_until: int,
) -> GrantTerms:
    # purpose is an int so invalid codes (0, 8) can be sent; GrantTerms.as_tuple only calls int() on it.
    return GrantTerms(grantee, classes, purpose, valid_from, valid_until)  # type: ignore[arg-type]


def last_receipt(chain) -> Receipt:
    """The receipt of the (only) transaction of the latest block; Anvil automines one transaction per block."""
    block = chain.rpc.call("eth_getBlockByNumber", ["latest", False])
    assert len(block["transactions"]) == 1
    return Receipt.from_rpc(chain.rpc.call("eth_getTransactionReceipt", [block["transactions"][0]]))


def consent_events(chain) -> list[DecodedEvent]:
    return chain.read.consent.events(last_receipt(chain))


def block_time(chain, number: int) -> int:
    return int(chain.rpc.call("eth_getBlockByNumber", [hex(number), False])["timestamp"], 16)


def consent_domain(chain, *, chain_id: int | None = None, contract: str | None = None) -> dict[str, Any]:
    return domain(
        CONSENT_DOMAIN_NAME,
        chain.rpc.chain_id() if chain_id is None else chain_id,
        contract or chain.manifest.address("ConsentRegistry"),
    )


def sign_grant(
    chain,
    signer: LocalAccount,
    patient: str,
    t: GrantTerms,
    *,
    nonce: int | None = None,
    deadline: int | None = None,
    dom: dict[str, Any] | None = None,
) -> tuple[int, int, bytes]:
    """(nonce, deadline, signature) of a Grant signed by ``signer`` for ``patient`` (the current nonce and a
    deadline an hour from now unless given)."""
    nonce = chain.read.consent.nonces(patient) if nonce is None else nonce
    deadline = chain.timestamp() + 3600 if deadline is None else deadline
    typed = grant_typed_data(dom or consent_domain(chain), patient, t, nonce, deadline)
    return nonce, deadline, sign_typed_data(signer, typed)


def sign_revoke(
    chain,
    signer: LocalAccount,
    patient: str,
    grant_id: int,
    *,
    nonce: int | None = None,
    deadline: int | None = None,
    dom: dict[str, Any] | None = None,
) -> tuple[int, int, bytes]:
    nonce = chain.read.consent.nonces(patient) if nonce is None else nonce
    deadline = chain.timestamp() + 3600 if deadline is None else deadline
    typed = revoke_typed_data(dom or consent_domain(chain), patient, grant_id, nonce, deadline)
    return nonce, deadline, sign_typed_data(signer, typed)


def reverts(error: str, **args: Any):
    """Context manager: the block raises ContractRevert ``error`` whose named args include ``args``."""
    return _Reverts(error, args)


class _Reverts:
    def __init__(self, error: str, args: dict[str, Any]) -> None:
        self.error = error
        self.args = args
        self._cm = pytest.raises(ContractRevert)

    def __enter__(self) -> _Reverts:
        self.exc = self._cm.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> bool:
        handled = self._cm.__exit__(*exc_info)
        err = self.exc.value
        assert err.error == self.error, f"expected {self.error}, got {err}"
        for k, v in self.args.items():
            got = err.args_by_name[k]
            if isinstance(got, str) and isinstance(v, str):
                assert got.lower() == v.lower(), f"{self.error}.{k}: {got} != {v}"
            else:
                assert got == v, f"{self.error}.{k}: {got!r} != {v!r}"
        return bool(handled)


@pytest.fixture
def patient(chain) -> LocalAccount:
    return chain.new_patient()


@pytest.fixture
def grantee(chain) -> str:
    return chain.hospital_b.address


def direct_grant(chain, patient: LocalAccount, t: GrantTerms) -> int:
    return chain.as_(patient).consent.grant(t)


# ---------------------------------------------------------------------------------------------- direct grants


def test_grant_by_patient_authorizes_covered_class_and_purpose_only(chain, patient, grantee):
    until = chain.timestamp() + DAY
    gid = direct_grant(chain, patient, terms(grantee, valid_until=until))
    receipt = last_receipt(chain)
    [ev] = chain.read.consent.events(receipt)
    now = block_time(chain, receipt.block_number)
    assert ev.name == "ConsentGranted"
    assert ev.args == {
        "grantId": gid,
        "patient": patient.address,
        "grantee": grantee,
        "classes": LAB_AND_IMAGING,
        "purpose": Purpose.TREATMENT,
        "validFrom": now,  # validFrom 0 means "now"
        "validUntil": until,
        "replacesGrantId": 0,
        "relayer": "0x" + "00" * 20,
    }

    c = chain.read.consent
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (True, gid)
    assert c.is_authorized(patient.address, grantee, RecordClass.IMAGING, Purpose.TREATMENT) == (True, gid)
    assert c.is_authorized(patient.address, grantee, RecordClass.MEDICATION, Purpose.TREATMENT) == (False, 0)
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.RESEARCH) == (False, 0)
    assert c.is_authorized(patient.address, chain.cdc.address, RecordClass.LAB, Purpose.TREATMENT) == (False, 0)
    other = chain.new_patient()
    assert c.is_authorized(other.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (False, 0)

    g = c.get_grant(gid)
    assert (g.id, g.patient, g.grantee, g.classes, g.purpose) == (
        gid,
        patient.address,
        grantee,
        LAB_AND_IMAGING,
        Purpose.TREATMENT,
    )
    assert (g.valid_from, g.valid_until, g.revoked) == (now, until, False)
    assert c.current_grant(patient.address, grantee, Purpose.TREATMENT) == gid
    assert c.current_grant(patient.address, grantee, Purpose.RESEARCH) == 0


def test_grant_ids_are_sequential(chain, patient, grantee):
    until = chain.timestamp() + DAY
    a = direct_grant(chain, patient, terms(grantee, valid_until=until))
    b = direct_grant(chain, patient, terms(grantee, purpose=Purpose.RESEARCH, valid_until=until))
    assert b == a + 1


def test_future_valid_from_is_not_authorized_until_reached(chain, patient, grantee):
    now = chain.timestamp()
    start = now + 1000
    gid = direct_grant(chain, patient, terms(grantee, valid_from=start, valid_until=start + DAY))
    c = chain.read.consent
    assert c.get_grant(gid).valid_from == start
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (False, 0)
    chain.advance(start - chain.timestamp() - 10)
    assert chain.timestamp() < start
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (False, 0)
    chain.advance(start - chain.timestamp())
    assert chain.timestamp() >= start
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (True, gid)


def test_grant_expires_after_valid_until(chain, patient, grantee):
    until = chain.timestamp() + 100
    gid = direct_grant(chain, patient, terms(grantee, valid_until=until))
    c = chain.read.consent
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (True, gid)
    chain.advance(101)
    assert chain.timestamp() > until
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (False, 0)
    assert c.current_grant(patient.address, grantee, Purpose.TREATMENT) == gid  # still current, just expired


@pytest.mark.parametrize(
    "case",
    [
        "zero_grantee",
        "grantee_is_patient",
        "no_classes",
        "purpose_zero",
        "purpose_above_max",
        "until_equals_from",
        "until_before_from",
        "until_in_past",
        "until_now_with_from_zero",
    ],
)
def test_invalid_grant_reverts(chain, patient, grantee, case):
    now = chain.timestamp()
    until = now + DAY
    t = {
        "zero_grantee": terms("0x" + "00" * 20, valid_until=until),
        "grantee_is_patient": terms(patient.address, valid_until=until),
        "no_classes": terms(grantee, classes=0, valid_until=until),
        "purpose_zero": terms(grantee, purpose=0, valid_until=until),
        "purpose_above_max": terms(grantee, purpose=8, valid_until=until),
        "until_equals_from": terms(grantee, valid_from=now + 500, valid_until=now + 500),
        "until_before_from": terms(grantee, valid_from=now + 500, valid_until=now + 499),
        "until_in_past": terms(grantee, valid_from=now - 1000, valid_until=now - 1),
        "until_now_with_from_zero": terms(grantee, valid_until=now),
    }[case]
    with reverts("InvalidGrant"):
        direct_grant(chain, patient, t)
    assert chain.read.consent.current_grant(patient.address, grantee, Purpose.TREATMENT) == 0


def test_max_purpose_is_accepted_and_matches_vocabulary(chain, patient, grantee):
    assert max(Purpose) == 7
    gid = direct_grant(chain, patient, terms(grantee, purpose=Purpose.PAYMENT, valid_until=chain.timestamp() + DAY))
    assert chain.read.consent.get_grant(gid).purpose is Purpose.PAYMENT


# ---------------------------------------------------------------------------------------------- replacement


def test_new_grant_for_same_grantee_and_purpose_replaces_the_old(chain, patient, grantee):
    until = chain.timestamp() + DAY
    first = direct_grant(chain, patient, terms(grantee, valid_until=until))
    wider = LAB_AND_IMAGING | class_mask([RecordClass.MEDICATION])
    second = direct_grant(chain, patient, terms(grantee, classes=wider, valid_until=until))
    assert second != first

    revoked, granted = consent_events(chain)
    assert revoked.name == "ConsentRevoked"
    assert revoked.args == {
        "grantId": first,
        "patient": patient.address,
        "grantee": grantee,
        "replaced": True,
        "relayer": "0x" + "00" * 20,
    }
    assert granted.name == "ConsentGranted"
    assert granted.args["grantId"] == second
    assert granted.args["replacesGrantId"] == first

    c = chain.read.consent
    assert c.get_grant(first).revoked is True
    assert c.get_grant(second).revoked is False
    assert c.current_grant(patient.address, grantee, Purpose.TREATMENT) == second
    assert c.is_authorized(patient.address, grantee, RecordClass.MEDICATION, Purpose.TREATMENT) == (True, second)
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (True, second)
    with reverts("GrantAlreadyRevoked", grantId=first):
        chain.as_(patient).consent.revoke(first)


def test_grant_for_other_purpose_or_grantee_does_not_replace(chain, patient, grantee):
    until = chain.timestamp() + DAY
    first = direct_grant(chain, patient, terms(grantee, valid_until=until))
    research = direct_grant(chain, patient, terms(grantee, purpose=Purpose.RESEARCH, valid_until=until))
    [ev] = consent_events(chain)
    assert ev.name == "ConsentGranted" and ev.args["replacesGrantId"] == 0
    other = direct_grant(chain, patient, terms(chain.cdc.address, valid_until=until))
    [ev] = consent_events(chain)
    assert ev.name == "ConsentGranted" and ev.args["replacesGrantId"] == 0

    c = chain.read.consent
    assert not c.get_grant(first).revoked
    assert c.current_grant(patient.address, grantee, Purpose.TREATMENT) == first
    assert c.current_grant(patient.address, grantee, Purpose.RESEARCH) == research
    assert c.current_grant(patient.address, chain.cdc.address, Purpose.TREATMENT) == other
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (True, first)
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.RESEARCH) == (True, research)


def test_grant_after_revoke_replaces_nothing(chain, patient, grantee):
    until = chain.timestamp() + DAY
    first = direct_grant(chain, patient, terms(grantee, valid_until=until))
    chain.as_(patient).consent.revoke(first)
    second = direct_grant(chain, patient, terms(grantee, valid_until=until))
    [ev] = consent_events(chain)
    assert ev.name == "ConsentGranted"
    assert ev.args["grantId"] == second and ev.args["replacesGrantId"] == 0
    assert chain.read.consent.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (
        True,
        second,
    )


# ---------------------------------------------------------------------------------------------- revoke


def test_revoke_by_patient(chain, patient, grantee):
    gid = direct_grant(chain, patient, terms(grantee, valid_until=chain.timestamp() + DAY))
    receipt = chain.as_(patient).consent.revoke(gid)
    [ev] = chain.read.consent.events(receipt)
    assert ev.name == "ConsentRevoked"
    assert ev.args == {
        "grantId": gid,
        "patient": patient.address,
        "grantee": grantee,
        "replaced": False,
        "relayer": "0x" + "00" * 20,
    }
    c = chain.read.consent
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (False, 0)
    assert c.get_grant(gid).revoked is True

    with reverts("GrantAlreadyRevoked", grantId=gid):
        chain.as_(patient).consent.revoke(gid)


def test_revoke_by_someone_else_reverts(chain, patient, grantee):
    gid = direct_grant(chain, patient, terms(grantee, valid_until=chain.timestamp() + DAY))
    with reverts("NotGrantPatient", grantId=gid, caller=chain.hospital_b.address):
        chain.as_(chain.hospital_b).consent.revoke(gid)  # the grantee
    intruder = chain.new_patient()
    with reverts("NotGrantPatient", grantId=gid, caller=intruder.address):
        chain.as_(intruder).consent.revoke(gid)
    assert chain.read.consent.get_grant(gid).revoked is False


def test_unknown_grant(chain, patient):
    count = int(chain.read.consent._call("grantCount")[0])
    with reverts("UnknownGrant", grantId=count + 1):
        chain.as_(patient).consent.revoke(count + 1)
    with reverts("UnknownGrant", grantId=0):
        chain.as_(patient).consent.revoke(0)
    with reverts("UnknownGrant", grantId=count + 1):
        chain.read.consent.get_grant(count + 1)
    with reverts("UnknownGrant", grantId=0):
        chain.read.consent.get_grant(0)


# ---------------------------------------------------------------------------------------------- relayed grants


def test_grant_by_sig_relayed_by_relayer(chain, patient, grantee):
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    assert chain.read.consent.nonces(patient.address) == 0
    nonce, deadline, sig = sign_grant(chain, patient, patient.address, t)
    gid = chain.as_(chain.hospital_a).consent.grant_by_sig(patient.address, t, nonce, deadline, sig)

    [ev] = consent_events(chain)
    assert ev.name == "ConsentGranted"
    assert ev.args["grantId"] == gid
    assert ev.args["patient"] == patient.address
    assert ev.args["grantee"] == grantee
    assert ev.args["relayer"] == chain.hospital_a.address
    c = chain.read.consent
    assert c.nonces(patient.address) == 1
    assert c.get_grant(gid).patient == patient.address
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (True, gid)

    # The next signature uses the next nonce; a relayed replacement names the relayer in both events.
    t2 = terms(grantee, classes=class_mask([RecordClass.LAB]), valid_until=chain.timestamp() + DAY)
    n2, d2, sig2 = sign_grant(chain, patient, patient.address, t2)
    assert n2 == 1
    gid2 = chain.as_(chain.cdc).consent.grant_by_sig(patient.address, t2, n2, d2, sig2)
    revoked, granted = consent_events(chain)
    assert revoked.args["grantId"] == gid and revoked.args["replaced"] is True
    assert revoked.args["relayer"] == chain.cdc.address
    assert granted.args["grantId"] == gid2 and granted.args["replacesGrantId"] == gid
    assert c.nonces(patient.address) == 2


def test_grant_by_sig_replay_reverts_with_used_nonce(chain, patient, grantee):
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    nonce, deadline, sig = sign_grant(chain, patient, patient.address, t)
    relayer = chain.as_(chain.hospital_a).consent
    relayer.grant_by_sig(patient.address, t, nonce, deadline, sig)
    # _consumeSignature checks the deadline, then the signature (still valid: it signs nonce 0), then the nonce.
    with reverts("InvalidAccountNonce", account=patient.address, currentNonce=1):
        relayer.grant_by_sig(patient.address, t, nonce, deadline, sig)
    with reverts("InvalidAccountNonce", account=patient.address, currentNonce=1):
        chain.as_(chain.hospital_b).consent.grant_by_sig(patient.address, t, nonce, deadline, sig)


def test_grant_by_sig_expired_deadline(chain, patient, grantee):
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    deadline = chain.timestamp() + 60
    nonce, _, sig = sign_grant(chain, patient, patient.address, t, deadline=deadline)
    chain.advance(61)
    with reverts("SignatureExpired", deadline=deadline):
        chain.as_(chain.hospital_a).consent.grant_by_sig(patient.address, t, nonce, deadline, sig)
    # A deadline already in the past when signed.
    past = chain.timestamp() - 1
    nonce, _, sig = sign_grant(chain, patient, patient.address, t, deadline=past)
    with reverts("SignatureExpired", deadline=past):
        chain.as_(chain.hospital_a).consent.grant_by_sig(patient.address, t, nonce, past, sig)
    assert chain.read.consent.nonces(patient.address) == 0


@pytest.mark.parametrize("tamper", ["chain_id", "verifying_contract", "domain_name"])
def test_grant_by_sig_wrong_domain(chain, patient, grantee, tamper):
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    dom = {
        "chain_id": consent_domain(chain, chain_id=chain.rpc.chain_id() + 1),
        "verifying_contract": consent_domain(chain, contract=chain.manifest.address("Consortium")),
        "domain_name": domain(CONSORTIUM_DOMAIN_NAME, chain.rpc.chain_id(), chain.manifest.address("ConsentRegistry")),
    }[tamper]
    nonce, deadline, sig = sign_grant(chain, patient, patient.address, t, dom=dom)
    with reverts("InvalidSignature", patient=patient.address):
        chain.as_(chain.hospital_a).consent.grant_by_sig(patient.address, t, nonce, deadline, sig)


def test_grant_by_sig_signed_by_another_key(chain, patient, grantee):
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    mallory = chain.new_patient()
    nonce, deadline, sig = sign_grant(chain, mallory, patient.address, t)
    with reverts("InvalidSignature", patient=patient.address):
        chain.as_(chain.hospital_a).consent.grant_by_sig(patient.address, t, nonce, deadline, sig)
    # The grantee itself (a relayer) cannot sign for the patient either.
    nonce, deadline, sig = sign_grant(chain, chain.hospital_b, patient.address, t)
    with reverts("InvalidSignature", patient=patient.address):
        chain.as_(chain.hospital_b).consent.grant_by_sig(patient.address, t, nonce, deadline, sig)


def test_grant_by_sig_garbage_signature(chain, patient, grantee):
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    deadline = chain.timestamp() + 3600
    for sig in (b"", b"\x01" * 65, b"\x00" * 64):
        with reverts("InvalidSignature", patient=patient.address):
            chain.as_(chain.hospital_a).consent.grant_by_sig(patient.address, t, 0, deadline, sig)
    # ecrecover yields address(0) for r = 0: it must not pass as a signature of the zero address.
    zero = "0x" + "00" * 20
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    for sig in (b"\x00" * 64 + b"\x1b", b"\x00" * 64 + b"\x1c", b""):
        with reverts("InvalidSignature", patient=zero):
            chain.as_(chain.hospital_a).consent.grant_by_sig(zero, t, 0, deadline, sig)


@pytest.mark.parametrize("field", ["classes", "grantee", "purpose", "valid_until", "valid_from", "deadline"])
def test_grant_by_sig_terms_changed_after_signing(chain, patient, grantee, field):
    now = chain.timestamp()
    signed = terms(grantee, valid_until=now + DAY)
    nonce, deadline, sig = sign_grant(chain, patient, patient.address, signed)
    widened = signed.classes | class_mask([RecordClass.CLINICAL_NOTE])
    sent = {
        "classes": terms(grantee, classes=widened, valid_until=now + DAY),
        "grantee": terms(chain.cdc.address, valid_until=now + DAY),
        "purpose": terms(grantee, purpose=Purpose.RESEARCH, valid_until=now + DAY),
        "valid_until": terms(grantee, valid_until=now + 365 * DAY),
        "valid_from": terms(grantee, valid_from=now + 10, valid_until=now + DAY),
        "deadline": signed,
    }[field]
    if field == "deadline":
        deadline += 1
    with reverts("InvalidSignature", patient=patient.address):
        chain.as_(chain.hospital_a).consent.grant_by_sig(patient.address, sent, nonce, deadline, sig)


def test_grant_by_sig_for_another_patient(chain, patient, grantee):
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    victim = chain.new_patient()
    nonce, deadline, sig = sign_grant(chain, patient, patient.address, t)
    with reverts("InvalidSignature", patient=victim.address):
        chain.as_(chain.hospital_a).consent.grant_by_sig(victim.address, t, nonce, deadline, sig)


def test_grant_by_sig_future_nonce(chain, patient, grantee):
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    nonce, deadline, sig = sign_grant(chain, patient, patient.address, t, nonce=1)
    assert nonce == chain.read.consent.nonces(patient.address) + 1
    with reverts("InvalidAccountNonce", account=patient.address, currentNonce=0):
        chain.as_(chain.hospital_a).consent.grant_by_sig(patient.address, t, nonce, deadline, sig)


def test_grant_by_sig_invalid_terms_still_invalid_grant(chain, patient):
    t = terms(patient.address, valid_until=chain.timestamp() + DAY)
    nonce, deadline, sig = sign_grant(chain, patient, patient.address, t)
    with reverts("InvalidGrant"):
        chain.as_(chain.hospital_a).consent.grant_by_sig(patient.address, t, nonce, deadline, sig)
    assert chain.read.consent.nonces(patient.address) == 0


@pytest.mark.parametrize("who", ["auditor", "outsider", "patient"])
def test_grant_by_sig_needs_relayer_role(chain, patient, grantee, who):
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    nonce, deadline, sig = sign_grant(chain, patient, patient.address, t)
    account = {"auditor": chain.auditor, "outsider": chain.outsider(0), "patient": patient}[who]
    with reverts("MissingRole", account=account.address, requiredRoles=int(Role.RELAYER)):
        chain.as_(account).consent.grant_by_sig(patient.address, t, nonce, deadline, sig)


# ---------------------------------------------------------------------------------------------- relayed revokes


def test_revoke_by_sig(chain, patient, grantee):
    gid = direct_grant(chain, patient, terms(grantee, valid_until=chain.timestamp() + DAY))
    nonce, deadline, sig = sign_revoke(chain, patient, patient.address, gid)
    relayer = chain.as_(chain.hospital_a).consent
    receipt = relayer.revoke_by_sig(patient.address, gid, nonce, deadline, sig)
    [ev] = chain.read.consent.events(receipt)
    assert ev.name == "ConsentRevoked"
    assert ev.args == {
        "grantId": gid,
        "patient": patient.address,
        "grantee": grantee,
        "replaced": False,
        "relayer": chain.hospital_a.address,
    }
    c = chain.read.consent
    assert c.nonces(patient.address) == 1
    assert c.get_grant(gid).revoked is True
    assert c.is_authorized(patient.address, grantee, RecordClass.LAB, Purpose.TREATMENT) == (False, 0)

    with reverts("InvalidAccountNonce", account=patient.address, currentNonce=1):
        relayer.revoke_by_sig(patient.address, gid, nonce, deadline, sig)


def test_revoke_by_sig_shares_nonces_with_grant_by_sig(chain, patient, grantee):
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    # Both signed at nonce 0 before either is relayed: only the first one relayed can succeed.
    gn, gd, gsig = sign_grant(chain, patient, patient.address, t)
    relayer = chain.as_(chain.hospital_a).consent
    gid = relayer.grant_by_sig(patient.address, t, gn, gd, gsig)
    rn, rd, rsig = sign_revoke(chain, patient, patient.address, gid, nonce=0)
    with reverts("InvalidAccountNonce", account=patient.address, currentNonce=1):
        relayer.revoke_by_sig(patient.address, gid, rn, rd, rsig)
    rn, rd, rsig = sign_revoke(chain, patient, patient.address, gid)
    assert rn == 1
    relayer.revoke_by_sig(patient.address, gid, rn, rd, rsig)
    assert chain.read.consent.nonces(patient.address) == 2


def test_revoke_by_sig_submitted_for_another_patient(chain, patient, grantee):
    gid = direct_grant(chain, patient, terms(grantee, valid_until=chain.timestamp() + DAY))
    other = chain.new_patient()
    nonce, deadline, sig = sign_revoke(chain, patient, patient.address, gid)
    with reverts("InvalidSignature", patient=other.address):
        chain.as_(chain.hospital_a).consent.revoke_by_sig(other.address, gid, nonce, deadline, sig)
    assert chain.read.consent.get_grant(gid).revoked is False


def test_revoke_by_sig_of_another_patients_grant(chain, patient, grantee):
    gid = direct_grant(chain, patient, terms(grantee, valid_until=chain.timestamp() + DAY))
    other = chain.new_patient()
    nonce, deadline, sig = sign_revoke(chain, other, other.address, gid)
    with reverts("NotGrantPatient", grantId=gid, caller=other.address):
        chain.as_(chain.hospital_a).consent.revoke_by_sig(other.address, gid, nonce, deadline, sig)
    c = chain.read.consent
    assert c.get_grant(gid).revoked is False
    assert c.nonces(other.address) == 0  # the revert rolled the nonce back


def test_revoke_by_sig_failures(chain, patient, grantee):
    gid = direct_grant(chain, patient, terms(grantee, valid_until=chain.timestamp() + DAY))
    relayer = chain.as_(chain.hospital_a).consent

    # Signed for another grant id.
    nonce, deadline, sig = sign_revoke(chain, patient, patient.address, gid + 1)
    with reverts("InvalidSignature", patient=patient.address):
        relayer.revoke_by_sig(patient.address, gid, nonce, deadline, sig)
    # Expired.
    past = chain.timestamp() - 1
    nonce, _, sig = sign_revoke(chain, patient, patient.address, gid, deadline=past)
    with reverts("SignatureExpired", deadline=past):
        relayer.revoke_by_sig(patient.address, gid, nonce, past, sig)
    # Wrong chain.
    dom = consent_domain(chain, chain_id=chain.rpc.chain_id() + 1)
    nonce, deadline, sig = sign_revoke(chain, patient, patient.address, gid, dom=dom)
    with reverts("InvalidSignature", patient=patient.address):
        relayer.revoke_by_sig(patient.address, gid, nonce, deadline, sig)
    # Unknown grant, correctly signed.
    nonce, deadline, sig = sign_revoke(chain, patient, patient.address, 10**6)
    with reverts("UnknownGrant", grantId=10**6):
        relayer.revoke_by_sig(patient.address, 10**6, nonce, deadline, sig)
    # Not a relayer.
    nonce, deadline, sig = sign_revoke(chain, patient, patient.address, gid)
    for account in (chain.auditor, chain.outsider(1)):
        with reverts("MissingRole", account=account.address, requiredRoles=int(Role.RELAYER)):
            chain.as_(account).consent.revoke_by_sig(patient.address, gid, nonce, deadline, sig)
    # A Grant signature is not a Revoke signature.
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    nonce, deadline, sig = sign_grant(chain, patient, patient.address, t)
    with reverts("InvalidSignature", patient=patient.address):
        relayer.revoke_by_sig(patient.address, gid, nonce, deadline, sig)

    c = chain.read.consent
    assert c.get_grant(gid).revoked is False
    assert c.nonces(patient.address) == 0

    # Already revoked, with a fresh valid signature.
    chain.as_(patient).consent.revoke(gid)
    nonce, deadline, sig = sign_revoke(chain, patient, patient.address, gid)
    with reverts("GrantAlreadyRevoked", grantId=gid):
        relayer.revoke_by_sig(patient.address, gid, nonce, deadline, sig)


# ---------------------------------------------------------------------------------------------- EIP-712 schema


def test_typed_data_matches_contract_domain_and_recovers_patient(chain, patient, grantee):
    address = chain.manifest.address("ConsentRegistry")
    chain_id = chain.rpc.chain_id()
    expected = keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak(text=CONSENT_DOMAIN_NAME),
                keccak(text="1"),
                chain_id,
                address,
            ],
        )
    )
    assert chain.read.consent.domain_separator() == expected

    dom = consent_domain(chain)
    t = terms(grantee, valid_until=chain.timestamp() + DAY)
    typed = grant_typed_data(dom, patient.address, t, 0, 123)
    assert bytes(encode_typed_data(full_message=typed).header) == expected
    sig = sign_typed_data(patient, typed)
    assert len(sig) == 65
    assert recover_signer(typed, sig) == patient.address

    typed = revoke_typed_data(dom, patient.address, 42, 3, 456)
    assert bytes(encode_typed_data(full_message=typed).header) == expected
    assert recover_signer(typed, sign_typed_data(patient, typed)) == patient.address


def test_typed_data_struct_hash_matches_contract_typehash(chain, patient, grantee):
    """The Python Grant schema hashes exactly as the contract's abi.encode(_GRANT_TYPEHASH, ...)."""
    t = terms(grantee, classes=LAB_AND_IMAGING, purpose=Purpose.REFERRAL, valid_from=11, valid_until=22)
    typed = grant_typed_data(consent_domain(chain), patient.address, t, 5, 99)
    typehash = keccak(
        text="Grant(address patient,address grantee,uint256 classes,uint8 purpose,uint64 validFrom,"
        "uint64 validUntil,uint256 nonce,uint256 deadline)"
    )
    struct_hash = keccak(
        abi_encode(
            ["bytes32", "address", "address", "uint256", "uint8", "uint64", "uint64", "uint256", "uint256"],
            [typehash, patient.address, grantee, LAB_AND_IMAGING, 2, 11, 22, 5, 99],
        )
    )
    assert bytes(encode_typed_data(full_message=typed).body) == struct_hash


# ---------------------------------------------------------------------------------------------- break-glass


def test_break_glass_open_and_expire(chain, patient):
    er = chain.as_(chain.hospital_a).consent
    bid = er.open_break_glass(patient.address, REASON, 3600)
    receipt = last_receipt(chain)
    opened_at = block_time(chain, receipt.block_number)
    [ev] = chain.read.consent.events(receipt)
    assert ev.name == "BreakGlassOpened"
    assert ev.args == {
        "breakGlassId": bid,
        "patient": patient.address,
        "accessor": chain.hospital_a.address,
        "reasonHash": REASON,
        "expiresAt": opened_at + 3600,
    }
    c = chain.read.consent
    assert c.active_break_glass(patient.address, chain.hospital_a.address) == (bid, opened_at + 3600)
    assert c.active_break_glass(patient.address, chain.hospital_b.address) == (0, 0)
    bg = c.get_break_glass(bid)
    assert (bg.id, bg.patient, bg.accessor, bg.opened_at, bg.expires_at, bg.reason_hash) == (
        bid,
        patient.address,
        chain.hospital_a.address,
        opened_at,
        opened_at + 3600,
        REASON,
    )

    with reverts("BreakGlassAlreadyOpen", breakGlassId=bid):
        er.open_break_glass(patient.address, REASON, 60)
    # Another EMERGENCY member, or the same one on another patient, has its own window.
    other_bid = chain.as_(chain.hospital_b).consent.open_break_glass(patient.address, REASON, 60)
    assert other_bid == bid + 1

    chain.advance(3601)
    assert c.active_break_glass(patient.address, chain.hospital_a.address) == (0, 0)
    with reverts("BreakGlassNotOpen", breakGlassId=bid):
        er.close_break_glass(bid)
    again = er.open_break_glass(patient.address, REASON, 24 * 60 * 60)
    assert again > other_bid
    assert c.active_break_glass(patient.address, chain.hospital_a.address)[0] == again


@pytest.mark.parametrize(
    ("reason", "duration"),
    [(REASON, 0), (REASON, 24 * 60 * 60 + 1), (b"\x00" * 32, 3600)],
    ids=["zero_duration", "above_24h", "zero_reason"],
)
def test_break_glass_invalid(chain, patient, reason, duration):
    with reverts("InvalidBreakGlass"):
        chain.as_(chain.hospital_a).consent.open_break_glass(patient.address, reason, duration)


def test_break_glass_zero_patient_invalid(chain):
    with reverts("InvalidBreakGlass"):
        chain.as_(chain.hospital_a).consent.open_break_glass("0x" + "00" * 20, REASON, 3600)


@pytest.mark.parametrize("who", ["cdc", "auditor", "outsider"])
def test_break_glass_needs_emergency_role(chain, patient, who):
    account = {"cdc": chain.cdc, "auditor": chain.auditor, "outsider": chain.outsider(2)}[who]
    with reverts("MissingRole", account=account.address, requiredRoles=int(Role.EMERGENCY)):
        chain.as_(account).consent.open_break_glass(patient.address, REASON, 3600)


def test_close_break_glass(chain, patient):
    er = chain.as_(chain.hospital_a).consent
    bid = er.open_break_glass(patient.address, REASON, 3600)

    with reverts("BreakGlassNotOpen", breakGlassId=bid):
        chain.as_(chain.hospital_b).consent.close_break_glass(bid)  # another EMERGENCY member
    with reverts("BreakGlassNotOpen", breakGlassId=bid):
        chain.as_(patient).consent.close_break_glass(bid)
    with reverts("BreakGlassNotOpen", breakGlassId=bid + 100):
        er.close_break_glass(bid + 100)  # no such window

    receipt = er.close_break_glass(bid)
    [ev] = chain.read.consent.events(receipt)
    assert ev.name == "BreakGlassClosed"
    assert ev.args == {"breakGlassId": bid, "patient": patient.address, "accessor": chain.hospital_a.address}
    c = chain.read.consent
    assert c.active_break_glass(patient.address, chain.hospital_a.address) == (0, 0)
    assert c.get_break_glass(bid).expires_at < block_time(chain, receipt.block_number)

    with reverts("BreakGlassNotOpen", breakGlassId=bid):
        er.close_break_glass(bid)
    # A closed window does not block a new one.
    again = er.open_break_glass(patient.address, REASON, 60)
    assert c.active_break_glass(patient.address, chain.hospital_a.address)[0] == again
