"""Point-in-time training sets: Quiver's `get_historical_features` against Feast 0.67's file
(Dask) offline store, on the same Parquet file.

100k entity rows (random users, a few unknown, at random times over the 30 days of history
and 5 days before it) × 10 features (5 float64, 5 int64) of a view with a 30-day ttl over
10k users × 3 snapshots. Each side: `get_historical_features(entity_df, features).to_df()`
(Quiver also `.to_arrow()`), after one small warm-up call; the median of `--repeat` runs.
The two training sets are compared row by row (by a `row_id` column carried through) first;
Feast's Dask store leaves out entity rows whose entity has no feature row in the window (see
`_compare`), which is reported and not counted as a difference.

    python python/bench/bench_historical.py [--quick] [--rows N] [--repeat R] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _common as c


def _compare(quiver_df, feast_df, names: list[str]) -> tuple[list[str], int]:
    """Differences between the two training sets, lined up by `row_id`, and how many entity
    rows Feast left out.

    Feast's Dask store joins every feature row of an entity and then drops the pairs outside
    `[t - ttl, t]`, so an entity row whose entity has feature rows, none of them in its window,
    disappears from Feast's result (an unknown entity keeps its row, with nulls). Quiver keeps
    every entity row, in order; those rows must be all null in Quiver's."""
    import numpy as np

    problems = []
    q = quiver_df.sort_values("row_id").reset_index(drop=True)
    if len(q) != len(quiver_df) or not np.array_equal(q["row_id"].to_numpy(), np.arange(len(q))):
        problems.append("quiver: the rows are not the entity frame's, each once")
    if not quiver_df["row_id"].is_monotonic_increasing:
        problems.append("quiver: rows are not in the entity frame's order")
    dropped = ~q["row_id"].isin(feast_df["row_id"])
    if q.loc[dropped, names].notna().any().any():
        problems.append("rows missing from Feast's result have values in Quiver's")
    q = q[~dropped].reset_index(drop=True)
    f = feast_df.sort_values("row_id").reset_index(drop=True)
    if len(f) != len(q) or not np.array_equal(f["row_id"].to_numpy(), q["row_id"].to_numpy()):
        problems.append("feast: rows not in the entity frame, or repeated")
        return problems, int(dropped.sum())
    for column in ["user_id", *names]:
        if column not in q or column not in f:
            problems.append(
                f"column `{column}` missing (quiver: {column in q}, feast: {column in f})"
            )
            continue
        qv = q[column].astype("float64").to_numpy()
        fv = f[column].astype("float64").to_numpy()
        same = (qv == fv) | (np.isnan(qv) & np.isnan(fv))
        if not same.all():
            i = int(np.argmin(same))
            problems.append(
                f"`{column}`: {int((~same).sum())} rows differ, e.g. row_id {q['row_id'][i]} "
                f"(user {q['user_id'][i]} at {q['event_timestamp'][i]}): "
                f"quiver {qv[i]}, feast {fv[i]}"
            )
    return problems, int(dropped.sum())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k rows, 1 run")
    parser.add_argument("--rows", type=int, default=100_000, help="entity rows")
    parser.add_argument("--features", type=int, default=10, help="features requested")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (median)")
    parser.add_argument("--workdir", help="keep projects here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = 10_000, 1

    import feast

    import quiver

    print(f"quiver {getattr(quiver, '__version__', '?')} ({quiver.__file__})")
    print(f"feast {feast.__version__}, python {sys.version.split()[0]}, {c.machine_line()}")
    names = c.historical_names(args.features)
    refs = c.feature_refs(names)
    now = c.utc_now()

    with c.workdir(args.workdir, args.keep) as root:
        data = root / "data" / "features.parquet"
        c.write_features(data, now)
        entity_df = c.entity_frame(args.rows, now)
        warm_df = entity_df.head(100)

        qs = quiver.FeatureStore(str(c.write_quiver_project(root / "quiver", data)))
        qs.apply()
        fs = c.write_feast_repo(
            root / "feast", {"type": "sqlite", "path": str(root / "feast" / "online.db")}
        )
        fs.apply(c.feast_definitions(data))

        def quiver_df():
            return qs.get_historical_features(entity_df=entity_df.copy(), features=refs).to_df()

        def quiver_arrow():
            return qs.get_historical_features(entity_df=entity_df.copy(), features=refs).to_arrow()

        def feast_df():
            return fs.get_historical_features(entity_df=entity_df.copy(), features=refs).to_df()

        qs.get_historical_features(entity_df=warm_df, features=refs).to_df()
        fs.get_historical_features(entity_df=warm_df, features=refs).to_df()

        problems, dropped = _compare(quiver_df(), feast_df(), names)
        print(
            f"{args.rows} entity rows × {len(names)} features; training sets identical:",
            "yes" if not problems else "NO",
            f"(Feast's result leaves out {dropped} entity rows with no feature row in their"
            " ttl window; Quiver keeps them, all null)",
        )
        for p in problems:
            print("  ", p)

        figures = {}
        for name, fn in [
            ("quiver to_df", quiver_df),
            ("quiver to_arrow", quiver_arrow),
            ("feast to_df", feast_df),
        ]:
            median, runs = c.median_wall(fn, args.repeat)
            figures[name] = {"median_s": median, "runs_s": runs}

    feast_s = figures["feast to_df"]["median_s"]
    print(
        f"\nget_historical_features, {args.rows:,} rows × {len(names)} features, "
        f"median of {args.repeat}\n"
    )
    print("| | seconds | runs | Feast / this |")
    print("|---|---:|---|---:|")
    for name, fig in figures.items():
        runs = ", ".join(f"{r:.2f}" for r in fig["runs_s"])
        print(f"| {name} | {fig['median_s']:.3f} | {runs} | {feast_s / fig['median_s']:.1f}× |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "features": names,
                    "same": not problems,
                    "feast_dropped_rows": dropped,
                    "figures": figures,
                },
                indent=2,
            )
        )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
