//! The online store conformance suite: every case is written once, as a generic async fn over a
//! [`Backend`], and run against each store (memory, embedded, Redis) by `conformance_suite!`, and
//! against Redis behind the [`Resilient`] decorator, which must not change any semantics.
//!
//! A backend hands out store handles that write with a given [`RecordCodec`] over shared data,
//! and exposes the raw stored bytes so cases can check the record header a writer chose. Each
//! test gets a fresh backend (a new memory map, a new redb file in a tempdir, a new
//! `redis-server`), and cases also use distinct project names, so tests never see each other.

use std::sync::Arc;
use std::time::Duration;

use quiver_core::status::status_of;
use quiver_core::{Codec, EntityKey, FeatureStatus, KeyValue, Record, RecordCodec, Value};
use quiver_online::config::{EmbeddedConfig, RedisConfig};
use quiver_online::embedded::EmbeddedStore;
use quiver_online::memory::MemoryStore;
use quiver_online::redis::RedisStore;
use quiver_online::{OnlineStore, ResilienceConfig, Resilient, ViewTable, now_ns};
use quiver_test_utils::RedisServer;

/// One store under test.
trait Backend: Send + Sync {
    /// A handle that writes with `codec`, over the same data as every other handle.
    fn handle(&self, codec: RecordCodec) -> Arc<dyn OnlineStore>;
    /// The full storage key of an entity.
    fn key(&self, table: &ViewTable, key: &EntityKey) -> String {
        table.key("quiver", key)
    }
    /// The stored record bytes under a full key.
    async fn raw(&self, key: &str) -> Option<Vec<u8>>;
    /// The backend's own remaining lifetime of a key, where it has one (Redis `PTTL`).
    async fn native_ttl(&self, _key: &str) -> Option<Duration> {
        None
    }
}

struct Memory(MemoryStore);

impl Backend for Memory {
    fn handle(&self, codec: RecordCodec) -> Arc<dyn OnlineStore> {
        Arc::new(self.0.with_codec(codec))
    }
    async fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.0.raw(key)
    }
}

struct Embedded {
    store: EmbeddedStore,
    _dir: tempfile::TempDir,
}

impl Backend for Embedded {
    fn handle(&self, codec: RecordCodec) -> Arc<dyn OnlineStore> {
        Arc::new(self.store.with_codec(codec))
    }
    async fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.store.raw(key).await.expect("raw read")
    }
}

struct Redis {
    store: RedisStore,
    server: RedisServer,
    /// Certificates of a TLS server, kept for its lifetime.
    _pki: Option<tempfile::TempDir>,
}

impl Backend for Redis {
    fn handle(&self, codec: RecordCodec) -> Arc<dyn OnlineStore> {
        Arc::new(self.store.with_codec(codec))
    }
    async fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.store.raw(key).await.expect("raw read")
    }
    async fn native_ttl(&self, key: &str) -> Option<Duration> {
        let client = ::redis::Client::open(self.server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            pttl > 0,
            "key `{key}` has PTTL {pttl}, expected a positive TTL"
        );
        Some(Duration::from_millis(pttl as u64))
    }
}

/// A real Redis Cluster (3 primaries, 3 replicas): the same cases, keys spread over slots.
struct Cluster {
    store: RedisStore,
    cluster: quiver_test_utils::RedisCluster,
}

impl Backend for Cluster {
    fn handle(&self, codec: RecordCodec) -> Arc<dyn OnlineStore> {
        Arc::new(self.store.with_codec(codec))
    }
    async fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.store.raw(key).await.expect("raw read")
    }
    async fn native_ttl(&self, key: &str) -> Option<Duration> {
        let client = ::redis::cluster::ClusterClient::new(self.cluster.urls()).unwrap();
        let mut conn = client.get_async_connection().await.unwrap();
        let pttl: i64 = ::redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(pttl > 0, "key `{key}` has PTTL {pttl}");
        Some(Duration::from_millis(pttl as u64))
    }
}

