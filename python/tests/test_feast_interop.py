"""One Quiver project read through Feast 0.67's own SDK and through Quiver's Python client.

The Quiver CLI (`$QUIVER_BIN`, default `<repo>/target/debug/quiver`) writes the example project
(`quiver init`), applies and materializes it, and serves it (`quiver serve --port 0`). A Feast
repo with the same entity, views and services (`feast_repo/definitions.py`) points its online
store at that server (`online_store: {type: remote, path: http://127.0.0.1:PORT}`): Feast's
`get_online_features` then posts Feast's JSON to Quiver's `/get-online-features`, and its
`write_to_online_store` posts to `/write-to-online-store`. What Feast's SDK reads must equal what
`quiver.Client` reads, value for value and column for column.

A second Feast repo materializes the same Parquet files into Feast's own SQLite online store,
so Quiver's answers are also checked against values Feast computed itself (for `user_profile`;
Feast cannot compute `user_spend`'s windows).

Needs the `quiver` package (`maturin develop`), `feast==0.67.*` and a built CLI; nothing here is
skipped: a missing piece fails the test with what to install or build.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
FEAST_REPO = Path(__file__).resolve().parent / "feast_repo"
PROJECT = "interop"
# Present in the example data (user ids 1..10000) and one that is not.
KNOWN_USERS = [42, 7, 1, 10_000, 4_321]
MISSING_USER = 123_456_789
ENTITY_ROWS = [{"user_id": u} for u in (42, 7, MISSING_USER, 1, 10_000, 4_321)]
SERVER_START_TIMEOUT = 60.0


def _require(module: str, hint: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pytest.fail(f"cannot import `{module}` ({e}); {hint}", pytrace=False)


def _wait_for(what: str, check: Callable[[], object], timeout: float, proc=None):
    """Polls `check` until it returns something truthy; fails after `timeout` seconds or when
    `proc` exits."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process exited with {proc.returncode}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f}s", pytrace=False)
        time.sleep(0.05)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feast():
    return _require(
        "feast",
        "install Feast 0.67 into this interpreter: pip install 'feast[redis]==0.67.*'",
    )


@pytest.fixture(scope="module")
def quiver():
    return _require(
        "quiver",
        "build the package into this interpreter: cd python && maturin develop --release",
    )


