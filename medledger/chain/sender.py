"""Signing, sending and confirming transactions from one local account.

The sender owns its account's nonces: it reads the pending nonce once, then allocates locally so many
transactions can be in flight ("send all, then wait"); any send failure that can leave a gap or a clash
re-reads the nonce from the node. Transactions are signed before they are broadcast, so a caller that must
never lose a write (the node's anchorer) can persist the signed bytes first and re-broadcast them after a
crash: re-broadcasting the same signed transaction is idempotent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from medledger.addresses import Address
from medledger.chain.abi import ContractAbi, ContractRevert
from medledger.chain.rpc import JsonRpcClient, RpcError
from medledger.errors import MedLedgerError

log = logging.getLogger(__name__)


class TransactionFailed(MedLedgerError):
    """A transaction could not be sent or was mined with status 0."""

    code = "transaction_failed"


class TransactionTimeout(MedLedgerError):
    """No receipt arrived in time; the transaction may still be mined later."""

    code = "transaction_timeout"


@dataclass(frozen=True)
class Receipt:
    tx_hash: str
    block_number: int
    block_hash: str
    status: int
    gas_used: int
    logs: list[dict[str, Any]]
    contract_address: str | None = None

    @classmethod
    def from_rpc(cls, r: dict[str, Any]) -> Receipt:
        return cls(
            tx_hash=r["transactionHash"],
            block_number=int(r["blockNumber"], 16),
            block_hash=r["blockHash"],
            status=int(r["status"], 16),
            gas_used=int(r["gasUsed"], 16),
            logs=r["logs"],
            contract_address=r.get("contractAddress"),
        )


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction ready to broadcast; ``raw`` can be stored and re-sent verbatim."""

    tx_hash: str
    raw: bytes
    nonce: int
    to: str
    gas: int


def revert_data(err: RpcError) -> bytes | None:
    """Extract revert data from an eth_call/eth_estimateGas error (Anvil, Geth and Besu nest it differently)."""
    data = err.data
    if isinstance(data, dict):
        data = data.get("data") or data.get("result")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    return None


