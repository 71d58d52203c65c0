"""`push` (Feast's name and arguments), embedded and through `quiver serve`: rows of a push
source reach every view that reads it online, its Parquet batch source offline, or both."""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import quiver

DEFS = """
entities: [{name: user, join_keys: [user_id]}]
sources:
  - {name: events, path: data/events.parquet, timestamp_field: ts}
  - {name: events_push, type: push, batch_source: events}
feature_views:
  - name: activity
    entities: [user]
    source: events_push
    ttl: 3650d
    fields: [{name: clicks, type: int64, min: 0}]
"""


class PushMode(enum.Enum):
    """Shaped like Feast's `feast.data_source.PushMode`."""

    ONLINE = 1
    OFFLINE = 2
    ONLINE_AND_OFFLINE = 3


def push_project(root: Path) -> Path:
    (root / "features").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "quiver.yaml").write_text("project: pushy\nonline_store: {type: embedded, path: online.redb}\n")
    (root / "features" / "defs.yaml").write_text(DEFS)
    table = pa.table(
        {
            "user_id": pa.array([9], pa.int64()),
            "clicks": pa.array([1], pa.int64()),
            "ts": pa.array([dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)], pa.timestamp("us", "UTC")),
        }
    )
    pq.write_table(table, root / "data" / "events.parquet")
    return root


def rows_now(n: int) -> list:
    return [dt.datetime.now(dt.timezone.utc).isoformat()] * n


def test_push_online_offline_and_both(tmp_path: Path) -> None:
    project = push_project(tmp_path / "p")
    store = quiver.FeatureStore(str(project))
    store.apply()
    report = store.push("events_push", {"user_id": [1, 2], "clicks": [5, 7], "ts": rows_now(2)})
    assert report["views"] == [{"view": "activity", "written": 2, "skipped_older": 0}]
    got = store.get_online_features(features=["activity:clicks"], entity_rows={"user_id": [1, 2]})
    assert got.to_dict()["clicks"] == [5, 7]
    assert pq.read_table(project / "data" / "events.parquet").num_rows == 1

    report = store.push(
        "events_push",
        pa.table({"user_id": [3], "clicks": [30], "ts": rows_now(1)}),
        to=PushMode.ONLINE_AND_OFFLINE,
    )
    assert report["offline_rows"] == 1
    assert pq.read_table(project / "data" / "events.parquet").num_rows == 2
    store.push("events_push", {"user_id": [4], "clicks": [40], "ts": rows_now(1)}, to="offline")
    assert pq.read_table(project / "data" / "events.parquet").num_rows == 3

    with pytest.raises(quiver.InvalidArgument, match="clicks"):
        store.push("events_push", {"user_id": [5], "clicks": [-1], "ts": rows_now(1)})
    with pytest.raises(quiver.NotFound, match="unknown push source `nope`"):
        store.push("nope", {"user_id": [1]})
    with pytest.raises(ValueError, match="`everywhere`"):
        store.push("events_push", {"user_id": [1]}, to="everywhere")
    store.close()


def test_client_push(tmp_path: Path, serve) -> None:
    project = push_project(tmp_path / "p")
    store = quiver.FeatureStore(str(project))
    store.apply()
    store.close()
    server = serve(project)
    client = quiver.Client(server.url)
    report = client.push(
        "events_push", {"user_id": [11], "clicks": [110], "ts": rows_now(1)}, to=PushMode.ONLINE
    )
    assert report["views"][0]["written"] == 1
    got = client.get_online_features(features=["activity:clicks"], entity_rows=[{"user_id": 11}])
    assert got.to_dict()["clicks"] == [110]
    with pytest.raises(quiver.NotFound):
        client.push("nope", {"user_id": [1]})
