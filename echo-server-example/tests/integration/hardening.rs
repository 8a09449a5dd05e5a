//! The security review's hardening (issue #16): per-account rate limits and the key cap,
//! login throttling by address, failed-authentication limits, slow clients and connection
//! caps, and start-up and `/metrics` settings.

use std::time::{Duration, Instant};

use echo_core::auth::{Quota, RateLimitConfig, TierQuotas};
use echo_server_example::connections::{self, ConnectionLimits};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::harness::{Options, TestServer, experiment_body, send};
use crate::server::assert_problem;

/// A quota whose window is an hour, so refill during a test (one request per minute) cannot
/// blur the counts.
fn hourly(n: u32) -> Quota {
    Quota::new(n, Duration::from_secs(3600)).unwrap()
}

async fn create_key(s: &TestServer, token: &str) -> (StatusCode, serde_json::Value) {
    let (status, h, body) = send(
        s.client
            .post(s.url("/api/v1/auth/api-keys"))
            .bearer_auth(token)
            .json(&json!({"name": "more"})),
    )
    .await;
    if status != StatusCode::CREATED {
        assert_problem(&h, &body, "conflict");
    }
    (status, body)
}

#[tokio::test]
async fn four_keys_and_a_session_of_one_user_share_one_budget() {
    let s = TestServer::start_with(Options {
        rate_limits: RateLimitConfig {
            general: TierQuotas::uniform(hourly(60)),
            ..RateLimitConfig::default()
        },
        ..Options::default()
    })
    .await;
    let a = s.user("quinn@example.com").await; // one authenticated request: its first key
    let mut keys = vec![a.key.clone()];
    for _ in 0..3 {
        let (status, body) = create_key(&s, &a.token).await;
        assert_eq!(status, StatusCode::CREATED);
        keys.push(body["key"].as_str().unwrap().to_owned());
    }
    // 4 requests spent on keys; the remaining 56 are shared by the four keys.
    let mut ok = 0;
    for i in 0..120 {
        let (status, h, body) = send(
            s.client
                .get(s.url("/api/v1/experiments"))
                .header("x-api-key", &keys[i % 4]),
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_problem(&h, &body, "rate-limited");
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        ok += 1;
    }
    assert_eq!(ok, 56, "four keys must share one 60-request budget");
    // Every key, and the user's session, are now refused alike.
    for key in &keys {
        let (status, _, _) = send(
            s.client
                .get(s.url("/api/v1/experiments"))
                .header("x-api-key", key),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .bearer_auth(&a.token),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another user is unaffected.
    let b = s.user("rene@example.com").await;
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-api-key", &b.key),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_second_key_does_not_double_the_experiment_creation_limit() {
    let s = TestServer::start_with(Options {
        rate_limits: RateLimitConfig {
            experiment_creation: TierQuotas::uniform(hourly(2)),
            ..RateLimitConfig::default()
        },
        ..Options::default()
    })
    .await;
    let a = s.user("sam@example.com").await;
    let (_, second) = create_key(&s, &a.token).await;
    let second = second["key"].as_str().unwrap().to_owned();
    let mut body = experiment_body();
    body["iterations"] = json!(1);
    let create = |key: String| {
        send(
            s.client
                .post(s.url("/api/v1/experiments"))
                .header("x-api-key", key)
                .json(&body),
        )
    };
    assert_eq!(create(a.key.clone()).await.0, StatusCode::ACCEPTED);
    assert_eq!(create(a.key.clone()).await.0, StatusCode::ACCEPTED);
    let (status, h, problem) = create(second).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{problem}");
    assert_problem(&h, &problem, "rate-limited");
}

#[tokio::test]
async fn the_26th_active_key_is_refused_naming_the_cap() {
    let s = TestServer::start().await;
    let a = s.user("tess@example.com").await; // key 1
    for i in 2..=25 {
        let (status, body) = create_key(&s, &a.token).await;
        assert_eq!(status, StatusCode::CREATED, "key {i}: {body}");
    }
    let (status, problem) = create_key(&s, &a.token).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("25") && detail.contains("max_api_keys"),
        "{detail}"
    );
    // Revoking one frees a slot.
    let (status, _, _) = send(
        s.client
            .delete(s.url(&format!("/api/v1/auth/api-keys/{}", a.key_id)))
            .bearer_auth(&a.token)
            .header("x-csrf-token", &a.csrf),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(create_key(&s, &a.token).await.0, StatusCode::CREATED);
}

/// The test server's app served again on a listener of its own, within `limits`; cancel the
/// token to shut it down.
async fn serve_within(
    s: &TestServer,
    limits: ConnectionLimits,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = echo_server_example::build_app(s.state.clone());
    let stop = CancellationToken::new();
    let token = stop.clone();
    let handle = tokio::spawn(connections::serve(
        listener,
        app,
        async move { token.cancelled().await },
        limits,
    ));
    (addr, stop, handle)
}

/// Reads until the server closes the connection (EOF or reset); returns what it sent.
async fn read_to_close(stream: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_trickling_headers_is_closed_after_the_header_timeout() {
    let s = TestServer::start().await;
    let (addr, _stop, _) = serve_within(
        &s,
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(2),
            ..ConnectionLimits::default()
        },
    )
    .await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    // One header line a second, for up to a minute: never a complete head.
    let trickle = tokio::spawn(async move {
        write.write_all(b"GET /healthz HTTP/1.1\r\n").await?;
        for i in 0..60 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            write
                .write_all(format!("x-slow-{i}: 1\r\n").as_bytes())
                .await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let closed = tokio::time::timeout(Duration::from_secs(60), read_to_close(&mut read)).await;
    assert!(closed.is_ok(), "the trickling connection was never closed");
    // The timeout is 2 s; 15 s is generous for a loaded machine and far below the minute the
    // client would keep trickling.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "closed only after {:?}",
        started.elapsed()
    );
    trickle.abort();

    // An idle keep-alive connection is closed after the same timeout, once served.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let served = tokio::time::timeout(Duration::from_secs(60), read_to_close(&mut idle))
        .await
        .expect("the idle keep-alive connection was never closed");
    assert!(
        String::from_utf8_lossy(&served).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&served)
    );
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    let s = TestServer::start().await;
    let (addr, stop, handle) = serve_within(
        &s,
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(120),
            max_connections: 2,
        },
    )
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    // Two connections take both slots (an accepted connection is served at once).
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut second = TcpStream::connect(addr).await.unwrap();
    for c in [&mut first, &mut second] {
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
    }
    // A third connects (the kernel's backlog) but is not served while both stay open.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut buf = [0u8; 12];
    let early = tokio::time::timeout(Duration::from_millis(1500), third.read_exact(&mut buf)).await;
    assert!(early.is_err(), "served past the cap");
    // Closing one lets it in.
    drop(first);
    tokio::time::timeout(Duration::from_secs(30), third.read_exact(&mut buf))
        .await
        .expect("not served after a slot freed")
        .unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");

    // Shutdown still drains: the idle keep-alive connection is closed and serve returns.
    stop.cancel();
    let _ = read_to_close(&mut second).await;
    tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .expect("serve did not return after shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let s = TestServer::start().await;
    let (addr, stop, handle) = serve_within(&s, ConnectionLimits::default()).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    // The head arrives, the body is still coming when shutdown starts.
    c.write_all(
        b"POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(200)).await;
    c.write_all(b"}").await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), read_to_close(&mut c))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    tokio::time::timeout(Duration::from_secs(30), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

async fn login_from(s: &TestServer, from: &str, email: &str, password: &str) -> StatusCode {
    let (status, h, body) = send(
        s.client
            .post(s.url("/api/v1/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"email": email, "password": password})),
    )
    .await;
    if status == StatusCode::TOO_MANY_REQUESTS {
        assert_problem(&h, &body, "login-throttled");
        assert!(h.contains_key("retry-after"));
    }
    status
}

#[tokio::test]
async fn a_stranger_failing_from_one_address_does_not_lock_the_owner_out() {
    let mut options = Options::default();
    options.config.security.trust_forwarded_for = true;
    // A long first delay, so a slow machine cannot outwait it between the steps below.
    options.throttle.account_ip.base_delay = Duration::from_secs(3600);
    options.throttle.account_ip.max_delay = Duration::from_secs(3600);
    let s = TestServer::start_with(options).await;
    s.user("uma@example.com").await;
    let stranger = "203.0.113.9";
    for _ in 0..6 {
        assert_eq!(
            login_from(&s, stranger, "uma@example.com", "wrong guess!!").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_from(&s, stranger, "uma@example.com", "correct horse battery").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the stranger's address is throttled"
    );
    assert_eq!(
        login_from(
            &s,
            "198.51.100.20",
            "uma@example.com",
            "correct horse battery"
        )
        .await,
        StatusCode::OK,
        "the owner logs in from another address"
    );
}

#[tokio::test]
async fn guesses_spread_over_addresses_meet_the_per_account_ceiling() {
    let mut options = Options::default();
    options.config.security.trust_forwarded_for = true;
    // A long first delay, so a slow machine cannot outwait it between the steps below.
    options.throttle.account.base_delay = Duration::from_secs(3600);
    options.throttle.account.max_delay = Duration::from_secs(3600);
    let s = TestServer::start_with(options).await;
    s.user("vic@example.com").await;
    // 51 failures, one per address: no address reaches its own 5.
    for i in 0..51 {
        let from = format!("192.0.2.{}", i + 1);
        assert_eq!(
            login_from(&s, &from, "vic@example.com", "wrong guess!!").await,
            StatusCode::UNAUTHORIZED,
            "failure {i}"
        );
    }
    assert_eq!(
        login_from(
            &s,
            "198.51.100.21",
            "vic@example.com",
            "correct horse battery"
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn bad_credentials_from_one_address_are_limited_before_lookup() {
    let mut options = Options::default();
    options.config.security.trust_forwarded_for = true;
    options.config.rate_limits.auth_failures = 5;
    let s = TestServer::start_with(options).await;
    let a = s.user("wes@example.com").await;
    let get = |from: &str, key: &str| {
        send(
            s.client
                .get(s.url("/api/v1/experiments"))
                .header("x-forwarded-for", from)
                .header("x-api-key", key),
        )
    };
    let flooder = "203.0.113.50";
    let bad = "echo1_live_0000000000000000000000000000000000000000";
    for i in 0..5 {
        assert_eq!(get(flooder, bad).await.0, StatusCode::UNAUTHORIZED, "{i}");
    }
    let (status, h, problem) = get(flooder, bad).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_problem(&h, &problem, "rate-limited");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Invalid sessions count too, and are refused the same way.
    let (status, _, _) = send(
        s.client
            .get(s.url("/api/v1/experiments"))
            .header("x-forwarded-for", flooder)
            .bearer_auth("echo1_sess_nope"),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another address is unaffected, with a bad key or a good one.
    assert_eq!(get("198.51.100.50", bad).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get("198.51.100.50", &a.key).await.0, StatusCode::OK);
    // A good key from the limited address is refused too: the check runs before the lookup.
    assert_eq!(get(flooder, &a.key).await.0, StatusCode::TOO_MANY_REQUESTS);
    // Good requests never count: a fresh address making many stays served.
    for _ in 0..10 {
        assert_eq!(get("198.51.100.51", &a.key).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_configured() {
    // Without the setting, /metrics stays open.
    let open = TestServer::start().await;
    assert_eq!(
        send(open.client.get(open.url("/metrics"))).await.0,
        StatusCode::OK
    );

    let mut options = Options::default();
    options.config.security.metrics_token =
        Some(echo_core::secret::Secret::new("scrape-token-0123456789"));
    let s = TestServer::start_with(options).await;
    for (what, auth) in [
        ("missing", None),
        ("wrong", Some("Bearer scrape-token-0123456780")),
        ("prefix", Some("Bearer scrape-token")),
        ("other scheme", Some("Basic scrape-token-0123456789")),
    ] {
        let mut r = s.client.get(s.url("/metrics"));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let (status, h, body) = send(r).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_problem(&h, &body, "unauthenticated");
        assert!(!body.to_string().contains("scrape-token"), "{what}: {body}");
    }
    let (status, _, body) = send(
        s.client
            .get(s.url("/metrics"))
            .bearer_auth("scrape-token-0123456789"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.as_str().unwrap().contains("# TYPE"), "{body}");
}
