"""Signed-request throughput on one core: sign_request and verify_request (with the in-memory replay cache).

usage: python bench/httpsig.py [--requests 2000] [--rounds 5] [--body 1024]

Each request has a distinct nonce and a ``--body``-byte body; verification runs every check, including the
Content-Digest over the body and the replay-cache claim (a fresh cache per round). ``ecrecover_per_s`` is bare
libsecp256k1 public-key recovery, the floor under any verifier. Rates are the best round and the median round:
on a shared host the best round is the machine's capability, the median what it gave under load.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import coincurve
from eth_account import Account

from medledger.auth.httpsig import MemoryNonceStore, sign_request, verify_request

URL = "https://node-b.medledger.example:8443/v1/records/query?patient=0xabc&limit=10"


def rates(run: Callable[[], None], n: int, rounds: int) -> tuple[int, int]:
    per_round = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        run()
        per_round.append(n / (time.perf_counter() - t0))
    return round(max(per_round)), round(statistics.median(per_round))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--body", type=int, default=1024)
    args = parser.parse_args()
    n = args.requests

    account = Account.from_key(b"\x42" * 32)
    body = os.urandom(args.body)
    now = int(time.time())
    signed: list[dict[str, str]] = []

    def sign_all() -> None:
        signed[:] = [sign_request(account, "POST", URL, body, now=now) for _ in range(n)]

    def verify_all() -> None:
        store = MemoryNonceStore()
        for headers in signed:
            verify_request(
                "POST",
                "/v1/records/query",
                "patient=0xabc&limit=10",
                headers,
                body,
                authority="node-b.medledger.example:8443",
                now=now,
                nonces=store,
            )

    key = coincurve.PrivateKey(b"\x42" * 32)
    digest = b"\x01" * 32
    signature = key.sign_recoverable(digest, hasher=None)

    def recover_all() -> None:
        for _ in range(n):
            coincurve.PublicKey.from_signature_and_message(signature, digest, hasher=None)

    sign_best, sign_median = rates(sign_all, n, args.rounds)
    verify_best, verify_median = rates(verify_all, n, args.rounds)
    recover_best, recover_median = rates(recover_all, n, args.rounds)
    result = {
        "requests": n,
        "rounds": args.rounds,
        "body_bytes": args.body,
        "sign_per_s": sign_best,
        "sign_per_s_median": sign_median,
        "verify_per_s": verify_best,
        "verify_per_s_median": verify_median,
        "verify_us": round(1e6 / verify_best, 1),
        "ecrecover_per_s": recover_best,
        "ecrecover_per_s_median": recover_median,
    }
    print(f"sign:           {sign_best:>7,}/s best, {sign_median:>7,}/s median")
    print(f"verify:         {verify_best:>7,}/s best, {verify_median:>7,}/s median ({result['verify_us']} µs)")
    print(f"bare ecrecover: {recover_best:>7,}/s best, {recover_median:>7,}/s median")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