async fn redis_cluster() -> Cluster {
    let cluster = quiver_test_utils::RedisCluster::start(2000);
    let config: RedisConfig =
        serde_json::from_value(serde_json::json!({ "nodes": cluster.urls() })).unwrap();
    let store = RedisStore::connect(&config).await.unwrap();
    Cluster { store, cluster }
}

/// Redis behind [`Resilient`]: each handle is wrapped (one breaker per handle, as the facade
/// would have one per store).
struct ResilientRedis(Redis);

impl Backend for ResilientRedis {
    fn handle(&self, codec: RecordCodec) -> Arc<dyn OnlineStore> {
        // A generous timeout: these cases check semantics, not latency, on a noisy machine.
        let config = ResilienceConfig {
            timeout: Duration::from_secs(5),
            ..ResilienceConfig::default()
        };
        Arc::new(Resilient::new(self.0.store.with_codec(codec), config).unwrap())
    }
    async fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.0.raw(key).await
    }
    async fn native_ttl(&self, key: &str) -> Option<Duration> {
        self.0.native_ttl(key).await
    }
}

async fn memory() -> Memory {
    Memory(MemoryStore::new(RecordCodec::default()))
}

async fn embedded() -> Embedded {
    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        path: "state/online.redb".into(),
        ..EmbeddedConfig::default()
    };
    let store = EmbeddedStore::open(&config, dir.path()).await.unwrap();
    Embedded { store, _dir: dir }
}

async fn redis() -> Redis {
    let server = RedisServer::start();
    let config = redis_config(&server.url());
    let store = RedisStore::connect(&config).await.unwrap();
    Redis {
        store,
        server,
        _pki: None,
    }
}

async fn resilient_redis() -> ResilientRedis {
    ResilientRedis(redis().await)
}

/// Redis over TLS with mutual authentication: the server verified against the test CA, the
/// store presenting a client certificate the server requires.
async fn redis_tls() -> Redis {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = quiver_test_utils::TestPki::generate(pki_dir.path());
    let server = RedisServer::start_tls(&pki.server_cert, &pki.server_key, &pki.ca, true);
    let config: RedisConfig = serde_json::from_value(serde_json::json!({
        "url": server.tls_url(),
        "tls": {"ca_file": pki.ca, "cert_file": pki.client_cert, "key_file": pki.client_key},
    }))
    .unwrap();
    let store = RedisStore::connect(&config).await.unwrap();
    Redis {
        store,
        server,
        _pki: Some(pki_dir),
    }
}

/// Redis under the least-privilege ACL user the README documents.
async fn redis_acl() -> Redis {
    let server = RedisServer::start();
    create_acl_user(&server.url(), "quiver", "s3cret").await;
    let url = format!("redis://quiver:s3cret@127.0.0.1:{}", server.port());
    let store = RedisStore::connect(&redis_config(&url)).await.unwrap();
    Redis {
        store,
        server,
        _pki: None,
    }
}

