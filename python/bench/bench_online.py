"""In-process `get_online_features`: Quiver's Python package against Feast 0.67's SDK.

Side by side in one run, on the same generated data (10k users × 50 features, 3 snapshots
each): Quiver with its embedded online store, Quiver with Redis, and Feast with Redis (the
same private `redis-server`), each materialized by its own SDK. Cases: 1 entity row × 50
features and 100 rows × 50 features, each call `get_online_features(...).to_dict()` (the
call alone with `--no-to-dict`). Reports requests/s, p50/p99 latency and Quiver/Feast ratios,
after checking that the three give the same answers.

    python python/bench/bench_online.py [--quick] [--seconds S] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import _common as c

CASES = {"1x50": 1, "100x50": 100}
CHECK_REQUESTS = 20


def _normalized(d: dict) -> dict:
    return {k: list(v) for k, v in sorted(d.items())}


def _check_same(stores: dict, refs: list[str], requests: list[list[dict]]) -> list[str]:
    """The stores' answers to the same requests, compared (columns in any order: Feast orders
    a request's features by its own grouping). Returns the differences found."""
    problems = []
    for rows in requests:
        answers = {
            name: store.get_online_features(features=refs, entity_rows=rows).to_dict()
            for name, store in stores.items()
        }
        reference_name, reference = next(iter(answers.items()))
        for name, answer in answers.items():
            if name == reference_name:
                continue
            if _normalized(answer) == _normalized(reference):
                continue
            differing = [
                k for k in sorted(set(answer) | set(reference)) if answer.get(k) != reference.get(k)
            ]
            first = differing[0]
            problems.append(
                f"{name} vs {reference_name}: columns {differing[:5]} differ; `{first}`: "
                f"{str(answer.get(first, '<absent>'))[:100]} vs "
                f"{str(reference.get(first, '<absent>'))[:100]}"
            )
        if next(iter(answers["quiver-embedded"])) != "user_id":
            problems.append("quiver: join key is not the first column")
    return problems


def _caller(store, refs: list[str], requests: list[list[dict]], to_dict: bool):
    """One timed call: request `i` (round robin) of `requests`, converted with `to_dict()`
    unless `to_dict` is false."""
    if to_dict:
        return lambda i: store.get_online_features(
            features=refs, entity_rows=requests[i % len(requests)]
        ).to_dict()
    return lambda i: store.get_online_features(
        features=refs, entity_rows=requests[i % len(requests)]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per case, 1 round")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured time per case")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per case")
    parser.add_argument("--no-to-dict", action="store_true", help="time the call alone")
    parser.add_argument("--workdir", help="keep projects here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.warmup = 1.0, 1, 0.3

    import feast

    import quiver

    print(f"quiver {getattr(quiver, '__version__', '?')} ({quiver.__file__})")
    print(f"feast {feast.__version__}, python {sys.version.split()[0]}, {c.machine_line()}")
    refs = c.feature_refs(c.feature_names())
    now = c.utc_now()
    results: dict = {"cases": {}, "materialize_s": {}}

    with c.workdir(args.workdir, args.keep) as root, c.redis_server(root / "redis") as port:
        data = root / "data" / "features.parquet"
        rows = c.write_features(data, now)
        print(
            f"data: {rows} rows ({c.N_ENTITIES} users × {c.SNAPSHOTS}), "
            f"{c.N_FEATURES} features; redis on 127.0.0.1:{port}"
        )
        redis_url = f"redis://127.0.0.1:{port}/0"

        stores = {}
        for name, online in [
            ("quiver-embedded", None),
            ("quiver-redis", {"type": "redis", "url": redis_url}),
        ]:
            project = c.write_quiver_project(root / name, data, online)
            store = quiver.FeatureStore(str(project))
            store.apply()
            t0 = time.perf_counter()
            store.materialize()
            results["materialize_s"][name] = time.perf_counter() - t0
            stores[name] = store

        fs = c.write_feast_repo(
            root / "feast-redis",
            {"type": "redis", "connection_string": f"127.0.0.1:{port}"},
        )
        fs.apply(c.feast_definitions(data))
        t0 = time.perf_counter()
        fs.materialize(
            start_date=now - c.timedelta(days=365), end_date=now + c.timedelta(minutes=1)
        )
        results["materialize_s"]["feast-redis"] = time.perf_counter() - t0
        stores["feast-redis"] = fs
        for name, secs in results["materialize_s"].items():
            print(f"materialize {name}: {secs:.2f} s")

        rng = random.Random(c.SEED)
        check = [
            [{"user_id": rng.randint(1, c.N_ENTITIES)} for _ in range(n)]
            + [{"user_id": 10 * c.N_ENTITIES + 1}]
            for n in (1, 100)
            for _ in range(CHECK_REQUESTS // 2)
        ]
        problems = _check_same(stores, refs, check)
        results["same_answers"] = not problems
        print("answers identical across stores:", "yes" if not problems else "NO")
        for p in problems[:10]:
            print("  ", p)

        for case, n_rows in CASES.items():
            requests = [
                [{"user_id": rng.randint(1, c.N_ENTITIES)} for _ in range(n_rows)]
                for _ in range(1000)
            ]

            timings = c.interleaved(
                {
                    name: _caller(store, refs, requests, not args.no_to_dict)
                    for name, store in stores.items()
                },
                args.seconds,
                args.rounds,
                args.warmup,
            )
            results["cases"][case] = {
                name: {
                    "calls": t.calls,
                    "rps": t.rate,
                    "p50_ms": t.percentile_ms(50),
                    "p99_ms": t.percentile_ms(99),
                }
                for name, t in timings.items()
            }

    what = "get_online_features()" if args.no_to_dict else "get_online_features().to_dict()"
    print(f"\n{what}, {args.seconds:g} s per case in {args.rounds} interleaved round(s)\n")
    print("| case | store | calls | req/s | p50 ms | p99 ms | req/s vs Feast | p50 vs Feast |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for case, per_store in results["cases"].items():
        feast_fig = per_store["feast-redis"]
        for name, fig in per_store.items():
            ratio = fig["rps"] / feast_fig["rps"]
            p50_ratio = feast_fig["p50_ms"] / fig["p50_ms"]
            print(
                f"| {case} | {name} | {fig['calls']} | {fig['rps']:,.0f} | "
                f"{fig['p50_ms']:.3f} | {fig['p99_ms']:.3f} | {ratio:.2f}× | {p50_ratio:.2f}× |"
            )
    print("\n(ratios > 1: Quiver faster; req/s ratio = Quiver/Feast, p50 ratio = Feast/Quiver)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if results["same_answers"] else 1


if __name__ == "__main__":
    sys.exit(main())
