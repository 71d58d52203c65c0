//! Redis-specific behaviour beyond the conformance suite: keys an operator can read with
//! `redis-cli --scan`, TTLs on the keys, failing fast when the server dies and recovering when it
//! comes back, and errors that never show the password.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_core::{EntityKey, KeyValue, Record, Value};
use quiver_online::config::RedisConfig;
use quiver_online::redis::RedisStore;
use quiver_online::{OnlineError, OnlineStoreRead, OnlineStoreWrite, ViewTable, now_ns};
use quiver_test_utils::RedisServer;

fn config(url: &str, extra: serde_json::Value) -> RedisConfig {
    let mut json = serde_json::json!({ "url": url });
    json.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    serde_json::from_value(json).unwrap()
}

fn table(ttl: Option<Duration>) -> ViewTable {
    ViewTable {
        project: "proj".into(),
        view: "view".into(),
        version: 1,
        types: vec!["int64".parse().unwrap()].into(),
        ttl,
    }
}

fn row(k: i64) -> (EntityKey, Record) {
    (
        EntityKey::single(KeyValue::Int(k)),
        Record {
            event_ts: now_ns(),
            created_ts: None,
            values: vec![Value::Int64(k)],
        },
    )
}

async fn raw_conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn keys_are_readable_with_scan_and_carry_a_ttl() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(&server.url(), serde_json::json!({})))
        .await
        .unwrap();
    let ttl = Duration::from_secs(600);
    let rows: Vec<_> = (40..45).map(row).collect();
    store.write(&table(Some(ttl)), &rows).await.unwrap();
    // A neighbouring view must not match the pattern.
    let other = ViewTable {
        view: "view2".into(),
        ..table(None)
    };
    store.write(&other, &[row(1)]).await.unwrap();

    let mut conn = raw_conn(&server).await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(keys.len(), 6, "{keys:?}");
    let mut scanned = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("quiver:proj:view:v1:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        scanned.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    scanned.sort();
    let expected: Vec<String> = (40..45)
        .map(|k| format!("quiver:proj:view:v1:{k}"))
        .collect();
    assert_eq!(scanned, expected);
    for key in &scanned {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(pttl > 590_000 && pttl <= 600_000, "{key}: PTTL {pttl}");
    }
    // No TTL on the view: no expiry on the key (PTTL -1).
    let pttl: i64 = redis::cmd("PTTL")
        .arg("quiver:proj:view2:v1:1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pttl, -1);
}

#[tokio::test]
async fn key_prefix_is_configurable() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(
        &server.url(),
        serde_json::json!({ "key_prefix": "shop-a" }),
    ))
    .await
    .unwrap();
    store.write(&table(None), &[row(7)]).await.unwrap();
    let mut conn = raw_conn(&server).await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("shop-a:proj:view:v1:7")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(exists);
    assert_eq!(store.key(&table(None), &row(7).0), "shop-a:proj:view:v1:7");
    assert_eq!(store.delete_table(&table(None)).await.unwrap(), 1);
}

#[tokio::test]
async fn fails_fast_when_the_server_dies_and_recovers_after_restart() {
    let mut server = RedisServer::start();
    let command_timeout = Duration::from_millis(300);
    let store = Arc::new(
        RedisStore::connect(&config(
            &server.url(),
            serde_json::json!({ "command_timeout": "300ms", "connect_timeout": "300ms" }),
        ))
        .await
        .unwrap(),
    );
    let t = table(None);
    store.write(&t, &[row(1)]).await.unwrap();
    assert!(store.ping().await.unwrap() < command_timeout);

    server.kill();
    for attempt in 0..3 {
        let start = Instant::now();
        let err = store.read(&t, &[row(1).0]).await.unwrap_err();
        let elapsed = start.elapsed();
        assert!(
            matches!(err, OnlineError::Unavailable { store: "redis", .. }),
            "attempt {attempt}: {err:?}"
        );
        // One attempt plus at most one retry, each bounded by the command timeout.
        assert!(
            elapsed < command_timeout * 2 + Duration::from_millis(200),
            "attempt {attempt} took {elapsed:?}"
        );
    }
    assert!(matches!(
        store.write(&t, &[row(2)]).await,
        Err(OnlineError::Unavailable { .. })
    ));
    assert!(store.ping().await.is_err());

    // The restarted server is empty (persistence is off) and has lost the write script: reads
    // come back, and a write reloads the script.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let read = loop {
        match store.read(&t, &[row(1).0]).await {
            Ok(r) => break r,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("store did not recover after restart: {e}"),
        }
    };
    assert_eq!(read, vec![None]);
    let summary = store.write(&t, &[row(3)]).await.unwrap();
    assert_eq!(summary.written, 1);
    let got = store.read(&t, &[row(3).0]).await.unwrap();
    assert_eq!(
        got[0].as_ref().map(|r| r.values.clone()),
        Some(vec![Value::Int64(3)])
    );
}

