"""quiver.Client against `quiver serve`: the same answers as the embedded store and the CLI."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

import quiver
from conftest import cli_get, free_port, run_cli, use_redis
from test_embedded import FEATURES, USERS, close, feast_columns


def served(quiver_bin: Path, project: Path, serve, *extra: str):
    run_cli(quiver_bin, project, "apply")
    run_cli(quiver_bin, project, "materialize")
    expected = feast_columns(
        cli_get(quiver_bin, project, FEATURES, [f"user_id={u}" for u in USERS])
    )
    return serve(project, *extra), expected


def test_client_matches_cli(quiver_bin: Path, project: Path, serve) -> None:
    server, expected = served(quiver_bin, project, serve)
    client = quiver.Client(server.url)
    response = client.get_online_features(
        features=FEATURES, entity_rows=[{"user_id": u} for u in USERS]
    )
    got = response.to_dict(include_statuses=True, include_event_timestamps=True)
    assert response.feature_names == list(expected)
    for name, (values, statuses) in expected.items():
        assert close(got[name], values), name
        assert got[f"{name}__status"] == statuses
    assert got["age__ts"][0] > 1_000_000_000
    assert response.layers is None
    by_service = client.get_online_features(
        feature_service="user_basics", entity_rows={"user_id": [42]}
    )
    assert by_service.to_dict()["user_id"] == [42]


def test_client_writes_records_and_reports_errors(quiver_bin: Path, project: Path, serve) -> None:
    server, _ = served(quiver_bin, project, serve)
    client = quiver.Client(server.url, timeout=5.0)
    written = client.write_to_online_store(
        "user_profile",
        {
            "user_id": [900_002],
            "event_timestamp": [dt.datetime.now(dt.timezone.utc)],
            "age": [41],
            "country": ["FR"],
            "signup_days": [3],
            "embedding": [[1.0] * 16],
        },
    )
    assert written["written"] == 1
    got = client.get_online_features(
        features=["user_profile:age", "user_profile:country"], entity_rows=[{"user_id": 900_002}]
    ).to_dict()
    assert got == {"user_id": [900_002], "age": [41], "country": ["FR"]}

    client.put_record("transactions", {"transaction_id": "t-9", "user_id": 42, "amount": 3.5})
    assert client.get_record("transactions", "t-9")["amount"] == 3.5
    assert client.get_record("transactions", "missing") is None
    with pytest.raises(quiver.NotFound, match="nope"):
        client.get_record("nope", "t-9")

    with pytest.raises(quiver.NotFound, match="nope"):
        client.get_online_features(features=["nope:x"], entity_rows=[{"user_id": 1}])
    with pytest.raises(quiver.InvalidArgument, match="user_id"):
        client.get_online_features(
            features=["user_profile:age"], entity_rows=[{"user_id": "forty-two"}]
        )
    assert client.health()["status"] in ("healthy", "degraded")
    assert "since_start" in client.stats()


def test_unreachable_server_is_unavailable_after_retries() -> None:
    client = quiver.Client(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01)
    start = time.monotonic()
    with pytest.raises(quiver.Unavailable, match="after 3 attempts"):
        client.get_online_features(features=["v:f"], entity_rows=[{"id": 1}])
    # 0.01 + 0.02 s of backoff: retried, not hung.
    assert time.monotonic() - start < 5


def test_503_is_retried_then_raised(quiver_bin: Path, project: Path, serve, redis_server) -> None:
    use_redis(project, redis_server.url)
    server, _ = served(quiver_bin, project, serve)
    client = quiver.Client(server.url, retries=2, backoff=0.01)
    assert client.get_online_features(
        features=["user_profile:age"], entity_rows=[{"user_id": 42}]
    ).statuses["age"] == ["PRESENT"]
    redis_server.stop()  # no fallback configured: the server answers 503
    with pytest.raises(quiver.Unavailable, match="after 3 attempts"):
        client.get_online_features(features=["user_profile:age"], entity_rows=[{"user_id": 42}])


def test_bad_client_arguments() -> None:
    with pytest.raises(ValueError, match="timeout"):
        quiver.Client("http://127.0.0.1:1", timeout=0)
    with pytest.raises(ValueError, match="http://"):
        quiver.Client("127.0.0.1:6566")


def test_client_sends_its_token_and_refusals_are_permission_denied(
    quiver_bin: Path, project: Path, serve
) -> None:
    import hashlib

    digest = hashlib.sha256(b"reader-token").hexdigest()
    config = project / "quiver.yaml"
    text = config.read_text()
    assert "\nserver:\n" in text
    config.write_text(
        text.replace(
            "\nserver:\n",
            f"\nserver:\n  auth: {{tokens: [{{name: reader, sha256: {digest}, scopes: [read]}}]}}\n",
        )
    )
    run_cli(quiver_bin, project, "apply")
    run_cli(quiver_bin, project, "materialize", "--views", "user_profile")
    server = serve(project)
    reader = quiver.Client(server.url, token="reader-token")
    got = reader.get_online_features(features=["user_profile:age"], entity_rows=[{"user_id": 42}])
    assert got.to_dict()["user_id"] == [42]
    with pytest.raises(quiver.PermissionDenied, match="requires a token"):
        quiver.Client(server.url).get_online_features(
            features=["user_profile:age"], entity_rows=[{"user_id": 42}]
        )
    with pytest.raises(PermissionError, match="lacks scope `write`"):
        reader.write_to_online_store("user_profile", {"user_id": [1]})


def test_429_is_retried_after_retry_after(quiver_bin: Path, project: Path, serve) -> None:
    import hashlib
    import time

    digest = hashlib.sha256(b"slow-token").hexdigest()
    config = project / "quiver.yaml"
    text = config.read_text()
    config.write_text(
        text.replace(
            "\nserver:\n",
            "\nserver:\n  auth: {tokens: [{name: slow, sha256: "
            + digest
            + ", scopes: [read], rate: 1, burst: 1}]}\n",
        )
    )
    run_cli(quiver_bin, project, "apply")
    run_cli(quiver_bin, project, "materialize", "--views", "user_profile")
    server = serve(project)
    rows = [{"user_id": 42}]
    # One request a second: without retries the second request at once is refused...
    hasty = quiver.Client(server.url, token="slow-token", retries=0)
    hasty.get_online_features(features=["user_profile:age"], entity_rows=rows)
    with pytest.raises(quiver.Unavailable, match="rate"):
        hasty.get_online_features(features=["user_profile:age"], entity_rows=rows)
    # ...and with them, the client waits what Retry-After says and every request succeeds.
    patient = quiver.Client(server.url, token="slow-token", retries=3)
    started = time.monotonic()
    for _ in range(3):
        got = patient.get_online_features(features=["user_profile:age"], entity_rows=rows)
        assert got.to_dict()["user_id"] == [42]
    assert time.monotonic() - started >= 1.0
