//! Online/offline skew end to end through the library: materialize, serve a logged feature
//! service, change the source and materialize only some entities, serve again, export the logs,
//! and `skew` must name exactly the rows whose served value differs from the training set's.

use std::collections::BTreeSet;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use quiver::skew::{Cause, Outcome, SkewOptions};
use quiver::{
    ExportOptions, FeatureSelection, FeatureStore, MaterializeOptions, NoProgress, OnlineRequest,
};
use quiver_core::KeyValue;

const DEFS: &str = r#"
entities:
  - {name: user, join_keys: [user_id]}
sources:
  - {name: users, path: data/users.csv, timestamp_field: ts}
feature_views:
  - name: profile
    entities: [user]
    source: users
    ttl: 2h
    fields:
      - {name: age, type: int64}
      - {name: score, type: float64}
      - {name: city, type: string}
feature_services:
  - name: scoring
    features: [profile]
    logging: {sample_rate: 1.0}
"#;

/// Users in the source.
const USERS: i64 = 2000;
/// Requested but never in the source (NOT_FOUND on both sides).
const UNKNOWN: std::ops::RangeInclusive<i64> = 2001..=2050;
/// Their only row is older than the TTL (OUTSIDE_MAX_AGE on both sides).
const OLD: std::ops::RangeInclusive<i64> = 1901..=2000;
/// Rewritten in place after materialization: same event time, another score and city.
const REWRITTEN: std::ops::RangeInclusive<i64> = 1..=300;
/// A newer row each, materialized (the window's end is after it).
const NEWER_MATERIALIZED: std::ops::RangeInclusive<i64> = 301..=500;
/// A newer row each, after the window's end: not materialized.
const NEWER_NOT_MATERIALIZED: std::ops::RangeInclusive<i64> = 501..=700;

const MINUTE: i64 = 60_000_000_000;

fn ts(ns: i64) -> String {
    quiver_core::value::format_timestamp(ns)
}

/// The source: every user at `now - 1h` (the old ones at `now - 3h`); `changed` adds the
/// rewrites and newer rows.
fn write_source(dir: &Path, now: i64, changed: bool) {
    let mut csv = String::from("user_id,age,score,city,ts\n");
    for id in 1..=USERS {
        let at = if OLD.contains(&id) {
            now - 180 * MINUTE
        } else {
            now - 60 * MINUTE
        };
        let (score, city) = if changed && REWRITTEN.contains(&id) {
            (id as f64 * 1.5 + 1000.25, format!("moved-{id}"))
        } else {
            (id as f64 * 1.5 + 0.25, format!("city-{}", id % 17))
        };
        csv.push_str(&format!(
            "{id},{},{score},{city},{}\n",
            20 + id % 50,
            ts(at)
        ));
        if changed && NEWER_MATERIALIZED.contains(&id) {
            csv.push_str(&format!(
                "{id},{},{},new-{id},{}\n",
                90,
                id as f64 + 0.5,
                ts(now - 30 * MINUTE)
            ));
        }
        if changed && NEWER_NOT_MATERIALIZED.contains(&id) {
            csv.push_str(&format!(
                "{id},{},{},new-{id},{}\n",
                91,
                id as f64 + 0.75,
                ts(now - 20 * MINUTE)
            ));
        }
    }
    std::fs::write(dir.join("data/users.csv"), csv).unwrap();
}

/// Serves every user (known and unknown) through the logged service, 50 per request.
async fn serve_all(store: &FeatureStore) -> u64 {
    let ids: Vec<i64> = (1..=USERS).chain(UNKNOWN).collect();
    let mut rows = 0;
    for chunk in ids.chunks(50) {
        let request = OnlineRequest::new(
            FeatureSelection::Service("scoring".into()),
            vec![(
                "user_id".into(),
                chunk.iter().map(|&i| KeyValue::Int(i)).collect(),
            )],
        );
        let response = store.get_online_features(&request).await.unwrap();
        assert!(response.logged_as.is_some(), "the answer is logged");
        rows += chunk.len() as u64;
    }
    rows
}

