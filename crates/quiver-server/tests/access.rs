//! The feature server's own access control against a real server: tokens and scopes (401, 403,
//! open probes, `/metrics` as configured), a token's request rate, and the concurrency bound
//! (429 with `Retry-After`).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use quiver::FeatureStore;
use quiver_server::ServeOptions;
use serde_json::{Value, json};

/// Any well-formed digest, for configuration checks.
const SOME_DIGEST: &str = "5b1e2e5d7c3c7d8bbf5b0f8d5a60e3d9c1a1a2a8f0b7d2f8e3a5c4b6d7e8f901";

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn write_project(dir: &Path, auth: &str) {
    std::fs::create_dir_all(dir.join("features")).unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        dir.join("quiver.yaml"),
        format!("project: locked\nonline_store: {{type: memory}}\nserver:\n{auth}"),
    )
    .unwrap();
    std::fs::write(
        dir.join("features/defs.yaml"),
        r#"
entities: [{name: user, join_keys: [user_id]}]
sources: [{name: s, path: data/s.parquet, timestamp_field: ts}]
feature_views:
  - {name: v, entities: [user], source: s, ttl: 3650d, fields: [{name: n, type: int64}]}
"#,
    )
    .unwrap();
    let batch = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("n", Arc::new(Int64Array::from(vec![7])) as ArrayRef),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from(vec![1_767_225_600_000_000]).with_timezone("UTC"),
            ) as ArrayRef,
        ),
    ])
    .unwrap();
    quiver::offline_io::write_parquet(&dir.join("data/s.parquet"), &batch).unwrap();
}

async fn serve(auth: &str) -> (tempfile::TempDir, common::Running) {
    let dir = tempfile::tempdir().unwrap();
    write_project(dir.path(), auth);
    let mut store = FeatureStore::open(dir.path()).await.unwrap();
    store.apply().await.unwrap();
    let server = common::spawn(store, ServeOptions::default()).await;
    (dir, server)
}

async fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    if let Some(b) = body {
        request = request.json(&b);
    }
    request.send().await.unwrap()
}

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_scopes_guard_every_route_but_the_probes() {
    // (A token from `env:` is tested through `quiver serve` in quiver-cli's tests.)
    let admin = "admin-secret";
    let auth = format!(
        "  auth:\n    metrics: read\n    tokens:\n      - {{name: reader, sha256: {}, scopes: [read]}}\n      - {{name: ops, sha256: {}, scopes: [read, write, admin]}}\n",
        sha256_hex("reader-secret"),
        sha256_hex(admin)
    );
    let (_dir, server) = serve(&auth).await;
    let base = format!("http://{}", server.addr);
    let features = json!({"features": ["v:n"], "entities": {"user_id": [1]}});
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    // The probes answer anyone.
    for probe in ["/livez", "/readyz"] {
        let r = call(&base, get.clone(), probe, None, None).await;
        assert_ne!(r.status().as_u16(), 401, "{probe}");
    }
    // No token, and a wrong token: 401 with the challenge.
    let r = call(
        &base,
        post.clone(),
        "/get-online-features",
        None,
        Some(features.clone()),
    )
    .await;
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer")
    );
    let (status, kind, message) = error_of(r).await;
    assert_eq!(
        (status, kind.as_str()),
        (401, "unauthenticated"),
        "{message}"
    );
    assert!(message.contains("Authorization: Bearer"), "{message}");
    let r = call(
        &base,
        post.clone(),
        "/get-online-features",
        Some("reader-secreT"),
        Some(features.clone()),
    )
    .await;
    let (status, _, message) = error_of(r).await;
    assert_eq!(status, 401, "{message}");
    assert!(
        !message.contains("reader-secreT"),
        "a token never appears in a message"
    );

    // The reader reads, and may not write or administer: 403 naming the token and scope.
    let r = call(
        &base,
        post.clone(),
        "/get-online-features",
        Some("reader-secret"),
        Some(features.clone()),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let write = json!({"feature_view_name": "v", "df": {"user_id": [2], "n": [3], "event_timestamp": ["2026-01-02T00:00:00Z"]}});
    let r = call(
        &base,
        post.clone(),
        "/write-to-online-store",
        Some("reader-secret"),
        Some(write.clone()),
    )
    .await;
    let (status, kind, message) = error_of(r).await;
    assert_eq!((status, kind.as_str()), (403, "permission_denied"));
    assert_eq!(
        message,
        "token `reader` lacks scope `write` for POST /write-to-online-store (it has: read)"
    );
    let r = call(
        &base,
        post.clone(),
        "/materialize",
        Some("reader-secret"),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status().as_u16(), 403);
    // /metrics needs `read` here; the reader has it.
    assert_eq!(
        call(&base, get.clone(), "/metrics", None, None)
            .await
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        call(&base, get.clone(), "/metrics", Some("reader-secret"), None)
            .await
            .status()
            .as_u16(),
        200
    );

    // The ops token does all three.
    let r = call(
        &base,
        post.clone(),
        "/materialize",
        Some(admin),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let r = call(
        &base,
        post.clone(),
        "/write-to-online-store",
        Some(admin),
        Some(write),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    let r = call(
        &base,
        post.clone(),
        "/get-online-features",
        Some(admin),
        Some(json!({"features": ["v:n"], "entities": {"user_id": [1, 2]}})),
    )
    .await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["results"][1]["values"], json!([7, 3]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let auth = format!(
        "  auth:\n    tokens:\n      - {{name: slow, sha256: {}, scopes: [read], rate: 0.2, burst: 2}}\n      - {{name: fast, sha256: {}, scopes: [read]}}\n",
        sha256_hex("slow-secret"),
        sha256_hex("fast-secret")
    );
    let (_dir, server) = serve(&auth).await;
    let base = format!("http://{}", server.addr);
    let get = reqwest::Method::GET;
    for _ in 0..2 {
        let r = call(&base, get.clone(), "/stats", Some("slow-secret"), None).await;
        assert_eq!(r.status().as_u16(), 200);
    }
    let r = call(&base, get.clone(), "/stats", Some("slow-secret"), None).await;
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One request per 5 s: the next is allowed within 5 s.
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    let (status, kind, message) = error_of(r).await;
    assert_eq!((status, kind.as_str()), (429, "resource_exhausted"));
    assert!(message.contains("token `slow`"), "{message}");
    // Another token is not slowed by it.
    for _ in 0..5 {
        let r = call(&base, get.clone(), "/stats", Some("fast-secret"), None).await;
        assert_eq!(r.status().as_u16(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_concurrency_bound_requests_get_429() {
    use axum::routing::get;
    let config: quiver::config::ServerConfig =
        serde_json::from_value(json!({"max_concurrent_requests": 1})).unwrap();
    let access = Arc::new(quiver_server::access::Access::from_config(&config).unwrap());
    let release = Arc::new(tokio::sync::Notify::new());
    let entered = Arc::new(tokio::sync::Notify::new());
    let (r, e) = (release.clone(), entered.clone());
    let app = axum::Router::new()
        .route(
            "/slow",
            get(move || {
                let (r, e) = (r.clone(), e.clone());
                async move {
                    e.notify_one();
                    r.notified().await;
                    "done"
                }
            }),
        )
        .route("/livez", get(|| async { "ok" }))
        .layer(axum::middleware::from_fn_with_state(
            access,
            quiver_server::access::guard,
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let base = format!("http://{addr}");

    let first = tokio::spawn({
        let base = base.clone();
        async move {
            reqwest::get(format!("{base}/slow"))
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    entered.notified().await;
    let second = reqwest::get(format!("{base}/slow")).await.unwrap();
    assert_eq!(second.status().as_u16(), 429);
    assert_eq!(
        second
            .headers()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap(),
        "1"
    );
    // Probes are never turned away.
    assert_eq!(
        reqwest::get(format!("{base}/livez"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        200
    );
    release.notify_one();
    assert_eq!(first.await.unwrap(), 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The permit is back.
    let third = tokio::spawn({
        let base = base.clone();
        async move {
            reqwest::get(format!("{base}/slow"))
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    });
    entered.notified().await;
    release.notify_one();
    assert_eq!(third.await.unwrap(), 200);
}

#[test]
fn misconfigured_tokens_are_named() {
    let from = |v: Value| {
        let config: quiver::config::ServerConfig = serde_json::from_value(v).unwrap();
        quiver_server::access::Access::from_config(&config).err()
    };
    let err =
        from(json!({"auth": {"tokens": [{"name": "a", "sha256": "abc", "scopes": ["read"]}]}}));
    assert!(
        err.unwrap()
            .contains("`server.auth.tokens[0]` (`a`): `sha256` must be 64 hex digits")
    );
    let err = from(
        json!({"auth": {"tokens": [{"name": "b", "env": "QUIVER_TEST_SURELY_UNSET", "scopes": ["read"]}]}}),
    );
    assert!(
        err.unwrap()
            .contains("environment variable `QUIVER_TEST_SURELY_UNSET`")
    );
    let err =
        from(json!({"auth": {"tokens": [{"name": "c", "sha256": SOME_DIGEST, "scopes": []}]}}));
    assert!(err.unwrap().contains("`scopes` is empty"));
    let err = from(
        json!({"auth": {"tokens": [{"name": "d", "sha256": SOME_DIGEST, "scopes": ["read"], "rate": 0}]}}),
    );
    assert!(err.unwrap().contains("`rate` must be a number > 0"));
    let err = from(json!({"auth": {"tokens": []}}));
    assert!(err.unwrap().contains("`server.auth.tokens` is empty"));
    assert!(
        from(json!({"max_concurrent_requests": 0}))
            .unwrap()
            .contains("at least 1")
    );
    assert!(from(json!({})).is_none());
}

/// A minimal HTTPS client over tokio-rustls and hyper, trusting one CA file and optionally
/// presenting a client certificate (reqwest's rustls backend would need a process-wide crypto
/// provider for every other test's client).
struct Https {
    config: Arc<rustls::ClientConfig>,
}

impl Https {
    fn new(ca: &Path, identity: Option<(&Path, &Path)>) -> Https {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_file_iter(cert)
                        .unwrap()
                        .map(Result::unwrap)
                        .collect(),
                    PrivateKeyDer::from_pem_file(key).unwrap(),
                )
                .unwrap(),
        };
        Https {
            config: Arc::new(config),
        }
    }

    /// `GET path` on `addr`: the status and body, or what failed (handshake, certificate).
    async fn get(&self, addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), String> {
        use http_body_util::BodyExt as _;
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        let conn = tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let chain = |e: &dyn std::error::Error| {
            let mut text = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        };
        let response = match sender.send_request(request).await {
            Ok(r) => r,
            // The connection's own error says why (a TLS alert from the server).
            Err(e) => {
                return Err(match conn.await {
                    Ok(Err(conn_err)) => chain(&conn_err),
                    _ => chain(&e),
                });
            }
        };
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_the_servers_certificate_and_refusals_that_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let pki = quiver_test_utils::TestPki::generate(&dir.path().join("pki"));
    // Relative paths resolve from the project directory.
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::rename(&pki.dir, project.join("pki")).unwrap();
    let tls = "  tls: {cert: pki/server.pem, key: pki/server.key}\n";
    write_project(&project, tls);
    let mut store = FeatureStore::open(&project).await.unwrap();
    store.apply().await.unwrap();
    let server = common::spawn(store, ServeOptions::default()).await;
    let good = Https::new(&project.join("pki/ca.pem"), None);

    let (status, body) = good.get(server.addr, "/livez").await.unwrap();
    assert_eq!(status, 200, "{body}");
    // A client that does not trust the issuing CA refuses the server.
    let wrong = Https::new(&project.join("pki/other-ca.pem"), None);
    let err = wrong.get(server.addr, "/livez").await.unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");
    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{}/livez", server.addr))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // ...and the server keeps serving the others.
    let (status, _) = good.get(server.addr, "/livez").await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_server_certificate_is_refused_by_clients() {
    let dir = tempfile::tempdir().unwrap();
    let pki = quiver_test_utils::TestPki::generate(&dir.path().join("pki"));
    let tls = format!(
        "  tls: {{cert: {}, key: {}}}\n",
        pki.expired_cert.display(),
        pki.expired_key.display()
    );
    let (_project, server) = serve(&tls).await;
    let err = Https::new(&pki.ca, None)
        .get(server.addr, "/livez")
        .await
        .unwrap_err();
    assert!(err.contains("certificate expired"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_when_a_client_ca_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let pki = quiver_test_utils::TestPki::generate(&dir.path().join("pki"));
    let tls = |mode: &str| {
        format!(
            "  tls: {{cert: {}, key: {}, client_ca: {}, client_auth: {mode}}}\n",
            pki.server_cert.display(),
            pki.server_key.display(),
            pki.ca.display()
        )
    };
    let with_cert = Https::new(&pki.ca, Some((&pki.client_cert, &pki.client_key)));
    let without = Https::new(&pki.ca, None);
    // A certificate from the right CA, but expired (and made for a server).
    let expired = Https::new(&pki.ca, Some((&pki.expired_cert, &pki.expired_key)));

    let (_project, server) = serve(&tls("required")).await;
    assert_eq!(with_cert.get(server.addr, "/livez").await.unwrap().0, 200);
    let err = without.get(server.addr, "/livez").await.unwrap_err();
    assert!(err.contains("CertificateRequired"), "{err}");
    assert!(expired.get(server.addr, "/livez").await.is_err());
    assert_eq!(with_cert.get(server.addr, "/livez").await.unwrap().0, 200);

    let (_project, server) = serve(&tls("optional")).await;
    assert_eq!(without.get(server.addr, "/livez").await.unwrap().0, 200);
    assert_eq!(with_cert.get(server.addr, "/livez").await.unwrap().0, 200);
    assert!(expired.get(server.addr, "/livez").await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tls_settings_stop_the_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let pki = quiver_test_utils::TestPki::generate(&dir.path().join("pki"));
    let project = dir.path().join("project");
    let cases = [
        (
            format!(
                "  tls: {{cert: missing.pem, key: {}}}\n",
                pki.server_key.display()
            ),
            "server.tls.cert: cannot read PEM certificates from",
        ),
        (
            format!(
                "  tls: {{cert: {}, key: {}}}\n",
                pki.server_cert.display(),
                pki.client_key.display()
            ),
            "do not go together",
        ),
    ];
    for (tls, expected) in cases {
        write_project(&project, &tls);
        let mut store = FeatureStore::open(&project).await.unwrap();
        store.apply().await.unwrap();
        let err = quiver_server::serve_with(
            store,
            "127.0.0.1:0".parse().unwrap(),
            ServeOptions::default(),
            |_| {},
            async {},
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
}
