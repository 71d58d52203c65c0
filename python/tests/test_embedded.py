"""The embedded package against the CLI: the same project, the same calls, the same answers."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import quiver
from conftest import cli_get, run_cli, use_redis

FEATURES = ["user_profile:age", "user_profile:country", "user_profile:embedding"]
USERS = [42, 7, 123456789]  # the last one does not exist


def feast_columns(answer: dict) -> dict:
    """`quiver get --json` (Feast's shape) as {name: (values, statuses)}."""
    names = answer["metadata"]["feature_names"]
    return {
        name: (result["values"], result["statuses"])
        for name, result in zip(names, answer["results"])
    }


def close(a, b) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6)
    return a == b


def micros(column: pa.ChunkedArray) -> list:
    """Instants as epoch microseconds, whatever the unit and time zone."""
    unit = column.type.unit
    as_int = column.cast(pa.timestamp(unit)).cast(pa.int64()).to_pylist()
    per_us = {"s": 1e-6, "ms": 1e-3, "us": 1, "ns": 1000}[unit]
    return [int(v // per_us) if per_us >= 1 else int(v / per_us) for v in as_int]


def assert_same_as_cli(quiver_bin: Path, project: Path, response: quiver.OnlineResponse) -> None:
    expected = feast_columns(
        cli_get(quiver_bin, project, FEATURES, [f"user_id={u}" for u in USERS])
    )
    got = response.to_dict(include_statuses=True)
    assert list(expected) == response.feature_names
    for name, (values, statuses) in expected.items():
        assert close(got[name], values), (name, got[name], values)
        assert got[f"{name}__status"] == statuses, name


def materialized_store(project: Path) -> quiver.FeatureStore:
    store = quiver.FeatureStore(project)
    report = store.apply()
    assert report["serial"] >= 1
    assert any(c["name"] == "user_profile" for c in report["changes"])
    views = store.materialize()
    profile = next(v for v in views if v["view"] == "user_profile")
    assert profile["written"] == 10_000
    return store


def test_apply_materialize_online_matches_cli(quiver_bin: Path, project: Path) -> None:
    with materialized_store(project) as store:
        response = store.get_online_features(
            features=FEATURES, entity_rows=[{"user_id": u} for u in USERS]
        )
        assert len(response) == 3
        statuses = response.statuses
        assert statuses["age"][:2] == ["PRESENT", "PRESENT"]
        assert statuses["age"][2] == "NOT_FOUND"
        assert response.to_dict()["age"][2] is None
        assert response.layers == [["online"], ["online"], ["online"]]
        # The embedded database is one process's at a time: close before the CLI reads it.
    assert_same_as_cli(quiver_bin, project, response)


def test_online_on_redis_matches_cli(quiver_bin: Path, project: Path, redis_server) -> None:
    use_redis(project, redis_server.url)
    store = materialized_store(project)
    response = store.get_online_features(
        features=FEATURES, entity_rows={"user_id": USERS}  # columns work as well as rows
    )
    # Redis is shared: the CLI reads while the store is open.
    assert_same_as_cli(quiver_bin, project, response)
    store.close()


def test_response_shapes(project: Path) -> None:
    with materialized_store(project) as store:
        by_service = store.get_online_features(
            feature_service="user_basics", entity_rows=[{"user_id": 42}]
        )
        full = store.get_online_features(
            features=["user_profile:age"], entity_rows=[{"user_id": 42}], full_feature_names=True
        )
        d = by_service.to_dict(include_event_timestamps=True)
    assert by_service.feature_names[0] == "user_id"
    assert d["user_id"] == [42]
    # Feast's shape: `name__ts` in epoch seconds; join keys have 0.
    assert d["user_id__ts"] == [0]
    assert d["age__ts"][0] > 1_000_000_000
    assert full.feature_names == ["user_id", "user_profile__age"]
    table = full.to_arrow()
    assert isinstance(table, pa.Table)
    assert table.column_names == ["user_id", "user_profile__age"]
    df = full.to_df()
    assert list(df.columns) == ["user_id", "user_profile__age"]
    assert int(df["user_id"][0]) == 42


def test_historical_matches_cli(quiver_bin: Path, project: Path, tmp_path: Path) -> None:
    run_cli(quiver_bin, project, "apply")
    out = tmp_path / "train.parquet"
    labels = project / "data" / "labels.csv"
    run_cli(
        quiver_bin, project, "historical", "--entities", str(labels),
        "--feature-service", "fraud_model", "--out", str(out),
    )
    expected = pq.read_table(out)
    entity_df = pacsv.read_csv(labels)
    with quiver.FeatureStore(project) as store:
        # pandas in, pyarrow out; the same rows in the same order as the CLI's file.
        job = store.get_historical_features(
            entity_df=entity_df.to_pandas(), feature_service="fraud_model"
        )
        got = job.to_arrow()
    assert got.num_rows == expected.num_rows == entity_df.num_rows
    assert got.column_names == expected.column_names
    for name in expected.column_names:
        if name == "event_timestamp":
            continue  # pandas round trip may change the unit; compared as instants below
        assert close(got.column(name).to_pylist(), expected.column(name).to_pylist()), name
    # The CLI reads the CSV's times as microseconds; the DataFrame keeps pyarrow's nanoseconds.
    assert micros(got.column("event_timestamp")) == micros(expected.column("event_timestamp"))
    # pyarrow in, without pandas.
    with quiver.FeatureStore(project) as store:
        direct = store.get_historical_features(
            entity_df=entity_df, features=["user_profile:age"]
        ).to_arrow()
    assert direct.column("age").to_pylist() == expected.column("age").to_pylist()


def test_write_to_online_store_then_read(project: Path) -> None:
    with materialized_store(project) as store:
        now = dt.datetime.now(dt.timezone.utc)
        written = store.write_to_online_store(
            "user_profile",
            {
                "user_id": [900_001],
                "event_timestamp": [now],
                "age": [33],
                "country": ["DE"],
                "signup_days": [12],
                "embedding": [[0.5, 0.25] + [0.0] * 14],
            },
        )
        assert written == {"written": 1, "skipped_older": 0}
        got = store.get_online_features(
            features=FEATURES, entity_rows=[{"user_id": 900_001}]
        ).to_dict()
    assert got["age"] == [33]
    assert got["country"] == ["DE"]
    assert got["embedding"] == [[0.5, 0.25] + [0.0] * 14]


def test_errors_are_typed_with_the_librarys_messages(project: Path) -> None:
    with pytest.raises(quiver.QuiverError):
        quiver.FeatureStore(project / "missing")
    with materialized_store(project) as store:
        with pytest.raises(quiver.NotFound, match="nope"):
            store.get_online_features(features=["nope:age"], entity_rows=[{"user_id": 1}])
        with pytest.raises(quiver.InvalidArgument, match="user_id"):
            store.get_online_features(
                features=["user_profile:age"], entity_rows=[{"user_id": "forty-two"}]
            )
        with pytest.raises(ValueError, match="entity_rows\\[1\\]"):
            store.get_online_features(
                features=["user_profile:age"], entity_rows=[{"user_id": 1}, {"user": 2}]
            )
        with pytest.raises(quiver.InvalidArgument, match="age"):
            store.write_to_online_store(
                "user_profile",
                {
                    "user_id": [1],
                    "event_timestamp": ["2026-01-01T00:00:00Z"],
                    "age": ["old"],
                    "country": ["DE"],
                    "signup_days": [1],
                    "embedding": [[0.0] * 16],
                },
            )
    with pytest.raises(quiver.FailedPrecondition, match="closed"):
        store.get_online_features(features=["user_profile:age"], entity_rows=[{"user_id": 42}])
    assert issubclass(quiver.NotFound, quiver.QuiverError)


def test_records_and_predictions(project: Path) -> None:
    with materialized_store(project) as store:
        receipt = store.put_record(
            "transactions", {"transaction_id": "t-1", "user_id": 42, "amount": 12.5}
        )
        assert receipt["id"] == "t-1"
        assert store.get_record("transactions", "t-1")["amount"] == 12.5
        assert store.get_record("transactions", "t-404") is None
        with pytest.raises(quiver.InvalidArgument, match="amount"):
            store.put_record("transactions", {"transaction_id": "t-2", "user_id": 42})


def test_get_online_features_releases_the_gil(project: Path) -> None:
    """Reads from several Python threads at once all succeed (each call drops the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    with materialized_store(project) as store:
        def read(u: int) -> list:
            return store.get_online_features(
                features=["user_profile:age"], entity_rows=[{"user_id": u}]
            ).to_dict()["user_id"]

        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(read, range(1, 201)))
    assert got == [[u] for u in range(1, 201)]


def test_feast_shaped_calls_work_unchanged(project: Path) -> None:
    """What code written for Feast does: a feature service object in `features=`, and `except`
    clauses naming builtin exceptions."""
    with materialized_store(project) as store:
        service = store.get_feature_service("user_basics")
        by_object = store.get_online_features(features=service, entity_rows=[{"user_id": 42}])
        by_name = store.get_online_features(
            feature_service="user_basics", entity_rows=[{"user_id": 42}]
        )
        assert by_object.to_dict() == by_name.to_dict()
        with pytest.raises(LookupError):
            store.get_feature_service("nope")
        with pytest.raises(LookupError, match="nope"):
            store.get_online_features(features=["nope:age"], entity_rows=[{"user_id": 1}])
        with pytest.raises(ValueError, match="user_id"):
            store.get_online_features(
                features=["user_profile:age"], entity_rows=[{"user_id": "forty-two"}]
            )
        with pytest.raises(TypeError, match="feature_service"):
            store.get_online_features(features="user_basics", entity_rows=[{"user_id": 1}])
    assert issubclass(quiver.Unavailable, ConnectionError)
    assert issubclass(quiver.FailedPrecondition, RuntimeError)