#[tokio::test]
async fn errors_never_show_the_password() {
    let server = RedisServer::start();
    // The server has no password, so AUTH with one fails; the message must not echo it.
    let url = format!("redis://app:s3cret-pw@127.0.0.1:{}/0", server.port());
    let err = match RedisStore::connect(&config(&url, serde_json::json!({}))).await {
        Ok(_) => panic!("AUTH against a server without a password should fail"),
        Err(e) => e.to_string(),
    };
    assert!(!err.contains("s3cret-pw"), "{err}");
    assert!(err.contains("app:***@127.0.0.1"), "{err}");
    assert!(err.contains("configuration"), "{err}");
}

#[tokio::test]
async fn a_malformed_url_is_a_config_error() {
    let err = match RedisStore::connect(&config("http://u:pw@127.0.0.1:1", serde_json::json!({})))
        .await
    {
        Ok(_) => panic!("accepted an http:// url"),
        Err(e) => e,
    };
    assert!(matches!(err, OnlineError::Config(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("online_store.url") && !msg.contains("pw@"),
        "{msg}"
    );
}

#[tokio::test]
async fn connecting_to_a_dead_port_is_unavailable() {
    let port = {
        let server = RedisServer::start();
        server.port()
    };
    let start = Instant::now();
    let result = RedisStore::connect(&config(
        &format!("redis://127.0.0.1:{port}"),
        serde_json::json!({ "connect_timeout": "500ms" }),
    ))
    .await;
    let err = match result {
        Ok(_) => panic!("connected to a stopped server"),
        Err(e) => e,
    };
    assert!(
        matches!(err, OnlineError::Unavailable { store: "redis", .. }),
        "{err:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn large_reads_and_writes_span_chunks() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(&server.url(), serde_json::json!({})))
        .await
        .unwrap();
    let t = table(Some(Duration::from_secs(60)));
    let rows: Vec<_> = (0..2500).map(row).collect();
    let summary = store.write(&t, &rows).await.unwrap();
    assert_eq!(summary.written, 2500);
    let mut keys: Vec<EntityKey> = rows.iter().rev().map(|(k, _)| k.clone()).collect();
    keys.insert(1200, EntityKey::single(KeyValue::Int(-1)));
    let got = store.read(&t, &keys).await.unwrap();
    assert_eq!(got.len(), 2501);
    assert!(got[1200].is_none());
    let ns: Vec<i64> = got
        .iter()
        .flatten()
        .map(|r| match r.values[0] {
            Value::Int64(n) => n,
            _ => unreachable!(),
        })
        .collect();
    let expected: Vec<i64> = (0..2500).rev().collect();
    assert_eq!(ns, expected);
    assert_eq!(store.delete_table(&t).await.unwrap(), 2500);
}

/// One write of many keys, where some keys already hold a newer event: the multi-key script
/// decides per key, counts both outcomes and sets the TTL on what it stored. Runs on a
/// multi-thread runtime, where large batches are encoded in place (`block_in_place`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_batch_mixes_stored_and_older_records() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(
        &server.url(),
        serde_json::json!({"connections": 3}),
    ))
    .await
    .unwrap();
    let t = table(Some(Duration::from_secs(600)));
    let at = |k: i64, ts: i64, v: i64| {
        (
            EntityKey::single(KeyValue::Int(k)),
            Record {
                event_ts: ts,
                created_ts: None,
                values: vec![Value::Int64(v)],
            },
        )
    };
    // Every third key first gets an event at t=2000.
    let newer: Vec<_> = (0..2500)
        .filter(|k| k % 3 == 0)
        .map(|k| at(k, 2000, -k))
        .collect();
    store.write(&t, &newer).await.unwrap();
    // Then all keys get an event at t=1000: older for those.
    let batch: Vec<_> = (0..2500).map(|k| at(k, 1000, k)).collect();
    let summary = store.write(&t, &batch).await.unwrap();
    assert_eq!(summary.skipped_older, newer.len());
    assert_eq!(summary.written, 2500 - newer.len());

    let keys: Vec<EntityKey> = batch.iter().map(|(k, _)| k.clone()).collect();
    let got = store.read(&t, &keys).await.unwrap();
    for (k, record) in got.iter().enumerate() {
        let record = record.as_ref().unwrap();
        let k = k as i64;
        let (ts, v) = if k % 3 == 0 { (2000, -k) } else { (1000, k) };
        assert_eq!((record.event_ts, &record.values[0]), (ts, &Value::Int64(v)));
    }
    let mut conn = raw_conn(&server).await;
    for k in [1, 2, 2499] {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(format!("quiver:proj:view:v1:{k}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(pttl > 590_000 && pttl <= 600_000, "key {k}: PTTL {pttl}");
    }
}

#[tokio::test]
async fn acl_user_and_database_number_come_from_the_url() {
    let server = RedisServer::start();
    let mut admin = raw_conn(&server).await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">s3cret", "~*", "&*", "+@all"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://app:s3cret@127.0.0.1:{}/3", server.port());
    let store = RedisStore::connect(&config(&url, serde_json::json!({})))
        .await
        .unwrap();
    let rows: Vec<_> = (1..4).map(row).collect();
    store.write(&table(None), &rows).await.unwrap();
    let keys: Vec<EntityKey> = rows.iter().map(|(k, _)| k.clone()).collect();
    let read = store.read(&table(None), &keys).await.unwrap();
    assert!(read.iter().all(Option::is_some), "{read:?}");
    // The records are in database 3, not 0.
    let in_db0: Vec<String> = redis::cmd("KEYS")
        .arg("quiver:proj:view:v1:*")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(in_db0.is_empty(), "{in_db0:?}");
    let _: () = redis::cmd("SELECT")
        .arg(3)
        .query_async(&mut admin)
        .await
        .unwrap();
    let mut in_db3: Vec<String> = redis::cmd("KEYS")
        .arg("quiver:proj:view:v1:*")
        .query_async(&mut admin)
        .await
        .unwrap();
    in_db3.sort();
    assert_eq!(
        in_db3,
        [
            "quiver:proj:view:v1:1",
            "quiver:proj:view:v1:2",
            "quiver:proj:view:v1:3"
        ]
    );
    // A wrong password for the same user is refused as a configuration error.
    let bad = format!("redis://app:wrong@127.0.0.1:{}/3", server.port());
    let err = RedisStore::connect(&config(&bad, serde_json::json!({})))
        .await
        .err()
        .expect("a wrong password must be refused")
        .to_string();
    assert!(
        err.contains("configuration") && !err.contains("wrong@"),
        "{err}"
    );
}

/// `used_memory` of the server, from `INFO memory`.
async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

/// Rows of a ~1 KB string each (below the compression threshold), so memory grows per row.
fn wide_rows(n: i64) -> (ViewTable, Vec<(EntityKey, Record)>) {
    let table = ViewTable {
        types: vec!["string".parse().unwrap()].into(),
        ..table(None)
    };
    let rows = (0..n)
        .map(|k| {
            (
                EntityKey::single(KeyValue::Int(k)),
                Record {
                    event_ts: now_ns(),
                    created_ts: None,
                    values: vec![Value::String(format!("{k:>1000}"))],
                },
            )
        })
        .collect();
    (table, rows)
}

#[tokio::test]
async fn a_write_that_fails_midway_says_how_many_rows_were_applied() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&config(&server.url(), serde_json::json!({})))
        .await
        .unwrap();
    let mut conn = raw_conn(&server).await;
    // Calibrate: what 1,000 of these rows cost the server, then start empty again.
    let (table, rows) = wide_rows(1500);
    let before = used_memory(&mut conn).await;
    store.write(&table, &rows[..1000]).await.unwrap();
    let per_thousand = used_memory(&mut conn).await - before;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    // Room for the first write pipeline (1,000 rows) but not for all 1,500: Redis refuses the
    // write script with OOM part way through the second pipeline.
    let limit = used_memory(&mut conn).await + per_thousand * 5 / 4;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(limit)
        .query_async(&mut conn)
        .await
        .unwrap();

    let err = store.write(&table, &rows).await.unwrap_err();
    let OnlineError::PartialWrite {
        confirmed, total, ..
    } = &err
    else {
        panic!("expected a partial write, got {err:?}");
    };
    assert_eq!((*confirmed, *total), (1000, 1500), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("wrote 1000 of 1500 rows") && message.contains("retrying"),
        "{message}"
    );
    // The rows it reports as written are there.
    let keys: Vec<EntityKey> = rows[..1000].iter().map(|(k, _)| k.clone()).collect();
    let read = store.read(&table, &keys).await.unwrap();
    assert!(read.iter().all(Option::is_some));

    // Retrying the same request once there is room completes it and changes nothing else.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let summary = store.write(&table, &rows).await.unwrap();
    assert_eq!(summary.written + summary.skipped_older, 1500);
    let keys: Vec<EntityKey> = rows.iter().map(|(k, _)| k.clone()).collect();
    let read = store.read(&table, &keys).await.unwrap();
    assert_eq!(read[1499].as_ref().unwrap().values, rows[1499].1.values);
}

