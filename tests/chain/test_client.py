"""The chain client against a real Anvil: batching, retries, nonces, fees, revert decoding, receipts."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from medledger.chain.abi import ContractRevert, load_artifact
from medledger.chain.anvil import AnvilProcess, AnvilSettings, free_port
from medledger.chain.rpc import JsonRpcClient, RpcError, RpcUnavailable
from medledger.chain.sender import TransactionFailed, TransactionTimeout
from medledger.chain.types import RecordAnchor
from medledger.vocabulary import RecordClass


def test_batch_returns_results_in_call_order_and_errors_in_place(chain):
    calls = [("eth_chainId", []), ("eth_blockNumber", []), ("no_such_method", []), ("eth_chainId", [])]
    results = chain.rpc.batch_results(calls)
    assert int(results[0], 16) == chain.settings.chain_id == int(results[3], 16)
    assert int(results[1], 16) == chain.rpc.block_number()
    assert isinstance(results[2], RpcError)
    with pytest.raises(RpcError):
        chain.rpc.batch(calls)


def test_unreachable_node_raises_after_bounded_retries():
    rpc = JsonRpcClient(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01)
    with pytest.raises(RpcUnavailable):
        rpc.call("eth_chainId")


def test_client_retries_until_a_late_starting_node_answers():
    port = free_port()
    anvil = AnvilProcess(AnvilSettings.load(port=port))
    starter = threading.Timer(0.3, anvil.start)
    starter.start()
    try:
        rpc = JsonRpcClient(anvil.url, retries=8, backoff=0.1)
        assert rpc.chain_id() == 31337
    finally:
        starter.join()
        anvil.stop()


def _anchor_data(patient: str) -> bytes:
    abi = load_artifact("RecordRegistry").abi
    rec = RecordAnchor(secrets.token_bytes(32), patient, secrets.token_bytes(32), RecordClass.LAB)
    return abi.encode_call("anchorRecords", [rec.as_tuple()])


def test_many_transactions_in_flight_get_consecutive_nonces(chain):
    sender = chain.sender(chain.hospital_a)
    start = int(chain.rpc.call("eth_getTransactionCount", [sender.address, "pending"]), 16)
    to = chain.manifest.address("RecordRegistry")
    hashes = [sender.send(to, _anchor_data(chain.new_patient().address)) for _ in range(20)]
    receipts = sender.wait(hashes)
    assert all(r.status == 1 for r in receipts)
    assert int(chain.rpc.call("eth_getTransactionCount", [sender.address, "latest"]), 16) == start + 20


def test_a_second_sender_for_the_same_account_recovers_from_a_stale_nonce(chain):
    to = chain.manifest.address("RecordRegistry")
    first, second = chain.sender(chain.hospital_a), chain.sender(chain.hospital_a)
    first.wait([first.send(to, _anchor_data(chain.new_patient().address))])
    second._next_nonce = 0  # stale view, as after another process used the account
    with pytest.raises(TransactionFailed, match="nonce"):
        second.send(to, _anchor_data(chain.new_patient().address))
    # ... and the next send re-reads the nonce and goes through
    receipt = second.wait([second.send(to, _anchor_data(chain.new_patient().address))])[0]
    assert receipt.status == 1


def test_rebroadcasting_the_same_signed_transaction_is_idempotent(chain):
    rpc = chain.rpc
    rpc.call("evm_setAutomine", [False])
    try:
        sender = chain.sender(chain.hospital_a)
        tx = sender.sign(chain.manifest.address("RecordRegistry"), _anchor_data(chain.new_patient().address))
        assert sender.broadcast(tx) == tx.tx_hash
        assert sender.broadcast(tx) == tx.tx_hash  # "already known" is success
        rpc.call("evm_mine", [])
        assert sender.wait([tx.tx_hash])[0].status == 1
    finally:
        rpc.call("evm_setAutomine", [True])


def test_revert_is_decoded_at_estimation_and_no_nonce_is_used(chain):
    sender = chain.sender(chain.auditor)
    before = int(chain.rpc.call("eth_getTransactionCount", [sender.address, "pending"]), 16)
    abi = load_artifact("RecordRegistry").abi
    with pytest.raises(ContractRevert) as exc:
        sender.send(chain.manifest.address("RecordRegistry"), _anchor_data(chain.new_patient().address), abi=abi)
    assert exc.value.error == "MissingRole"
    assert exc.value.code == "contract_reverted"
    assert int(chain.rpc.call("eth_getTransactionCount", [sender.address, "pending"]), 16) == before


def test_failed_mined_transaction_is_explained(chain):
    # A fixed gas limit skips estimation, so the revert happens on chain and is replayed for its reason.
    sender = chain.sender(chain.auditor)
    abi = load_artifact("RecordRegistry").abi
    with pytest.raises(ContractRevert) as exc:
        sender.transact(
            chain.manifest.address("RecordRegistry"), _anchor_data(chain.new_patient().address), gas=200_000, abi=abi
        )
    assert exc.value.error == "MissingRole"


def test_wait_times_out_for_a_transaction_that_is_not_mined(chain):
    chain.rpc.call("evm_setAutomine", [False])
    try:
        sender = chain.sender(chain.hospital_a)
        h = sender.send(chain.manifest.address("RecordRegistry"), _anchor_data(chain.new_patient().address))
        t0 = time.monotonic()
        with pytest.raises(TransactionTimeout):
            sender.wait([h], timeout=0.3)
        assert time.monotonic() - t0 < 5
    finally:
        chain.rpc.call("evm_setAutomine", [True])
        chain.rpc.call("evm_mine", [])


def test_wait_mines_a_ready_transaction_anvil_left_in_its_pool(chain):
    """Anvil's automine sometimes misses a transaction that arrived while it was mining (foundry#10122); with
    automine off the pool holds one the same way. After STALL_SECONDS without a receipt the sender, seeing
    Anvil, mines a block instead of waiting out its timeout."""
    chain.rpc.call("evm_setAutomine", [False])
    try:
        sender = chain.sender(chain.hospital_a)
        h = sender.send(chain.manifest.address("RecordRegistry"), _anchor_data(chain.new_patient().address))
        t0 = time.monotonic()
        receipt = sender.wait([h], timeout=30)[0]
        assert receipt.status == 1
        assert sender.STALL_SECONDS <= time.monotonic() - t0 < sender.STALL_SECONDS + 5
    finally:
        chain.rpc.call("evm_setAutomine", [True])


def test_wait_honours_confirmations(chain):
    sender = chain.sender(chain.hospital_a)
    h = sender.send(chain.manifest.address("RecordRegistry"), _anchor_data(chain.new_patient().address))
    mined = sender.wait([h])[0]
    stop = threading.Event()

    def miner() -> None:
        while not stop.is_set():
            chain.rpc.call("evm_mine", [])
            time.sleep(0.05)

    t = threading.Thread(target=miner)
    t.start()
    try:
        confirmed = sender.wait([h], confirmations=3, timeout=10)[0]
    finally:
        stop.set()
        t.join()
    assert confirmed.block_number == mined.block_number
    assert chain.rpc.block_number() >= mined.block_number + 2


def test_unreachable_node_errors_do_not_leak_url_credentials():
    rpc = JsonRpcClient(f"http://operator:s3cret-token@127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(RpcUnavailable) as exc:
        rpc.call("eth_chainId")
    assert "s3cret-token" not in str(exc.value)
    assert "***@127.0.0.1" in str(exc.value)
