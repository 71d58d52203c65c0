"""`FeatureStore.skew` in this process: serve a logged feature service, export its logs, change
the source, and the report (pyarrow tables, a dict, the HTML page) names exactly the changed rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import quiver

DEFS = """
entities: [{name: user, join_keys: [user_id]}]
sources:
  - {name: users, path: data/users.csv, timestamp_field: ts}
feature_views:
  - name: profile
    entities: [user]
    source: users
    ttl: 1d
    fields: [{name: age, type: int64}, {name: score, type: float64}]
feature_services:
  - name: scoring
    features: [profile]
    logging: {sample_rate: 1.0}
"""


def write_users(root: Path, at: str, changed: set) -> None:
    lines = ["user_id,age,score,ts"]
    for i in range(1, 51):
        score = i + 0.5 if i in changed else i * 2.0
        lines.append(f"{i},{20 + i},{score},{at}")
    (root / "data" / "users.csv").write_text("\n".join(lines) + "\n")


def test_skew_names_the_changed_rows(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "features").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "quiver.yaml").write_text("project: skewpy\nonline_store: {type: embedded, path: online.redb}\n")
    (root / "features" / "defs.yaml").write_text(DEFS)
    at = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat()
    write_users(root, at, set())
    store = quiver.FeatureStore(str(root))
    store.apply()
    store.materialize()
    for _ in range(2):
        store.get_online_features(
            feature_service="scoring", entity_rows=[{"user_id": i} for i in range(1, 51)]
        )
    exported = store.export(["served_features"])
    assert exported["namespaces"][0]["exported"] == 2, exported

    assert not store.skew("scoring").has_skew

    write_users(root, at, {3, 4, 5})
    report = store.skew("scoring", since=dt.timedelta(hours=1))
    assert report.has_skew
    assert report.report["rows"] == 100
    summary = {row["feature"]: row for row in report.summary.to_pylist()}
    assert summary["profile:score"]["mismatched"] == 6
    assert summary["profile:score"]["same_event"] == 6
    assert summary["profile:age"]["mismatched"] == 0
    assert summary["profile:age"]["exact_match_rate"] == 1.0
    entities = {e["entity"] for e in report.examples.to_pylist()}
    assert entities == {"user_id=3", "user_id=4", "user_id=5"}
    assert report.timeline.num_rows > 0
    html = report.to_html()
    assert html.count("<svg") == 4 and "1 of 2 features disagree" in html

    sampled = store.skew("scoring", sample=10, seed=1)
    assert sampled.report["rows"] == 10
    store.close()
