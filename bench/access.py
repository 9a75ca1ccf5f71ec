"""Consent-checked, logged record access between two nodes on loopback.

usage: python bench/access.py [--records 200] [--decisions 20000] [--requests 6000] [--clients 16]

1. Fresh Anvil with the dev consortium; Hospital A and Hospital B nodes served in this process (SQLite,
   local blob stores), a patient with --records 4 KiB records at A and a treatment grant to B.
2. consent_decisions_per_s: A's consent decider answering "may B read this record now?", from --clients
   threads at once, each decision confirming the chain head (shared eth_blockNumber probe) as in production.
3. fetch_*: --clients concurrent clients in a separate process send signed GET /v1/records/{id}/release
   requests as Hospital B to A over HTTP: signature, membership, consent, durable access journal (fsync'd
   group commit), key re-wrap to B, 4 KiB ciphertext in the reply.
4. revocation_to_denial_s: the patient revokes through B's node; from the revocation's receipt, how long
   until A refuses B (A learns of it only from the chain).

The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from clients.patient import PatientClient  # noqa: E402
from clients.wallet import PatientWallet  # noqa: E402
from medledger.chain.anvil import AnvilProcess, AnvilSettings  # noqa: E402
from medledger.chain.deploy import manifest_path  # noqa: E402
from medledger.chain.devchain import deploy_dev  # noqa: E402
from medledger.chain.rpc import JsonRpcClient  # noqa: E402
from medledger.vocabulary import Purpose, RecordClass  # noqa: E402
from node.db.models import Record, RecordState  # noqa: E402
from node.embedded import EmbeddedNode, provision_node  # noqa: E402

PASSWORD = "bench-password"


def load_worker(key: bytes, urls: list[str], n: int, clients: int, out: mp.Queue) -> None:
    """Runs in its own process: ``clients`` threads, each with a keep-alive connection, ``n`` requests total."""
    import httpx
    from eth_account import Account

    from medledger.auth.httpsig import sign_request

    account = Account.from_key(key)
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    per = n // clients

    def run(i: int) -> None:
        local: list[float] = []
        bad: list[int] = []
        with httpx.Client(timeout=30) as http:
            for j in range(per):
                url = urls[(i * per + j) % len(urls)]
                headers = sign_request(account, "GET", url, b"")
                t = time.perf_counter()
                r = http.get(url, headers=headers)
                local.append(time.perf_counter() - t)
                if r.status_code != 200:
                    bad.append(r.status_code)
        with lock:
            latencies.extend(local)
            errors.extend(bad)

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(run, range(clients)))
    out.put((time.perf_counter() - start, latencies, errors))


def profile_release(a, account, base: str, ids: list[str]) -> None:
    """pyinstrument over the server-side work of 1,000 releases (verification, decision, journal, re-wrap),
    without HTTP, to see where a release spends its time."""
    from pyinstrument import Profiler

    from medledger.auth.httpsig import sign_request

    reqs = []
    for i in range(1000):
        rid = ids[i % len(ids)]
        path = f"/v1/records/{rid}/release"
        reqs.append((path, bytes.fromhex(rid[2:]), sign_request(account, "GET", f"{base}{path}?purpose=treatment")))
    prof = Profiler(interval=0.0005)
    t = time.perf_counter()
    prof.start()
    for path, rid, headers in reqs:
        requester, _ = a.identities.institution("GET", path, "purpose=treatment", headers, b"")
        a.releases.release(requester, rid, Purpose.TREATMENT)
    prof.stop()
    print(f"{1000 / (time.perf_counter() - t):,.0f} releases/s in one thread", file=sys.stderr)
    print(prof.output_text(unicode=False, color=False, show_all=False), file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200)
    ap.add_argument("--decisions", type=int, default=20_000)
    ap.add_argument("--requests", type=int, default=6_000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--profile", action="store_true", help="profile the release path in process and exit")
    ap.add_argument("--baseline", action="store_true", help="fetch /healthz instead: the HTTP stack's ceiling")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="medledger-bench-access-"))
    with AnvilProcess(AnvilSettings.load(port=0)) as anvil:
        rpc = JsonRpcClient(anvil.url)
        dev = deploy_dev(rpc, anvil.settings, directory=tmp / "deployments")
        dev.manifest.save(manifest_path(dev.manifest.chain_id, tmp / "deployments"))
        nodes = {}
        for name in ("Hospital A", "Hospital B"):
            d = tmp / name.replace(" ", "-")
            provision_node(
                d, name, password=PASSWORD, rpc_url=anvil.url, deployments_dir=str(tmp / "deployments"),
                private_key=bytes(dev.founders[name].key), scrypt_n=2**12,
            )  # fmt: skip
            nodes[name] = EmbeddedNode(d, PASSWORD).start()
        a, b = nodes["Hospital A"].services, nodes["Hospital B"].services
        assert a is not None and b is not None
        try:
            patient = PatientClient(PatientWallet.create(), nodes["Hospital B"].url)
            patient.register_key()
            a.directory.link("MRN-BENCH", "HOSP-A", patient.wallet.address, patient.wallet.encryption_public_key)
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.node.conftest import fhir_record

            results = a.pipeline.ingest(
                [fhir_record(i, mrn="MRN-BENCH", authority="HOSP-A", size=4096) for i in range(args.records)]
            )
            ids = [r.as_api()["record_id"] for r in results]
            while True:
                with a.sessions() as s:
                    n = sum(1 for i in ids if s.get(Record, bytes.fromhex(i[2:])).status == RecordState.CONFIRMED)
                if n == len(ids):
                    break
                time.sleep(0.1)
            grant = patient.grant(b.address, [RecordClass.LAB], Purpose.TREATMENT)
            a.ledger.sync()

            if args.profile:
                profile_release(a, dev.founders["Hospital B"], nodes["Hospital A"].url, ids)
                return

            # -- consent decisions
            decider, pat, acc = a.decider, patient.wallet.address, b.address
            per = args.decisions // args.clients

            def decide_many(_: int) -> None:
                for _ in range(per):
                    decider.decide(pat, acc, int(RecordClass.LAB), Purpose.TREATMENT)

            t = time.perf_counter()
            with ThreadPoolExecutor(args.clients) as pool:
                list(pool.map(decide_many, range(args.clients)))
            decisions_per_s = per * args.clients / (time.perf_counter() - t)

            # -- fetches over HTTP from another process
            urls = [f"{nodes['Hospital A'].url}/v1/records/{i}/release?purpose=treatment" for i in ids]
            if args.baseline:
                urls = [f"{nodes['Hospital A'].url}/healthz"]
            ctx = mp.get_context("spawn")
            q: mp.Queue = ctx.Queue()
            key = bytes(dev.founders["Hospital B"].key)
            warm = ctx.Process(target=load_worker, args=(key, urls, 200, 4, q))
            warm.start()
            q.get()
            warm.join()
            # Clients in several processes: one Python process cannot sign and send 16 clients' requests fast
            # enough on its own (the GIL would make the load generator the bottleneck).
            procs = [
                ctx.Process(target=load_worker, args=(key, urls, args.requests // 4, args.clients // 4, q))
                for _ in range(4)
            ]
            for p in procs:
                p.start()
            parts = [q.get() for _ in procs]
            for p in procs:
                p.join()
            elapsed = max(x[0] for x in parts)
            latencies = [v for x in parts for v in x[1]]
            errors = [v for x in parts for v in x[2]]
            latencies.sort()
            fetch_rps = len(latencies) / elapsed
            p50 = latencies[len(latencies) // 2] * 1000
            p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000

            # -- revocation to denial (A learns from the chain only)
            import httpx

            from medledger.auth.httpsig import sign_request

            revoked = patient.revoke(grant["grant_id"])
            t_revoked = time.perf_counter()
            denied_after = None
            with httpx.Client() as http:
                while time.perf_counter() - t_revoked < 10:
                    r = http.get(urls[0], headers=sign_request(dev.founders["Hospital B"], "GET", urls[0], b""))
                    if r.status_code == 403:
                        denied_after = time.perf_counter() - t_revoked
                        break
            journal_pending = a.access_logger().pending()
            print(
                f"decisions {decisions_per_s:,.0f}/s; fetch {fetch_rps:,.0f} rps p50 {p50:.1f} ms p99 {p99:.1f} ms "
                f"({len(errors)} errors); revocation in block {revoked['block_number']} denied after "
                f"{denied_after}s; access entries not yet on chain at the end: {journal_pending}",
                file=sys.stderr,
            )
            print(
                json.dumps(
                    {
                        "bench": "access",
                        "consent_decisions_per_s": round(decisions_per_s),
                        "fetch_rps": round(fetch_rps, 1),
                        "fetch_p50_ms": round(p50, 2),
                        "fetch_p99_ms": round(p99, 2),
                        "clients": args.clients,
                        "revocation_to_denial_s": round(denied_after, 4) if denied_after is not None else None,
                        "fetch_errors": len(errors),
                        "fetch_mean_ms": round(statistics.fmean(latencies) * 1000, 2),
                    }
                )
            )
            patient.close()
        finally:
            for node in nodes.values():
                node.stop()
            rpc.close()


if __name__ == "__main__":
    main()
