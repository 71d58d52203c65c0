"""Quiver, a feature store, from Python.

Embedded (no server)::

    import quiver
    store = quiver.FeatureStore("path/to/project")
    store.apply()
    store.materialize()
    store.get_online_features(features=["user_profile:age"], entity_rows=[{"user_id": 42}]).to_dict()

Remote (a running ``quiver serve``)::

    client = quiver.Client("http://127.0.0.1:6566")
    client.get_online_features(feature_service="user_basics", entity_rows=[{"user_id": 42}])

Method names and arguments follow Feast's ``FeatureStore``. pyarrow (and pandas, for
``to_df``) are imported on first use, so ``import quiver`` stays fast.
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Union

from quiver._quiver import (
    Client,
    ConfigError,
    Conflict,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    NotFound,
    OnlineResponse,
    PermissionDenied,
    QuiverError,
    Unavailable,
    __version__,
)
from quiver._quiver import FeatureStore as _FeatureStore

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import pyarrow

__all__ = [
    "Client",
    "ConfigError",
    "Conflict",
    "FailedPrecondition",
    "FeatureService",
    "FeatureStore",
    "InternalError",
    "InvalidArgument",
    "NotFound",
    "OnlineResponse",
    "PermissionDenied",
    "QuiverError",
    "RetrievalJob",
    "SkewReport",
    "Unavailable",
    "__version__",
]

TimeLike = Union[str, _dt.datetime, _dt.date, None]


def _time(value: TimeLike, name: str) -> Optional[str]:
    """A time argument as RFC 3339 text (naive datetimes are UTC, as everywhere in Quiver)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    raise TypeError(f"{name} must be a datetime, a date or RFC 3339 text, got {type(value).__name__}")


def _arrow_table(entity_df: Any) -> "pyarrow.Table":
    """An entity DataFrame (pandas, polars, pyarrow, or anything with ``__arrow_c_stream__``)
    as a pyarrow Table."""
    import pyarrow as pa

    if isinstance(entity_df, pa.Table):
        return entity_df
    if isinstance(entity_df, pa.RecordBatch):
        return pa.Table.from_batches([entity_df])
    module = type(entity_df).__module__.split(".")[0]
    if module == "pandas":
        return pa.Table.from_pandas(entity_df, preserve_index=False)
    if module == "polars":
        return entity_df.to_arrow()
    if hasattr(entity_df, "__arrow_c_stream__"):
        return pa.table(entity_df)
    if isinstance(entity_df, dict):
        return pa.table(entity_df)
    raise TypeError(
        "entity_df must be a pandas or polars DataFrame, a pyarrow Table or a dict of columns, "
        f"got {type(entity_df).__name__}"
    )


class FeatureService:
    """A feature service by name, what Feast's ``store.get_feature_service(name)`` gives: pass it
    as ``features=`` (or pass ``feature_service="name"``)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"FeatureService({self.name!r})"


class RetrievalJob:
    """A training set, computed when first asked for (as Feast's ``RetrievalJob``)."""

    def __init__(self, compute: Callable[[], "pyarrow.RecordBatch"]):
        self._compute = compute
        self._table: Optional["pyarrow.Table"] = None

    def to_arrow(self) -> "pyarrow.Table":
        if self._table is None:
            import pyarrow as pa

            self._table = pa.Table.from_batches([self._compute()])
        return self._table

    def to_df(self) -> "pandas.DataFrame":
        return self.to_arrow().to_pandas()

    to_pandas = to_df

    def to_polars(self) -> Any:
        import polars

        return polars.from_arrow(self.to_arrow())


class SkewReport:
    """Online/offline skew of a logged feature service (``FeatureStore.skew``): ``report`` is
    the whole report as a dict; ``summary`` (one row per feature), ``examples``, ``timeline``
    and ``differences`` are pyarrow tables (``.to_pandas()`` for DataFrames)."""

    def __init__(self, raw: Dict[str, Any]):
        import pyarrow as pa

        self.report: Dict[str, Any] = raw["report"]
        self.summary = pa.Table.from_batches([raw["summary"]])
        self.examples = pa.Table.from_batches([raw["examples"]])
        self.timeline = pa.Table.from_batches([raw["timeline"]])
        self.differences = pa.Table.from_batches([raw["differences"]])
        self._html: str = raw["html"]

    @property
    def has_skew(self) -> bool:
        """Whether any compared row disagrees."""
        return any(
            f["mismatched"] + f["online_only"] + f["offline_only"] > 0
            for f in self.report["features"]
        )

    def to_html(self) -> str:
        """The self-contained HTML page (charts included) that ``quiver skew --out`` writes."""
        return self._html

    def save_html(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self._html)

    def __repr__(self) -> str:
        r = self.report
        return (
            f"SkewReport(service={r['service']!r}, rows={r['rows']}, "
            f"features={len(r['features'])}, has_skew={self.has_skew})"
        )


class FeatureStore(_FeatureStore):
    """A Quiver project opened in this process (see the module docs)."""

    def materialize(
        self,
        start_date: TimeLike = None,
        end_date: TimeLike = None,
        feature_views: Optional[Sequence[str]] = None,
    ) -> list:
        """Materializes rows with event time in ``[start_date, end_date)`` (default: all history
        up to now) of every view, or of ``feature_views``; one report per view."""
        return super().materialize(
            _time(start_date, "start_date"),
            _time(end_date, "end_date"),
            list(feature_views) if feature_views is not None else None,
        )

    def get_historical_features(
        self,
        entity_df: Any,
        features: Any = None,
        feature_service: Optional[str] = None,
        full_feature_names: bool = False,
        timestamp_column: Optional[str] = None,
    ) -> RetrievalJob:
        """Point-in-time-correct features for each row of ``entity_df`` (join keys and an
        ``event_timestamp`` column, or ``timestamp_column``)."""
        table = _arrow_table(entity_df)
        names = features if hasattr(features, "name") else (
            list(features) if features is not None else None
        )
        return RetrievalJob(
            lambda: self._historical_features(
                table, names, feature_service, full_feature_names, timestamp_column
            )
        )

    def skew(
        self,
        service: str,
        start: TimeLike = None,
        end: TimeLike = None,
        since: Optional[_dt.timedelta] = None,
        sample: Optional[int] = None,
        seed: int = 0,
        tolerance: float = 0.0,
        examples: int = 5,
    ) -> SkewReport:
        """Compares what ``service`` served (its exported served-feature logs) with what a
        training set computes for the same entities at the same times (see ``quiver skew``).
        ``since`` (a timedelta) means requests served since then; ``sample`` compares that many
        random logged rows; floats match within ``tolerance`` (relative)."""
        if since is not None:
            if start is not None:
                raise ValueError("give `since` or `start`, not both")
            start = _dt.datetime.now(_dt.timezone.utc) - since
        return SkewReport(
            self._skew(
                service,
                _time(start, "start"),
                _time(end, "end"),
                sample,
                seed,
                tolerance,
                examples,
            )
        )

    def get_feature_service(self, name: str) -> FeatureService:
        """The feature service `name` (raises ``NotFound`` when it was never applied)."""
        if name not in self.list_feature_services():
            raise NotFound(
                f"no feature service `{name}` (services: {', '.join(self.list_feature_services())})"
            )
        return FeatureService(name)

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
