"""Feast definitions mirroring the example project that `quiver init` writes.

`crates/quiver/templates/users.yaml` declares the entity `user` (join key `user_id`, int64), the
views `user_profile` (fields read from `data/users.parquet`) and `user_spend` (rolling-window
aggregations over `data/transactions.parquet`), and the services `user_basics` and
`fraud_model`. The objects below carry the same names and types, so a Feast client can read
Quiver's served values through Feast's own SDK.

Feast cannot compute `user_spend`'s windows itself: its view lists the features Quiver computes
(`{column}__{function}__{window}`; `count` is int64, every other function float64) over the
transactions source, which is enough for Feast's registry and for reading through a remote
online store, but not for Feast's own materialization.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Array, Float32, Float64, Int32, Int64, String

#: The features of `user_spend` in the template: functions × windows over `amount`.
SPEND_FUNCTIONS = ("sum", "mean", "count", "max", "std")
SPEND_WINDOWS = ("1d", "7d", "30d")

USER_BASICS = ("user_profile:age", "user_profile:country", "user_profile:signup_days")
FRAUD_MODEL = (
    "user_profile:age",
    "user_profile:country",
    "user_spend:amount__sum__7d",
    "user_spend:amount__count__1d",
    "user_spend:amount__mean__30d",
)


def spend_features() -> list[str]:
    """`user_spend`'s feature names in the order Quiver declares them."""
    return [f"amount__{fn}__{w}" for fn in SPEND_FUNCTIONS for w in SPEND_WINDOWS]


def definitions(data_dir: Path) -> list:
    """The entity, sources, views and services, reading the Parquet files in `data_dir`
    (a Quiver project's `data/`)."""
    user = Entity(
        name="user",
        join_keys=["user_id"],
        value_type=ValueType.INT64,
        description="A customer account.",
    )
    users = FileSource(
        name="users",
        path=str(Path(data_dir, "users.parquet").resolve()),
        timestamp_field="updated_at",
    )
    transactions = FileSource(
        name="transactions",
        path=str(Path(data_dir, "transactions.parquet").resolve()),
        timestamp_field="event_time",
    )
    user_profile = FeatureView(
        name="user_profile",
        entities=[user],
        ttl=timedelta(days=90),
        schema=[
            Field(name="age", dtype=Int32),
            Field(name="country", dtype=String),
            Field(name="signup_days", dtype=Int32),
            Field(name="embedding", dtype=Array(Float32)),
        ],
        source=users,
        online=True,
    )
    user_spend = FeatureView(
        name="user_spend",
        entities=[user],
        ttl=timedelta(days=2),
        schema=[
            Field(name=name, dtype=Int64 if "__count__" in name else Float64)
            for name in spend_features()
        ],
        source=transactions,
        online=True,
    )
    views = {"user_profile": user_profile, "user_spend": user_spend}

    def service(name: str, refs: tuple[str, ...]) -> FeatureService:
        by_view: dict[str, list[str]] = {}
        for ref in refs:
            view, feature = ref.split(":")
            by_view.setdefault(view, []).append(feature)
        return FeatureService(
            name=name,
            features=[views[view][features] for view, features in by_view.items()],
        )

    return [
        user,
        users,
        transactions,
        user_profile,
        user_spend,
        service("user_basics", USER_BASICS),
        service("fraud_model", FRAUD_MODEL),
    ]