class TransactionSender:
    """Sends transactions from ``account`` with managed nonces, estimated gas and receipt waiting.

    Args:
        rpc: The chain connection.
        account: The signing account (its private key never leaves this process).
        gas_headroom: Multiplier on estimated gas, since state can change between estimate and inclusion.
        priority_fee_wei: Tip per gas; private QBFT chains run with zero base fee and zero tip.
        receipt_timeout: Seconds :meth:`wait` waits before raising :class:`TransactionTimeout`.
    """

    #: Receipts requested per polling round.
    RECEIPT_POLL_CHUNK = 500
    #: Seconds without a new receipt after which a dev chain's pool is checked for missed transactions.
    STALL_SECONDS = 2.0

    def __init__(
        self,
        rpc: JsonRpcClient,
        account: LocalAccount,
        *,
        gas_headroom: float = 1.25,
        priority_fee_wei: int = 0,
        receipt_timeout: float = 120.0,
    ) -> None:
        self.rpc = rpc
        self.account = account
        self.address = Address(account.address, "account address")
        self.chain_id = rpc.chain_id()
        self._gas_headroom = gas_headroom
        self._priority_fee = priority_fee_wei
        self._receipt_timeout = receipt_timeout
        self._lock = threading.Lock()
        self._next_nonce: int | None = None
        self._fee_cache: tuple[float, dict[str, int]] | None = None
        self._dev_chain: bool | None = None  # Anvil? (see _unstick_dev_chain)

    # ------------------------------------------------------------------ reads

    def call(self, to: str, data: bytes, *, abi: ContractAbi | None = None, block: str | int = "latest") -> bytes:
        """``eth_call`` as this account; a revert raises :class:`ContractRevert` decoded with ``abi``."""
        tag = hex(block) if isinstance(block, int) else block
        try:
            result = self.rpc.call("eth_call", [{"from": self.address, "to": to, "data": "0x" + data.hex()}, tag])
        except RpcError as err:
            raise self._revert_or(err, abi) from None
        return bytes.fromhex(result[2:])

    def estimate_gas(self, to: str | None, data: bytes, *, abi: ContractAbi | None = None) -> int:
        tx: dict[str, Any] = {"from": self.address, "data": "0x" + data.hex()}
        if to is not None:
            tx["to"] = to
        try:
            return int(self.rpc.call("eth_estimateGas", [tx]), 16)
        except RpcError as err:
            raise self._revert_or(err, abi) from None

    # ------------------------------------------------------------------ writes

    def sign(self, to: str | None, data: bytes, *, gas: int | None = None, abi: ContractAbi | None = None) -> SignedTx:
        """Estimate (unless ``gas`` is given), allocate a nonce and sign. A call that would revert raises here,
        before any nonce is used."""
        if gas is None:
            gas = int(self.estimate_gas(to, data, abi=abi) * self._gas_headroom)
        with self._lock:
            nonce = self._allocate_nonce()
        tx: dict[str, Any] = {
            "chainId": self.chain_id,
            "nonce": nonce,
            "gas": gas,
            "value": 0,
            "data": data,
            **self._fees(),
        }
        if to is not None:
            tx["to"] = to
        signed = self.account.sign_transaction(tx)
        return SignedTx(
            "0x" + signed.hash.hex().removeprefix("0x"), bytes(signed.raw_transaction), nonce, to or "", gas
        )

    def broadcast(self, tx: SignedTx) -> str:
        """Send a signed transaction; re-sending one the node already has is not an error."""
        try:
            return str(self.rpc.call("eth_sendRawTransaction", ["0x" + tx.raw.hex()]))
        except RpcError as err:
            msg = err.rpc_message.lower()
            if "already known" in msg or "known transaction" in msg or "already imported" in msg:
                return tx.tx_hash
            # The nonce may now be wrong (consumed elsewhere or never used): re-read it for the next send.
            self.resync_nonce()
            raise TransactionFailed(f"node refused transaction {tx.tx_hash}: {err.rpc_message}") from err

    def send_write_ahead(self, to: str, data: bytes, *, gas: int, persist: Callable[[SignedTx], None]) -> SignedTx:
        """Sign, let ``persist`` store the signed transaction durably, then broadcast: the protocol of callers
        that must never lose or duplicate a write (a crash after ``persist`` re-sends the same bytes).

        If signing or ``persist`` fails the allocated nonce is forgotten (no transaction with it will be
        sent). A refused broadcast is only logged: the stored transaction is reconciled by the caller's next
        tracking step. :class:`RpcUnavailable` propagates.
        """
        try:
            signed = self.sign(to, data, gas=gas)
            persist(signed)
        except BaseException:
            self.resync_nonce()
            raise
        try:
            self.broadcast(signed)
        except TransactionFailed as exc:
            log.warning("broadcast of %s refused (%s); reconciled on the next step", signed.tx_hash, exc.message)
        return signed

    def send(self, to: str | None, data: bytes, *, gas: int | None = None, abi: ContractAbi | None = None) -> str:
        """Sign and broadcast; returns the transaction hash without waiting."""
        tx = self.sign(to, data, gas=gas, abi=abi)
        try:
            return self.broadcast(tx)
        except TransactionFailed:
            raise
        except Exception:
            self.resync_nonce()
            raise

    def transact(
        self, to: str | None, data: bytes, *, gas: int | None = None, abi: ContractAbi | None = None
    ) -> Receipt:
        """Send, wait for the receipt and raise :class:`ContractRevert` if it was mined as failed."""
        tx_hash = self.send(to, data, gas=gas, abi=abi)
        receipt = self.wait([tx_hash])[0]
        if receipt.status != 1:
            raise self._explain_failure(to, data, receipt, abi)
        return receipt

    def wait(self, tx_hashes: Sequence[str], *, timeout: float | None = None, confirmations: int = 1) -> list[Receipt]:
        """Wait for receipts of all ``tx_hashes`` (batched polling) and ``confirmations`` blocks on each."""
        deadline = time.monotonic() + (timeout if timeout is not None else self._receipt_timeout)
        found: dict[str, Receipt] = {}
        pending = list(dict.fromkeys(tx_hashes))
        interval = 0.02
        progress_at = time.monotonic()
        while True:
            if pending:
                # Poll the oldest submissions first, a bounded chunk per round: transactions of one sender are
                # mined in nonce order, and asking for thousands of receipts at once only competes with the
                # node for CPU while it is still mining.
                chunk = pending[: self.RECEIPT_POLL_CHUNK]
                results = self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in chunk])
                progressed = False
                for h, r in zip(chunk, results, strict=True):
                    if r is not None:
                        found[h] = Receipt.from_rpc(r)
                        progressed = True
                pending = [h for h in pending if h not in found]
                if progressed:
                    interval = 0.02
                    progress_at = time.monotonic()
                    continue
                if time.monotonic() - progress_at > self.STALL_SECONDS and self._unstick_dev_chain():
                    progress_at = time.monotonic()
                    continue
            if not pending:
                if confirmations <= 1:
                    break
                head = self.rpc.block_number()
                if all(head - r.block_number + 1 >= confirmations for r in found.values()):
                    break
            if time.monotonic() > deadline:
                raise TransactionTimeout(f"no receipt within timeout for {len(pending) or len(found)} transaction(s)")
            time.sleep(interval)
            interval = min(interval * 1.5, 1.0)
        return [found[h] for h in tx_hashes]

    def _unstick_dev_chain(self) -> bool:
        """Anvil's automine can leave a ready transaction in its pool when transactions arrive while it is
        mining (foundry-rs/foundry#10122): after ``STALL_SECONDS`` without a receipt, on Anvil only, mine one
        block if its pool holds pending transactions. True if it did."""
        if self._dev_chain is None:
            try:
                self._dev_chain = str(self.rpc.call("web3_clientVersion")).lower().startswith("anvil")
            except RpcError:
                self._dev_chain = False
        if not self._dev_chain or int(self.rpc.call("txpool_status")["pending"], 16) == 0:
            return False
        log.warning("dev chain left ready transactions unmined; mining a block (foundry-rs/foundry#10122)")
        self.rpc.call("evm_mine")
        return True

    def resync_nonce(self) -> None:
        """Forget the local nonce; the next send reads the pending nonce from the node."""
        with self._lock:
            self._next_nonce = None

    # ------------------------------------------------------------------ internals

    def _allocate_nonce(self) -> int:
        if self._next_nonce is None:
            self._next_nonce = int(self.rpc.call("eth_getTransactionCount", [self.address, "pending"]), 16)
        nonce = self._next_nonce
        self._next_nonce += 1
        return nonce

    def _fees(self) -> dict[str, int]:
        # One block lookup per second at most: fee data changes per block, sending does not need fresher.
        now = time.monotonic()
        if self._fee_cache and now - self._fee_cache[0] < 1.0:
            return self._fee_cache[1]
        block = self.rpc.call("eth_getBlockByNumber", ["latest", False])
        base = block.get("baseFeePerGas")
        if base is None:
            fees = {"gasPrice": int(self.rpc.call("eth_gasPrice"), 16)}
        else:
            fees = {"maxFeePerGas": 2 * int(base, 16) + self._priority_fee, "maxPriorityFeePerGas": self._priority_fee}
        self._fee_cache = (now, fees)
        return fees

    def _revert_or(self, err: RpcError, abi: ContractAbi | None) -> MedLedgerError:
        data = revert_data(err)
        if data is not None and abi is not None and len(data) >= 4:
            return abi.decode_revert(data)
        if data is not None and len(data) >= 4:
            return ContractRevert("UnknownError", {"data": "0x" + data.hex()}, data)
        if "revert" in err.rpc_message.lower():
            return ContractRevert("Reverted", {"message": err.rpc_message})
        return err

    def _explain_failure(
        self, to: str | None, data: bytes, receipt: Receipt, abi: ContractAbi | None
    ) -> MedLedgerError:
        # Replaying at the parent block reproduces the revert reason for most failures; a node that no longer
        # holds that state (pruned history, non-archive Besu) gets the replay at the latest block instead.
        for block in (receipt.block_number - 1, "latest"):
            try:
                self.call(to or "", data, abi=abi, block=block)
            except ContractRevert as revert:
                return revert
            except MedLedgerError:
                continue
            break
        return TransactionFailed(f"transaction {receipt.tx_hash} failed in block {receipt.block_number}")