@pytest.fixture(scope="module")
def feast_definitions(feast):
    spec = importlib.util.spec_from_file_location(
        "quiver_feast_repo_definitions", FEAST_REPO / "definitions.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quiver_cli() -> Path:
    path = Path(os.environ.get("QUIVER_BIN", REPO_ROOT / "target" / "debug" / "quiver"))
    if not path.is_file():
        pytest.fail(
            f"no Quiver CLI at {path}: build it (cargo build -p quiver-cli) or set QUIVER_BIN",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def interop_project(tmp_path_factory, quiver_cli) -> Path:
    """The example project, applied and materialized into its embedded online store."""
    root = tmp_path_factory.mktemp("quiver") / PROJECT
    steps = [
        ["init", str(root), "--name", PROJECT],
        ["--project", str(root), "apply"],
        ["--project", str(root), "materialize"],
    ]
    for args in steps:
        done = subprocess.run(
            [str(quiver_cli), *args], capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            pytest.fail(
                f"quiver {' '.join(args)} exited with {done.returncode}:\n"
                f"{done.stdout}\n{done.stderr}",
                pytrace=False,
            )
    return root


@pytest.fixture(scope="module")
def server_url(interop_project, quiver_cli) -> Iterator[str]:
    """`quiver serve` on a free loopback port, ready; stopped (by its pid) afterwards."""
    log = interop_project / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(quiver_cli),
                "--project",
                str(interop_project),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        listening = re.compile(rb"listening on (http://127\.0\.0\.1:\d+)")

        def bound_url():
            found = listening.search(log.read_bytes())
            return found and found.group(1).decode()

        url = _wait_for("quiver serve binding a port", bound_url, SERVER_START_TIMEOUT, proc)

        def ready():
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1) as resp:
                    return resp.status == 200
            except (urllib.error.URLError, OSError):
                return False

        _wait_for("GET /readyz answering 200", ready, SERVER_START_TIMEOUT, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _feast_store(feast, repo: Path, online_store: dict, definitions: list):
    import yaml

    repo.mkdir(parents=True)
    config = {
        "project": PROJECT,
        "provider": "local",
        "registry": str(repo / "registry.db"),
        "online_store": online_store,
        "offline_store": {"type": "file"},
        "entity_key_serialization_version": 3,
    }
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    store = feast.FeatureStore(repo_path=str(repo))
    store.apply(definitions)
    return store


@pytest.fixture(scope="module")
def feast_remote(feast, feast_definitions, interop_project, server_url, tmp_path_factory):
    """Feast's SDK with Quiver's server as its remote online store."""
    repo = tmp_path_factory.mktemp("feast") / "remote"
    return _feast_store(
        feast,
        repo,
        {"type": "remote", "path": server_url},
        feast_definitions.definitions(interop_project / "data"),
    )


@pytest.fixture(scope="module")
def feast_local(feast, feast_definitions, interop_project, tmp_path_factory):
    """Feast's SDK with its own SQLite online store, `user_profile` materialized by Feast from
    the same Parquet files."""
    repo = tmp_path_factory.mktemp("feast") / "local"
    store = _feast_store(
        feast,
        repo,
        {"type": "sqlite", "path": str(repo / "online.db")},
        feast_definitions.definitions(interop_project / "data"),
    )
    now = datetime.now(timezone.utc)
    store.materialize(
        start_date=now - timedelta(days=365),
        end_date=now + timedelta(minutes=1),
        feature_views=["user_profile"],
    )
    return store


@pytest.fixture(scope="module")
def client(quiver, server_url):
    return quiver.Client(server_url)


# --- comparison -----------------------------------------------------------------------------


def _assert_same(
    feast_dict: dict, quiver_dict: dict, float32: tuple[str, ...] = (), ordered: bool = True
):
    """The same columns with equal values; in the same order when `ordered` (through Quiver's
    server both follow the server's order; Feast's own stores order a request's features by
    view and then in no fixed order, so there only the join key's place is checked). Columns
    named in `float32` hold lists of float32 values and are compared as float32 (one side may
    carry the float32 value widened to float64, the other its shortest text parsed as float64)."""
    if ordered:
        assert list(quiver_dict) == list(feast_dict), "columns or their order differ"
    else:
        assert sorted(quiver_dict) == sorted(feast_dict), "columns differ"
        assert next(iter(quiver_dict)) == next(iter(feast_dict)) == "user_id"
    for column, expected in feast_dict.items():
        actual = quiver_dict[column]
        if column in float32:
            expected, actual = _as_float32(expected), _as_float32(actual)
        assert actual == expected, f"column `{column}` differs"


def _as_float32(column: list) -> list:
    import numpy as np

    return [None if v is None else [float(np.float32(x)) for x in v] for v in column]


PROFILE = [
    "user_profile:age",
    "user_profile:country",
    "user_profile:signup_days",
    "user_profile:embedding",
]
SPEND = [
    "user_spend:amount__sum__7d",
    "user_spend:amount__count__1d",
    "user_spend:amount__mean__30d",
    "user_spend:amount__std__30d",
    "user_spend:amount__max__1d",
]
FEATURE_LISTS = {
    "profile": PROFILE,
    "spend": SPEND,
    "mixed": [SPEND[0], PROFILE[0], SPEND[1], PROFILE[1]],
}


@pytest.mark.parametrize("full_feature_names", [False, True], ids=["short", "full"])
@pytest.mark.parametrize("features", FEATURE_LISTS.values(), ids=FEATURE_LISTS.keys())
def test_features_read_through_feast_equal_quivers(
    feast_remote, client, features, full_feature_names
):
    from_feast = feast_remote.get_online_features(
        features=features, entity_rows=ENTITY_ROWS, full_feature_names=full_feature_names
    ).to_dict()
    from_quiver = client.get_online_features(
        features=features, entity_rows=ENTITY_ROWS, full_feature_names=full_feature_names
    ).to_dict()
    embedding = "user_profile__embedding" if full_feature_names else "embedding"
    _assert_same(from_feast, from_quiver, float32=(embedding,))
    assert from_quiver["user_id"] == [row["user_id"] for row in ENTITY_ROWS]


@pytest.mark.parametrize("service", ["user_basics", "fraud_model"])
def test_feature_service_read_through_feast_equals_quivers(feast_remote, client, service):
    from_feast = feast_remote.get_online_features(
        features=feast_remote.get_feature_service(service), entity_rows=ENTITY_ROWS
    ).to_dict()
    from_quiver = client.get_online_features(
        feature_service=service, entity_rows=ENTITY_ROWS
    ).to_dict()
    _assert_same(from_feast, from_quiver)


def test_missing_entity_is_none_in_both(feast_remote, client):
    rows = [{"user_id": MISSING_USER}]
    features = PROFILE + SPEND
    from_feast = feast_remote.get_online_features(features=features, entity_rows=rows).to_dict()
    from_quiver = client.get_online_features(features=features, entity_rows=rows).to_dict()
    expected = {"user_id": [MISSING_USER]} | {f.split(":")[1]: [None] for f in features}
    assert from_feast == expected
    assert from_quiver == expected


def test_known_entities_have_values(client):
    """Guards the comparisons above against both sides being empty."""
    got = client.get_online_features(
        features=PROFILE, entity_rows=[{"user_id": u} for u in KNOWN_USERS]
    ).to_dict()
    assert all(age is not None for age in got["age"])
    assert all(len(e) == 16 for e in got["embedding"])


def test_quiver_matches_values_feast_materialized_itself(feast_local, client):
    """Feast's own materialization of `user_profile` from the same Parquet files (its SQLite
    online store) against Quiver's: the latest snapshot per user, the same values."""
    from_feast = feast_local.get_online_features(
        features=PROFILE, entity_rows=ENTITY_ROWS
    ).to_dict()
    from_quiver = client.get_online_features(features=PROFILE, entity_rows=ENTITY_ROWS).to_dict()
    _assert_same(from_feast, from_quiver, float32=("embedding",), ordered=False)


def test_event_timestamps_match_feast_materialized(feast_local, client):
    """`to_dict(include_event_timestamps=True)`: Feast adds `<column>__ts`, whole epoch seconds
    (the event times carry microseconds: truncated, not rounded), after each column; 0 for the
    join keys and for missing entities. Many users, so a rounding difference cannot hide."""
    rows = [{"user_id": u} for u in range(1, 301)] + [{"user_id": MISSING_USER}]
    from_feast = feast_local.get_online_features(features=PROFILE[:2], entity_rows=rows)
    from_quiver = client.get_online_features(features=PROFILE[:2], entity_rows=rows)
    _assert_same(
        from_feast.to_dict(include_event_timestamps=True),
        from_quiver.to_dict(include_event_timestamps=True),
        ordered=False,
    )


def test_feast_writes_through_quiver(feast_remote, client):
    """Feast's `write_to_online_store` posts to Quiver's `/write-to-online-store` (Feast names
    the time column after the source's `timestamp_field` and sends it as `event_timestamp`);
    Quiver and Feast then read the row back alike."""
    import pandas as pd

    user = 9_000_001
    embedding = [0.25 * (i % 4) - 0.375 for i in range(16)]  # exact in float32
    df = pd.DataFrame(
        {
            "user_id": [user],
            "age": [33],
            "country": ["JP"],
            "signup_days": [12],
            "embedding": [embedding],
            "updated_at": [datetime.now(timezone.utc) - timedelta(minutes=5)],
        }
    )
    feast_remote.write_to_online_store("user_profile", df)
    rows = [{"user_id": user}]
    expected = {
        "user_id": [user],
        "age": [33],
        "country": ["JP"],
        "signup_days": [12],
        "embedding": [embedding],
    }
    from_quiver = client.get_online_features(features=PROFILE, entity_rows=rows).to_dict()
    from_feast = feast_remote.get_online_features(features=PROFILE, entity_rows=rows).to_dict()
    assert from_quiver == expected
    assert from_feast == expected


def test_quiver_client_writes_what_feast_reads(feast_remote, client):
    """The DataFrame Feast's `write_to_online_store` takes, written by `quiver.Client`."""
    import pandas as pd

    user = 9_000_002
    df = pd.DataFrame(
        {
            "user_id": [user],
            "age": [71],
            "country": ["BR"],
            "signup_days": [400],
            "embedding": [[0.5] * 16],
            "updated_at": [datetime.now(timezone.utc) - timedelta(minutes=5)],
        }
    )
    client.write_to_online_store("user_profile", df)
    rows = [{"user_id": user}]
    got = feast_remote.get_online_features(features=PROFILE, entity_rows=rows).to_dict()
    assert got == {
        "user_id": [user],
        "age": [71],
        "country": ["BR"],
        "signup_days": [400],
        "embedding": [[0.5] * 16],
    }


def test_std_of_few_rows_is_none_not_nan(feast_remote, client):
    """A window with one row has no sample std: null on the wire, None in both SDKs."""
    rows = [{"user_id": u} for u in range(1, 201)]
    from_feast = feast_remote.get_online_features(
        features=["user_spend:amount__std__1d"], entity_rows=rows
    ).to_dict()
    from_quiver = client.get_online_features(
        features=["user_spend:amount__std__1d"], entity_rows=rows
    ).to_dict()
    assert from_quiver == from_feast
    values = from_quiver["amount__std__1d"]
    assert not any(isinstance(v, float) and math.isnan(v) for v in values)


def test_value_older_than_ttl_is_served_like_feast(feast_remote, feast_local, client):
    """A value older than the view's ttl (90 days) keeps its value in `to_dict()`, as Feast's
    own stores serve it (Quiver marks it `OUTSIDE_MAX_AGE`; Feast's SQLite store, `PRESENT`)."""
    import pandas as pd

    user = 9_000_003
    df = pd.DataFrame(
        {
            "user_id": [user],
            "age": [50],
            "country": ["DE"],
            "signup_days": [5],
            "embedding": [[0.5] * 16],
            "updated_at": [datetime.now(timezone.utc) - timedelta(days=100)],
        }
    )
    client.write_to_online_store("user_profile", df.copy())
    feast_local.write_to_online_store("user_profile", df.copy())
    rows = [{"user_id": user}]
    features = PROFILE[:2]
    expected = {"user_id": [user], "age": [50], "country": ["DE"]}
    assert client.get_online_features(features=features, entity_rows=rows).to_dict() == expected
    assert (
        feast_remote.get_online_features(features=features, entity_rows=rows).to_dict() == expected
    )
    assert (
        feast_local.get_online_features(features=features, entity_rows=rows).to_dict() == expected
    )