/// Drains the served-feature log queue into the offline store.
async fn export(store: &FeatureStore) {
    let report = store
        .export(&ExportOptions {
            namespaces: vec!["served_features".into()],
        })
        .await
        .unwrap();
    assert!(!report.failed(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skew_names_exactly_the_rows_that_differ() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("features")).unwrap();
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::write(
        d.join("quiver.yaml"),
        "project: skew\nonline_store: {type: embedded}\noffline_store: {type: parquet, path: offline}\n",
    )
    .unwrap();
    std::fs::write(d.join("features/defs.yaml"), DEFS).unwrap();
    let now = quiver::online_store::now_ns();
    write_source(d, now, false);
    let mut store = FeatureStore::open(d).await.unwrap();
    store.apply().await.unwrap();
    store
        .materialize(&MaterializeOptions::default(), &NoProgress)
        .await
        .unwrap();

    // Before the change: two passes, every row agrees.
    let mut logged = 0;
    for _ in 0..2 {
        logged += serve_all(&store).await;
    }
    store.records().served_log().unwrap().flush().await;
    export(&store).await;
    let before = store
        .skew(&SkewOptions {
            examples: usize::MAX,
            ..SkewOptions::new("scoring")
        })
        .await
        .unwrap();
    assert_eq!(before.rows, logged, "{before:#?}");
    assert!(!before.has_skew(), "{:#?}", before.features);
    let cut = quiver::online_store::now_ns();

    // The change: rewrite some rows in place, add newer rows for others, and materialize the
    // window that holds only half of the newer rows (the in-place rewrites, an hour old, are
    // before its start).
    write_source(d, now, true);
    store
        .materialize(
            &MaterializeOptions {
                start: Some(now - 40 * MINUTE),
                end: Some(now - 25 * MINUTE),
                ..MaterializeOptions::default()
            },
            &NoProgress,
        )
        .await
        .unwrap();
    let mut after_rows = 0;
    for _ in 0..3 {
        after_rows += serve_all(&store).await;
    }
    store.records().served_log().unwrap().flush().await;
    export(&store).await;
    assert!(after_rows + logged >= 10_000, "at least 10k logged rows");

    let report = store
        .skew(&SkewOptions {
            start: Some(cut),
            examples: usize::MAX,
            ..SkewOptions::new("scoring")
        })
        .await
        .unwrap();
    assert_eq!(
        report.rows, after_rows,
        "only the requests after the change"
    );
    let passes = 3;
    let disagreeing = |feature: &str| -> BTreeSet<i64> {
        report
            .examples
            .iter()
            .filter(|e| e.feature == feature)
            .map(|e| e.entity.strip_prefix("user_id=").unwrap().parse().unwrap())
            .collect()
    };
    let expected_score: BTreeSet<i64> = REWRITTEN.chain(NEWER_NOT_MATERIALIZED).collect();
    let expected_age: BTreeSet<i64> = NEWER_NOT_MATERIALIZED.collect();
    for feature in ["profile:score", "profile:city"] {
        assert_eq!(disagreeing(feature), expected_score, "{feature}");
    }
    // Rewriting kept each age: only the rows with a newer, unmaterialized event differ.
    assert_eq!(disagreeing("profile:age"), expected_age);
    for f in &report.features {
        let expected = if f.feature == "profile:age" {
            expected_age.len()
        } else {
            expected_score.len()
        } as u64
            * passes;
        assert_eq!(f.compared, after_rows, "{f:#?}");
        assert_eq!(
            f.mismatched, expected,
            "every disagreement is a value mismatch: {f:#?}"
        );
        assert_eq!((f.online_only, f.offline_only), (0, 0), "{f:#?}");
        assert_eq!(f.matched, after_rows - expected, "{f:#?}");
        // Statuses agree too: the old rows are OUTSIDE_MAX_AGE on both sides, the unknown
        // users NOT_FOUND on both.
        let old = OLD.count() as u64 * passes;
        let unknown = UNKNOWN.count() as u64 * passes;
        assert_eq!(
            f.online_statuses.get("OUTSIDE_MAX_AGE"),
            Some(&old),
            "{f:#?}"
        );
        assert_eq!(
            f.offline_statuses.get("OUTSIDE_MAX_AGE"),
            Some(&old),
            "{f:#?}"
        );
        assert_eq!(f.online_statuses.get("NOT_FOUND"), Some(&unknown), "{f:#?}");
        assert_eq!(
            f.offline_statuses.get("NOT_FOUND"),
            Some(&unknown),
            "{f:#?}"
        );
    }
    // Why: a rewrite keeps the event time, a newer row is one online has not seen.
    for e in &report.examples {
        let id: i64 = e.entity.strip_prefix("user_id=").unwrap().parse().unwrap();
        assert_eq!(e.outcome, Outcome::Mismatch);
        let cause = if REWRITTEN.contains(&id) {
            Cause::SameEvent
        } else {
            Cause::OnlineBehind
        };
        assert_eq!(e.cause, cause, "{e:?}");
        assert_eq!(e.layers, "online");
    }
    let score = report
        .features
        .iter()
        .find(|f| f.feature == "profile:score")
        .unwrap();
    // |diff| is 1000 for rewrites, |1.5 id + 0.25 - (id + 0.75)| = 0.5 id - 0.5 for the others.
    assert_eq!(score.max_abs_diff, Some(1000.0));

    // The same report as Arrow batches.
    let tables = report.to_arrow().unwrap();
    let summary = &tables.summary;
    assert_eq!(summary.num_rows(), 3);
    let mismatched = summary
        .column_by_name("mismatched")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let same_event = summary
        .column_by_name("same_event")
        .unwrap()
        .as_primitive::<UInt64Type>();
    for (i, f) in report.features.iter().enumerate() {
        assert_eq!(mismatched.value(i), f.mismatched);
        assert_eq!(
            same_event.value(i),
            f.causes.get(&Cause::SameEvent).copied().unwrap_or(0)
        );
    }
    assert_eq!(tables.examples.num_rows(), report.examples.len());
    let buckets: u64 = tables
        .timeline
        .column_by_name("disagreements")
        .unwrap()
        .as_primitive::<UInt64Type>()
        .iter()
        .map(|v| v.unwrap())
        .sum();
    assert_eq!(
        buckets,
        report
            .features
            .iter()
            .map(|f| f.disagreements())
            .sum::<u64>()
    );

    // A sample: fewer rows, still only true disagreements.
    let sampled = store
        .skew(&SkewOptions {
            start: Some(cut),
            sample: Some(1000),
            seed: 7,
            examples: usize::MAX,
            ..SkewOptions::new("scoring")
        })
        .await
        .unwrap();
    assert_eq!(sampled.rows, 1000);
    assert_eq!(sampled.logged_rows, after_rows);
    let score = &sampled.features[1];
    assert!(
        score.mismatched > 0 && score.mismatched < 1000,
        "{score:#?}"
    );
    for e in &sampled.examples {
        let id: i64 = e.entity.strip_prefix("user_id=").unwrap().parse().unwrap();
        let expected = if e.feature == "profile:age" {
            &expected_age
        } else {
            &expected_score
        };
        assert!(expected.contains(&id), "{e:?}");
    }

    // Errors name the problem.
    let unknown = store.skew(&SkewOptions::new("nope")).await.unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("feature service `nope` is not applied"),
        "{unknown}"
    );
}