mod tls_and_acl {
    use super::*;
    use quiver_online::records::{PutRecord, RecordSpace};

    fn tls_config(
        url: &str,
        ca: &std::path::Path,
        client: Option<(&std::path::Path, &std::path::Path)>,
    ) -> RedisConfig {
        let mut tls = serde_json::json!({ "ca_file": ca });
        if let Some((cert, key)) = client {
            tls["cert_file"] = serde_json::json!(cert);
            tls["key_file"] = serde_json::json!(key);
        }
        config(
            url,
            serde_json::json!({ "tls": tls, "connect_timeout": "2s" }),
        )
    }

    #[tokio::test]
    async fn tls_refuses_a_server_from_another_ca_and_a_missing_client_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let pki = quiver_test_utils::TestPki::generate(dir.path());
        let server = RedisServer::start_tls(&pki.server_cert, &pki.server_key, &pki.ca, true);
        let client = Some((pki.client_cert.as_path(), pki.client_key.as_path()));

        // Verified against the right CA, with the client certificate: works.
        let store = RedisStore::connect(&tls_config(&server.tls_url(), &pki.ca, client))
            .await
            .unwrap();
        let t = table(None);
        store.write(&t, &[row(1)]).await.unwrap();
        assert!(store.read(&t, &[row(1).0]).await.unwrap()[0].is_some());