/// `ACL SETUSER` with exactly [`quiver_online::redis::ACL_COMMANDS`], through the admin (default)
/// user.
pub async fn create_acl_user(admin_url: &str, user: &str, password: &str) {
    let client = ::redis::Client::open(admin_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = ::redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(user)
        .arg("on")
        .arg(format!(">{password}"))
        .arg("resetkeys")
        .arg("~quiver:*")
        .arg("resetchannels")
        .arg("-@all");
    for rule in quiver_online::redis::ACL_COMMANDS.split_whitespace() {
        cmd.arg(rule);
    }
    let () = cmd.query_async(&mut conn).await.unwrap();
}

fn redis_config(url: &str) -> RedisConfig {
    serde_json::from_value(serde_json::json!({ "url": url })).unwrap()
}

/// Generates one `#[tokio::test]` per case for a backend.
macro_rules! conformance_suite {
    ($backend:ident, $setup:path) => {
        conformance_suite!(@cases $backend, $setup, [
            write_then_read,
            batch_keeps_request_order,
            missing_keys_are_none,
            records_expire_after_ttl,
            old_events_read_as_outside_max_age,
            newer_wins,
            codecs_read_each_other,
            large_payloads_are_compressed,
            large_values_round_trip,
            string_keys_with_special_characters,
            multi_column_keys,
            delete_table_removes_one_view_version,
            delete_removes_the_given_entities,
            table_sizes_count_each_view_version,
        ]);
    };
    (@cases $backend:ident, $setup:path, [$($case:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $case() {
                    let backend = $setup().await;
                    super::cases::$case(&backend).await;
                }
            )*
        }
    };
}

conformance_suite!(memory, super::memory);
conformance_suite!(embedded, super::embedded);
conformance_suite!(redis, super::redis);
conformance_suite!(resilient_redis, super::resilient_redis);
conformance_suite!(redis_tls, super::redis_tls);
conformance_suite!(redis_acl, super::redis_acl);
conformance_suite!(redis_cluster, super::redis_cluster);

mod cases {
    use super::*;

    fn ty(s: &str) -> quiver_core::ValueType {
        s.parse().unwrap()
    }

    /// A view with an int64, a string and a float64 field.
    fn table(project: &str, ttl: Option<Duration>) -> ViewTable {
        ViewTable {
            project: project.into(),
            view: "user_profile".into(),
            version: 1,
            types: vec![ty("int64"), ty("string"), ty("float64")].into(),
            ttl,
        }
    }

    fn rec(event_ts: i64, created_ts: Option<i64>, n: i64) -> Record {
        Record {
            event_ts,
            created_ts,
            values: vec![Value::Int64(n), Value::String(format!("v{n}")), Value::Null],
        }
    }

    fn int(k: i64) -> EntityKey {
        EntityKey::single(KeyValue::Int(k))
    }

    fn string(k: &str) -> EntityKey {
        EntityKey::single(KeyValue::Str(k.into()))
    }

    fn codec(codec: Codec) -> RecordCodec {
        RecordCodec {
            codec,
            ..RecordCodec::default()
        }
    }

    fn default_handle(b: &impl Backend) -> Arc<dyn OnlineStore> {
        b.handle(RecordCodec::default())
    }

    /// The `n` field of each read record, `None` for misses.
    fn ns(records: &[Option<Record>]) -> Vec<Option<i64>> {
        records
            .iter()
            .map(|r| {
                r.as_ref().map(|r| match r.values[0] {
                    Value::Int64(n) => n,
                    ref other => panic!("unexpected value {other:?}"),
                })
            })
            .collect()
    }

    pub async fn write_then_read(b: &impl Backend) {
        let store = default_handle(b);
        let t = table("write_read", None);
        let now = now_ns();
        let rows = vec![
            (int(1), rec(now, Some(now + 5), 10)),
            (int(2), rec(now - 1, None, 20)),
        ];
        let summary = store.write(&t, &rows).await.unwrap();
        assert_eq!(summary.written, 2);
        assert_eq!(summary.skipped_older, 0);
        let got = store.read(&t, &[int(1), int(2)]).await.unwrap();
        assert_eq!(got, vec![Some(rows[0].1.clone()), Some(rows[1].1.clone())]);
        // The same entity under another view version is a different record.
        let v2 = ViewTable {
            version: 2,
            ..t.clone()
        };
        assert_eq!(store.read(&v2, &[int(1)]).await.unwrap(), vec![None]);
        assert!(store.ping().await.is_ok());
    }

    pub async fn batch_keeps_request_order(b: &impl Backend) {
        let store = default_handle(b);
        let t = table("order", None);
        let rows: Vec<_> = [1, 3, 5]
            .iter()
            .map(|&k| (int(k), rec(1, None, k)))
            .collect();
        store.write(&t, &rows).await.unwrap();
        let got = store
            .read(&t, &[int(5), int(2), int(1), int(4), int(3), int(5)])
            .await
            .unwrap();
        assert_eq!(
            ns(&got),
            vec![Some(5), None, Some(1), None, Some(3), Some(5)]
        );
    }

    pub async fn missing_keys_are_none(b: &impl Backend) {
        let store = default_handle(b);
        let t = table("missing", None);
        assert_eq!(
            store.read(&t, &[int(7), string("x")]).await.unwrap(),
            vec![None, None]
        );
        assert!(store.read(&t, &[]).await.unwrap().is_empty());
    }

    pub async fn records_expire_after_ttl(b: &impl Backend) {
        let store = default_handle(b);
        let ttl = Duration::from_millis(1000);
        let t = table("ttl", Some(ttl));
        let forever = table("ttl_none", None);
        let now = now_ns();
        store
            .write(&t, &[(int(1), rec(now, None, 1))])
            .await
            .unwrap();
        store
            .write(&forever, &[(int(1), rec(now, None, 1))])
            .await
            .unwrap();
        assert_eq!(ns(&store.read(&t, &[int(1)]).await.unwrap()), vec![Some(1)]);
        if let Some(left) = b.native_ttl(&b.key(&t, &int(1))).await {
            assert!(
                left <= ttl,
                "remaining TTL {left:?} exceeds the view's {ttl:?}"
            );
        }

        tokio::time::sleep(ttl + Duration::from_millis(300)).await;
        assert_eq!(store.read(&t, &[int(1)]).await.unwrap(), vec![None]);
        assert_eq!(
            ns(&store.read(&forever, &[int(1)]).await.unwrap()),
            vec![Some(1)],
            "a view without TTL never expires"
        );
        // An expired record no longer counts for "newer wins": an older event may be written.
        let summary = store
            .write(&t, &[(int(1), rec(now - 1_000, None, 2))])
            .await
            .unwrap();
        assert_eq!(summary.written, 1);
        assert_eq!(ns(&store.read(&t, &[int(1)]).await.unwrap()), vec![Some(2)]);
    }

    pub async fn old_events_read_as_outside_max_age(b: &impl Backend) {
        let store = default_handle(b);
        let ttl = Some(Duration::from_secs(3600));
        let t = table("max_age", ttl);
        let now = now_ns();
        let two_hours = 2 * 3600 * 1_000_000_000;
        store
            .write(
                &t,
                &[
                    (int(1), rec(now - two_hours, None, 1)),
                    (int(2), rec(now, None, 2)),
                ],
            )
            .await
            .unwrap();
        let got = store.read(&t, &[int(1), int(2), int(3)]).await.unwrap();
        // The store expires by write time, so the old event is still there; serving reports it.
        assert_eq!(ns(&got), vec![Some(1), Some(2), None]);
        let now = now_ns();
        assert_eq!(
            status_of(got[0].as_ref(), 0, ttl, now),
            FeatureStatus::OutsideMaxAge
        );
        assert_eq!(
            status_of(got[1].as_ref(), 0, ttl, now),
            FeatureStatus::Present
        );
        assert_eq!(
            status_of(got[1].as_ref(), 2, ttl, now),
            FeatureStatus::NullValue
        );
        assert_eq!(
            status_of(got[2].as_ref(), 0, ttl, now),
            FeatureStatus::NotFound
        );
    }

    pub async fn newer_wins(b: &impl Backend) {
        let store = default_handle(b);
        let t = table("newer_wins", None);
        let read_n = async |k: i64| ns(&store.read(&t, &[int(k)]).await.unwrap())[0];

        // An older event never replaces a newer one.
        let s = store
            .write(&t, &[(int(1), rec(100, None, 1))])
            .await
            .unwrap();
        assert_eq!((s.written, s.skipped_older), (1, 0));
        let s = store
            .write(&t, &[(int(1), rec(50, None, 2))])
            .await
            .unwrap();
        assert_eq!((s.written, s.skipped_older), (0, 1));
        assert_eq!(read_n(1).await, Some(1));

        // Equal timestamps overwrite (a re-materialization with corrected values).
        let s = store
            .write(&t, &[(int(1), rec(100, None, 3))])
            .await
            .unwrap();
        assert_eq!(s.written, 1);
        assert_eq!(read_n(1).await, Some(3));

        // The created time breaks ties between equal event times; absent sorts first.
        store
            .write(&t, &[(int(2), rec(100, Some(5), 1))])
            .await
            .unwrap();
        let s = store
            .write(&t, &[(int(2), rec(100, Some(3), 2))])
            .await
            .unwrap();
        assert_eq!(s.skipped_older, 1);
        let s = store
            .write(&t, &[(int(2), rec(100, None, 3))])
            .await
            .unwrap();
        assert_eq!(s.skipped_older, 1);
        assert_eq!(read_n(2).await, Some(1));
        let s = store
            .write(&t, &[(int(2), rec(100, Some(7), 4))])
            .await
            .unwrap();
        assert_eq!(s.written, 1);
        assert_eq!(read_n(2).await, Some(4));

        // Timestamps before 1970 order correctly too: across the sign, the encoded bytes go
        // from 0x7f.. to 0x80.., which a signed or locale-aware comparison would get wrong.
        store
            .write(&t, &[(int(3), rec(-1, None, 1))])
            .await
            .unwrap();
        let s = store.write(&t, &[(int(3), rec(1, None, 2))]).await.unwrap();
        assert_eq!(s.written, 1);
        let s = store
            .write(&t, &[(int(3), rec(-2_000_000_000, None, 3))])
            .await
            .unwrap();
        assert_eq!(s.skipped_older, 1);
        assert_eq!(read_n(3).await, Some(2));

        // Within one batch, rows apply in order.
        let s = store
            .write(
                &t,
                &[
                    (int(4), rec(10, None, 1)),
                    (int(4), rec(5, None, 2)),
                    (int(5), rec(1, None, 3)),
                ],
            )
            .await
            .unwrap();
        assert_eq!((s.written, s.skipped_older), (2, 1));
        assert_eq!(read_n(4).await, Some(1));
    }

    pub async fn codecs_read_each_other(b: &impl Backend) {
        let json = b.handle(codec(Codec::Json));
        let msgpack = b.handle(codec(Codec::MessagePack));
        let t = table("codecs", None);
        let a = rec(1, Some(2), 1);
        let bb = Record {
            values: vec![
                Value::Int64(2),
                Value::String("ü".into()),
                Value::Float64(0.1),
            ],
            ..rec(3, None, 2)
        };
        json.write(&t, &[(int(1), a.clone())]).await.unwrap();
        msgpack.write(&t, &[(int(2), bb.clone())]).await.unwrap();

        let codec_bits = |raw: Option<Vec<u8>>| raw.expect("stored")[0] & 0b11;
        assert_eq!(codec_bits(b.raw(&b.key(&t, &int(1))).await), 1, "json");
        assert_eq!(codec_bits(b.raw(&b.key(&t, &int(2))).await), 0, "msgpack");

        let both = [int(1), int(2)];
        let expected = vec![Some(a), Some(bb)];
        assert_eq!(msgpack.read(&t, &both).await.unwrap(), expected);
        assert_eq!(json.read(&t, &both).await.unwrap(), expected);
    }

    pub async fn large_payloads_are_compressed(b: &impl Backend) {
        let small_threshold = b.handle(RecordCodec {
            compression_threshold: 64,
            ..RecordCodec::default()
        });
        let never = b.handle(RecordCodec {
            compression_threshold: usize::MAX,
            ..RecordCodec::default()
        });
        let t = table("compression", None);
        let r = Record {
            values: vec![
                Value::Int64(1),
                Value::String("abc".repeat(2000)),
                Value::Null,
            ],
            ..rec(1, None, 1)
        };
        small_threshold
            .write(&t, &[(int(1), r.clone())])
            .await
            .unwrap();
        never.write(&t, &[(int(2), r.clone())]).await.unwrap();

        let compressed = b.raw(&b.key(&t, &int(1))).await.unwrap();
        let plain = b.raw(&b.key(&t, &int(2))).await.unwrap();
        assert_eq!((compressed[0] >> 2) & 0b11, 1, "zstd bit set");
        assert_eq!((plain[0] >> 2) & 0b11, 0, "zstd bit clear");
        assert!(compressed.len() < 500, "{} bytes", compressed.len());
        assert!(plain.len() > 6000, "{} bytes", plain.len());
        // Either handle reads both.
        let got = never.read(&t, &[int(1), int(2)]).await.unwrap();
        assert_eq!(got, vec![Some(r.clone()), Some(r)]);
    }

    pub async fn large_values_round_trip(b: &impl Backend) {
        let t = ViewTable {
            project: "large".into(),
            view: "embeddings".into(),
            version: 3,
            types: vec![ty("list<float32>"), ty("string")].into(),
            ttl: Some(Duration::from_secs(600)),
        };
        // Values that do not compress away, so the full size reaches the store.
        let vector: Vec<f32> = (0..384)
            .map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5)
            .collect();
        let text: String = (0..100_000u32)
            .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
            .collect();
        let r = Record {
            event_ts: now_ns(),
            created_ts: None,
            values: vec![Value::Float32List(vector), Value::String(text)],
        };
        for c in [Codec::MessagePack, Codec::Json] {
            let store = b.handle(codec(c));
            store.write(&t, &[(int(9), r.clone())]).await.unwrap();
            assert_eq!(
                store.read(&t, &[int(9)]).await.unwrap(),
                vec![Some(r.clone())],
                "{c:?}"
            );
        }
    }

    pub async fn string_keys_with_special_characters(b: &impl Backend) {
        let store = default_handle(b);
        let t = table("special_keys", None);
        let keys = [
            "a:b",
            "with space",
            "ünïcödé ✓",
            "*glob?[x]\\",
            "",
            "#hash",
            "%41",
            "A",
            "{tag}",
            "line\nbreak",
        ];
        let long = "k".repeat(500);
        let mut entity_keys: Vec<EntityKey> = keys.iter().map(|k| string(k)).collect();
        entity_keys.push(string(&long));
        let rows: Vec<_> = entity_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), rec(1, None, i as i64)))
            .collect();
        let s = store.write(&t, &rows).await.unwrap();
        assert_eq!(s.written, rows.len());
        let got = store.read(&t, &entity_keys).await.unwrap();
        let expected: Vec<_> = (0..rows.len() as i64).map(Some).collect();
        assert_eq!(ns(&got), expected);
        // The raw key stays readable and free of separators, globs and hash tags.
        let raw_key = b.key(&t, &string("a:b"));
        assert_eq!(raw_key, "quiver:special_keys:user_profile:v1:a%3Ab");
        assert!(b.raw(&raw_key).await.is_some());
    }

    pub async fn multi_column_keys(b: &impl Backend) {
        let store = default_handle(b);
        let t = table("multi_keys", None);
        let key = |n: i64, s: &str| EntityKey(vec![KeyValue::Int(n), KeyValue::Str(s.into())]);
        let entity_keys = [
            key(1, "a"),
            key(1, "b"),
            key(2, "a"),
            key(12, ""),
            key(1, "2:"),
        ];
        let rows: Vec<_> = entity_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), rec(1, None, i as i64)))
            .collect();
        store.write(&t, &rows).await.unwrap();
        let mut query = entity_keys.to_vec();
        query.push(key(2, "b"));
        let got = store.read(&t, &query).await.unwrap();
        assert_eq!(
            ns(&got),
            vec![Some(0), Some(1), Some(2), Some(3), Some(4), None]
        );
        assert!(b.raw(&b.key(&t, &key(1, "b"))).await.is_some());
        assert_eq!(
            b.key(&t, &key(1, "b")),
            "quiver:multi_keys:user_profile:v1:1:b"
        );
    }

    pub async fn delete_table_removes_one_view_version(b: &impl Backend) {
        let store = default_handle(b);
        let v1 = table("delete", None);
        // Neighbours whose key prefixes share the target's text: another version with the same
        // leading digit, and a view whose name extends the target's.
        let v10 = ViewTable {
            version: 10,
            ..v1.clone()
        };
        let other_view = ViewTable {
            view: "user_profile_x".into(),
            ..v1.clone()
        };
        let keys: Vec<EntityKey> = (0..25).map(int).collect();
        let rows: Vec<_> = keys.iter().map(|k| (k.clone(), rec(1, None, 1))).collect();
        for t in [&v1, &v10, &other_view] {
            store.write(t, &rows).await.unwrap();
        }
        assert_eq!(store.delete_table(&v1).await.unwrap(), 25);
        assert!(
            store
                .read(&v1, &keys)
                .await
                .unwrap()
                .iter()
                .all(Option::is_none)
        );
        assert!(
            store
                .read(&v10, &keys)
                .await
                .unwrap()
                .iter()
                .all(Option::is_some)
        );
        assert!(
            store
                .read(&other_view, &keys)
                .await
                .unwrap()
                .iter()
                .all(Option::is_some)
        );
        assert_eq!(store.delete_table(&v1).await.unwrap(), 0);
    }

    pub async fn delete_removes_the_given_entities(b: &impl Backend) {
        let store = default_handle(b);
        let t = table("invalidate", None);
        let keys: Vec<EntityKey> = (0..10).map(int).collect();
        let rows: Vec<_> = keys.iter().map(|k| (k.clone(), rec(1, None, 1))).collect();
        store.write(&t, &rows).await.unwrap();
        // Two stored keys and one never written: two records went.
        let gone = [int(3), int(7), int(99)];
        assert_eq!(store.delete(&t, &gone).await.unwrap(), 2);
        let read = store.read(&t, &keys).await.unwrap();
        for (i, r) in read.iter().enumerate() {
            assert_eq!(r.is_none(), i == 3 || i == 7, "key {i}: {r:?}");
        }
        assert_eq!(store.delete(&t, &gone).await.unwrap(), 0);
    }

    pub async fn table_sizes_count_each_view_version(b: &impl Backend) {
        let store = default_handle(b);
        let v1 = table("sizes", None);
        let v2 = ViewTable {
            version: 2,
            ..v1.clone()
        };
        let other = ViewTable {
            view: "orders".into(),
            ..v1.clone()
        };
        // Another project's records are not counted.
        let elsewhere = table("sizes_other", None);
        let rows = |n: i64| -> Vec<(EntityKey, Record)> {
            (0..n).map(|k| (int(k), rec(1, None, k))).collect()
        };
        store.write(&v1, &rows(7)).await.unwrap();
        store.write(&v2, &rows(3)).await.unwrap();
        store.write(&other, &rows(5)).await.unwrap();
        store.write(&elsewhere, &rows(4)).await.unwrap();
        let sizes = store.table_sizes("sizes").await.unwrap();
        let counts: Vec<(&str, u32, u64)> = sizes
            .iter()
            .map(|s| (s.view.as_str(), s.version, s.keys))
            .collect();
        assert_eq!(
            counts,
            [
                ("orders", 1, 5),
                ("user_profile", 1, 7),
                ("user_profile", 2, 3)
            ]
        );
        assert!(sizes.iter().all(|s| s.bytes > 0), "{sizes:?}");
    }
}
