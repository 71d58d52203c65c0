"""Shared pieces of the Python benchmarks: the generated data, the Quiver projects and the
equivalent Feast repos over it, a private `redis-server`, and the timing helpers.

The data: `N_ENTITIES` users, `SNAPSHOTS` rows each (so reading the latest row per user
matters), `N_FEATURES` features — the first half float64 (`f00`..), the second int64 — and an
`event_timestamp` within the `HISTORY_DAYS` before now. Quiver and Feast read the same Parquet
file: Quiver's view `bench` (entity `user`, join key `user_id`), Feast's view of the same name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

N_ENTITIES = 10_000
SNAPSHOTS = 3
N_FEATURES = 50
HISTORY_DAYS = 30
TTL_DAYS = 30
VIEW = "bench"
PROJECT = "bench"
SEED = 7


def feature_names(n: int = N_FEATURES) -> list[str]:
    return [f"f{i:02d}" for i in range(n)]


def is_float(name: str) -> bool:
    return int(name[1:]) < N_FEATURES // 2


def feature_refs(names: list[str]) -> list[str]:
    return [f"{VIEW}:{n}" for n in names]


def historical_names(n: int = 10) -> list[str]:
    """`n` features, half float64 and half int64."""
    half = n // 2
    floats = feature_names()[:half]
    ints = feature_names()[N_FEATURES // 2 : N_FEATURES // 2 + n - half]
    return floats + ints


# --- data -----------------------------------------------------------------------------------


def write_features(path: Path, now: datetime, seed: int = SEED) -> int:
    """The feature table: `N_ENTITIES` × `SNAPSHOTS` rows. Returns the row count."""
    rng = np.random.default_rng(seed)
    rows = N_ENTITIES * SNAPSHOTS
    user_id = np.tile(np.arange(1, N_ENTITIES + 1, dtype=np.int64), SNAPSHOTS)
    now_us = int(now.timestamp() * 1_000_000)
    # Whole seconds, all distinct per user (snapshot k lies in its own third of the history).
    span = HISTORY_DAYS * 86_400 // SNAPSHOTS
    offsets = np.concatenate(
        [rng.integers(k * span + 1, (k + 1) * span, N_ENTITIES) for k in range(SNAPSHOTS)]
    )
    ts = pa.array((now_us - offsets * 1_000_000), pa.timestamp("us", tz="UTC"))
    columns: dict[str, pa.Array] = {"user_id": pa.array(user_id)}
    for name in feature_names():
        if is_float(name):
            values = np.round(rng.normal(100.0, 30.0, rows), 4)
            columns[name] = pa.array(values, pa.float64())
        else:
            columns[name] = pa.array(rng.integers(0, 1_000_000, rows), pa.int64())
    columns["event_timestamp"] = ts
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return rows


def entity_frame(n_rows: int, now: datetime, missing_share: float = 0.02, seed: int = SEED):
    """`n_rows` entity rows for a point-in-time join: random users (a few unknown ones) at
    random times over the history and a little before it, plus a `row_id` to line results up."""
    import pandas as pd

    rng = np.random.default_rng(seed + 1)
    users = rng.integers(1, N_ENTITIES + 1, n_rows).astype(np.int64)
    unknown = rng.random(n_rows) < missing_share
    users[unknown] += 10 * N_ENTITIES
    seconds = rng.integers(0, (HISTORY_DAYS + 5) * 86_400, n_rows)
    ts = pd.to_datetime(now) - pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame(
        {"row_id": np.arange(n_rows, dtype=np.int64), "user_id": users, "event_timestamp": ts}
    )


# --- projects -------------------------------------------------------------------------------


def write_quiver_project(root: Path, data: Path, online_store: dict | None = None) -> Path:
    """A Quiver project over `data` with one view of every feature; `online_store` is the
    `online_store:` block (default: embedded)."""
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    (root / "features").mkdir(exist_ok=True)
    config = {
        "project": PROJECT,
        "registry": ".quiver/registry.json",
        "features": "features",
        "online_store": online_store or {"type": "embedded", "path": ".quiver/online.redb"},
        "offline_store": {"type": "parquet", "path": ".quiver/offline"},
    }
    (root / "quiver.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    definitions = {
        "entities": [{"name": "user", "join_keys": ["user_id"], "key_type": "int64"}],
        "sources": [
            {
                "name": "bench_source",
                "type": "parquet",
                "path": str(data.resolve()),
                "timestamp_field": "event_timestamp",
            }
        ],
        "feature_views": [
            {
                "name": VIEW,
                "entities": ["user"],
                "source": "bench_source",
                "ttl": f"{TTL_DAYS}d",
                "fields": [
                    {"name": n, "type": "float64" if is_float(n) else "int64"}
                    for n in feature_names()
                ],
            }
        ],
    }
    (root / "features" / "bench.yaml").write_text(yaml.safe_dump(definitions, sort_keys=False))
    return root


def feast_definitions(data: Path) -> list:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    user = Entity(name="user", join_keys=["user_id"], value_type=ValueType.INT64)
    source = FileSource(
        name="bench_source", path=str(data.resolve()), timestamp_field="event_timestamp"
    )
    view = FeatureView(
        name=VIEW,
        entities=[user],
        ttl=timedelta(days=TTL_DAYS),
        schema=[Field(name=n, dtype=Float64 if is_float(n) else Int64) for n in feature_names()],
        source=source,
        online=True,
    )
    return [user, source, view]


def write_feast_repo(root: Path, online_store: dict):
    """A Feast repo (local provider, file offline store) with the bench view, applied."""
    import yaml
    from feast import FeatureStore

    root.mkdir(parents=True, exist_ok=True)
    config = {
        "project": PROJECT,
        "provider": "local",
        "registry": str(root / "registry.db"),
        "online_store": online_store,
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    (root / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return FeatureStore(repo_path=str(root))


@contextlib.contextmanager
def workdir(path: str | None, keep: bool) -> Iterator[Path]:
    if path:
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        yield root
        return
    root = Path(tempfile.mkdtemp(prefix="quiver-bench-"))
    try:
        yield root
    finally:
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


# --- redis ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[int]:
    """A private `redis-server` on a free loopback port (no persistence); stopped by its pid
    on exit. Yields the port."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server not found: apt-get install -y redis-server")
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with open(directory / "redis.log", "wb") as log:
        proc = subprocess.Popen(
            [
                exe,
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
                "--protected-mode",
                "yes",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        _wait_for_redis(port, proc, directory)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for_redis(port: int, proc: subprocess.Popen, directory: Path) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"redis-server did not start; see {directory}/redis.log")
            time.sleep(0.02)
    client.close()


# --- timing ---------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    latencies_ns: list[int]
    elapsed_s: float

    @property
    def calls(self) -> int:
        return len(self.latencies_ns)

    @property
    def rate(self) -> float:
        return self.calls / self.elapsed_s

    def percentile_ms(self, q: float) -> float:
        ordered = sorted(self.latencies_ns)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[index] / 1e6


def run_for(seconds: float, call: Callable[[int], object]) -> tuple[list[int], float]:
    """Calls `call(i)` for i = 0, 1, … until `seconds` have passed; each call's latency."""
    latencies: list[int] = []
    clock = time.perf_counter_ns
    start = clock()
    end = start + int(seconds * 1e9)
    i = 0
    now = start
    while now < end:
        t0 = clock()
        call(i)
        now = clock()
        latencies.append(now - t0)
        i += 1
    return latencies, (now - start) / 1e9


def interleaved(
    cases: dict[str, Callable[[int], object]], seconds: float, rounds: int, warmup: float
) -> dict[str, Timing]:
    """Runs every case `rounds` times in turn, `seconds / rounds` each, after `warmup` seconds
    of each, so drift in the machine's load spreads over all cases alike."""
    for call in cases.values():
        run_for(warmup, call)
    latencies: dict[str, list[int]] = {name: [] for name in cases}
    elapsed: dict[str, float] = {name: 0.0 for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            lat, took = run_for(seconds / rounds, call)
            latencies[name] += lat
            elapsed[name] += took
    return {name: Timing(name, latencies[name], elapsed[name]) for name in cases}


def median_wall(fn: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def machine_line() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)