        // The wrong CA: refused, and the message says the certificate is not trusted.
        let err = RedisStore::connect(&tls_config(&server.tls_url(), &pki.other_ca, client))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, OnlineError::Unavailable { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("invalid peer certificate"), "{text}");
        assert!(text.contains("rediss://127.0.0.1"), "{text}");

        // No client certificate where the server requires one: refused.
        assert!(
            RedisStore::connect(&tls_config(&server.tls_url(), &pki.ca, None))
                .await
                .is_err()
        );

        // Settings that cannot work are configuration errors naming the field.
        let err = RedisStore::connect(&tls_config(&server.url(), &pki.ca, None))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("`online_store.tls` needs a `rediss://` url"),
            "{err}"
        );
        let mut half = tls_config(&server.tls_url(), &pki.ca, client);
        half.tls.as_mut().unwrap().key_file = None;
        let err = RedisStore::connect(&half).await.err().unwrap().to_string();
        assert!(err.contains("go together"), "{err}");
        let mut missing = tls_config(&server.tls_url(), &pki.ca, client);
        missing.tls.as_mut().unwrap().ca_file = Some(dir.path().join("nope.pem"));
        let err = RedisStore::connect(&missing)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("`online_store.tls.ca_file`: cannot read") && err.contains("nope.pem"),
            "{err}"
        );
    }

    async fn admin(server: &RedisServer) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(server.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_documented_acl_user_can_do_everything_quiver_does_and_nothing_else() {
        let server = RedisServer::start();
        let mut conn = admin(&server).await;
        let mut setuser = ::redis::cmd("ACL");
        setuser.arg(&[
            "SETUSER",
            "quiver",
            "on",
            ">s3cret",
            "resetkeys",
            "~quiver:*",
            "resetchannels",
            "-@all",
        ]);
        for rule in quiver_online::redis::ACL_COMMANDS.split_whitespace() {
            setuser.arg(rule);
        }
        let () = setuser.query_async(&mut conn).await.unwrap();
        let url = format!("redis://quiver:s3cret@127.0.0.1:{}", server.port());
        let store = RedisStore::connect(&config(&url, serde_json::json!({})))
            .await
            .unwrap();

        // Records and their export queue, in their own database.
        let records = store.records().unwrap();
        let space = RecordSpace {
            name: "orders".into(),
            key_prefix: "quiver:proj:records:{orders}".into(),
            ttl: Some(Duration::from_secs(60)),
            db: Some(3),
            cache: true,
        };
        records
            .put(
                &space,
                &[PutRecord {
                    id: "o1".into(),
                    payload: b"{}".to_vec(),
                    aliases: vec!["latest".into()],
                }],
            )
            .await
            .unwrap();
        assert_eq!(
            records.get(&space, "latest").await.unwrap(),
            Some(b"{}".to_vec())
        );
        let claimed = records
            .claim(&space, "exporter-1", 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        records.ack(&space, &[claimed[0].position]).await.unwrap();
        assert_eq!(records.stats(&space).await.unwrap().pending, 0);
        assert!(records.delete(&space, "o1").await.unwrap());
        // Locks (stampede protection across servers).
        let locks = store.shared_locks().unwrap();
        let token = locks
            .try_lock("warm", Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert!(
            locks
                .extend("warm", &token, Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert!(locks.unlock("warm", &token).await.unwrap());
        // Health: ping and memory.
        store.ping().await.unwrap();
        assert!(store.memory().await.unwrap().is_some());

        // Outside the rule, Redis refuses: other commands, other keys.
        let mut as_quiver = ::redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        for cmd in [
            ::redis::cmd("FLUSHALL"),
            ::redis::cmd("KEYS").arg("*").clone(),
            ::redis::cmd("CONFIG").arg("GET").arg("*").clone(),
            ::redis::cmd("SET").arg("other:key").arg("1").clone(),
            ::redis::cmd("GET").arg("other:key").clone(),
        ] {
            let err = cmd
                .query_async::<::redis::Value>(&mut as_quiver)
                .await
                .unwrap_err();
            assert!(err.to_string().to_lowercase().contains("noperm"), "{err}");
        }
    }

    #[test]
    fn the_readme_documents_the_acl_rule_quiver_is_tested_under() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap();
        assert!(
            readme.contains(quiver_online::redis::ACL_COMMANDS),
            "README.md must show the ACL rule: {}",
            quiver_online::redis::ACL_COMMANDS
        );
    }
}
