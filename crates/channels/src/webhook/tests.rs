//! Delivery against a small HTTP/1.1 server on 127.0.0.1, written by hand on a TcpListener.

use std::net::Ipv4Addr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;

const SECRET: &str = "whsec-test-0123456789";

fn local_only() -> AddressPolicy {
    AddressPolicy::new(false, ["127.0.0.1"]).unwrap()
}

fn client(policy: AddressPolicy) -> WebhookClient {
    WebhookClient::new(policy, Timeouts::default()).unwrap()
}

fn request(url: &str) -> WebhookRequest {
    WebhookRequest {
        url: url.to_owned(),
        body: r#"{"event":"deal.won","deal":{"id":42}}"#.to_owned(),
        secret: Some(WebhookSecret::new(SECRET)),
        delivery_id: "dlv_01".to_owned(),
        idempotency_key: "run-7:step-2".to_owned(),
    }
}

/// The URL and literal-address checks that run before any connection.
fn precheck(policy: AddressPolicy, raw: &str) -> Result<(), DeliveryError> {
    let client = client(policy);
    client.check_ip_host(&webhook_url(raw)?)
}

fn response(status: &str, headers: &[&str], body: &str) -> String {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for header in headers {
        out.push_str(header);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()));
    out
}

struct Received {
    head: String,
    body: Vec<u8>,
}

impl Received {
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// A listener on 127.0.0.1 and its base URL (`http://127.0.0.1:<port>`).
async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// Answers one connection per response, in order, and reports each request it read.
fn serve(listener: TcpListener, responses: Vec<String>) -> mpsc::UnboundedReceiver<Received> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for answer in responses {
            let (mut stream, _) = listener.accept().await.unwrap();
            let received = read_request(&mut stream).await;
            stream.write_all(answer.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
            let _ = tx.send(received);
        }
    });
    rx
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Received {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the request head ended");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut received = Received { head, body: Vec::new() };
    let length: usize = received.header("content-length").map_or(0, |v| v.parse().unwrap());
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the body ended");
        buf.extend_from_slice(&chunk[..n]);
    }
    received.body = buf[head_end..head_end + length].to_vec();
    received
}

#[test]
fn url_crate_normalises_every_ipv4_spelling() {
    for raw in [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f.1/",
        "http://0x7F.0.0.1/",
        "http://127.0.0.1./",
        "http://%31%32%37.0.0.1/",
    ] {
        let url = Url::parse(raw).unwrap();
        assert_eq!(url.host(), Some(Host::Ipv4(Ipv4Addr::LOCALHOST)), "{raw}");
    }
    let url = Url::parse("http://[::ffff:127.0.0.1]/").unwrap();
    assert_eq!(url.host(), Some(Host::Ipv6("::ffff:127.0.0.1".parse().unwrap())));
    assert_eq!(Url::parse("http://LocalHost./").unwrap().host_str(), Some("localhost."));
}

#[test]
fn every_ip_spelling_is_refused_by_default_and_allowed_by_the_policy() {
    let spellings = [
        "http://127.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f.1/",
        "http://127.0.0.1.:8080/hook",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::127.0.0.1]/",
        "http://[2002:7f00:1::1]/",
    ];
    for raw in spellings {
        let error = precheck(AddressPolicy::default(), raw).unwrap_err();
        let DeliveryError::Refused { message } = &error else { panic!("{raw}: {error:?}") };
        assert!(message.contains("loopback") && message.contains("allow_hosts"), "{raw}: {message}");
        precheck(local_only(), raw).unwrap_or_else(|e| panic!("{raw} with 127.0.0.1 allowed: {e}"));
        precheck(AddressPolicy::new(true, [""; 0]).unwrap(), raw).unwrap();
    }
    for (raw, opens) in [
        ("http://[::1]/", "::1"),
        ("http://10.0.0.5/", "10.0.0.0/8"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://100.64.1.1/", "100.64.0.0/10"),
        ("http://0.0.0.0/", "0.0.0.0"),
        ("http://255.255.255.255/", "255.255.255.255"),
        ("http://224.0.0.1/", "224.0.0.0/4"),
        ("http://192.0.2.1/", "192.0.2.0/24"),
        ("http://[fc00::1]/", "fc00::/7"),
        ("http://[fe80::1]/", "fe80::/10"),
        ("http://[::ffff:10.1.2.3]/", "10.1.2.3"),
    ] {
        assert!(matches!(precheck(AddressPolicy::default(), raw), Err(DeliveryError::Refused { .. })), "{raw}");
        precheck(AddressPolicy::new(false, [opens]).unwrap(), raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
    }
    for public in ["http://93.184.215.14/", "https://[2606:4700::1111]/", "http://example.com/"] {
        precheck(AddressPolicy::default(), public).unwrap();
    }
}

#[test]
fn only_credential_free_http_urls_are_called() {
    for (raw, expect) in [
        ("ftp://example.com/", "not an http:// or https:// URL"),
        ("file:///etc/passwd", "not an http:// or https:// URL"),
        ("javascript:alert(1)", "not an http:// or https:// URL"),
        ("/relative", "not a valid URL"),
        ("http://user:hunter2@example.com/", "user name or password"),
        ("http://user@example.com/", "user name or password"),
    ] {
        let error = precheck(AddressPolicy::default(), raw).unwrap_err();
        let DeliveryError::Refused { message } = &error else { panic!("{raw}: {error:?}") };
        assert!(message.contains(expect), "{raw}: {message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}

#[tokio::test]
async fn delivers_a_signed_request() {
    let (listener, base) = listen().await;
    let mut received = serve(listener, vec![response("204 No Content", &[], "")]);
    let req = request(&format!("{base}/hooks/rapport"));

    let delivered = client(local_only()).deliver(&req).await.unwrap();
    assert_eq!(delivered, Delivered { status: 204, redirects: 0 });

    let got = received.recv().await.unwrap();
    assert_eq!(got.request_line(), "POST /hooks/rapport HTTP/1.1");
    assert_eq!(got.body, req.body.as_bytes());
    assert_eq!(got.header("idempotency-key"), Some("run-7:step-2"));
    assert_eq!(got.header("rapport-delivery"), Some("dlv_01"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("user-agent"), Some("Rapport-Webhook/1"));
    let signature = got.header("rapport-signature").expect("signed");
    let secret = WebhookSecret::new(SECRET);
    let minute = Duration::from_secs(60);
    assert!(verify_signature(&secret, signature, &got.body, SystemTime::now(), minute), "{signature}");
    assert!(!verify_signature(&WebhookSecret::new("wrong"), signature, &got.body, SystemTime::now(), minute));
}

#[tokio::test]
async fn unsigned_request_has_no_signature() {
    let (listener, base) = listen().await;
    let mut received = serve(listener, vec![response("200 OK", &[], "ok")]);
    let req = WebhookRequest { secret: None, ..request(&base) };
    client(local_only()).deliver(&req).await.unwrap();
    assert_eq!(received.recv().await.unwrap().header("rapport-signature"), None);
}

#[tokio::test]
async fn odd_ip_spellings_connect_when_allowed() {
    let (listener, _) = listen().await;
    let port = listener.local_addr().unwrap().port();
    let _received = serve(listener, vec![response("200 OK", &[], ""), response("200 OK", &[], "")]);
    for url in [format!("http://2130706433:{port}/"), format!("http://0x7f.1:{port}/")] {
        assert_eq!(client(local_only()).deliver(&request(&url)).await.unwrap().status, 200, "{url}");
    }
}

#[tokio::test]
async fn names_resolving_to_loopback_are_refused_unless_allowed() {
    let (listener, _) = listen().await;
    let port = listener.local_addr().unwrap().port();
    for host in ["localhost", "localhost.", "LOCALHOST", "hooks.localhost"] {
        let url = format!("http://{host}:{port}/");
        let error = client(AddressPolicy::default()).deliver(&request(&url)).await.unwrap_err();
        let DeliveryError::Refused { message } = &error else { panic!("{url}: {error:?}") };
        assert!(message.contains("resolves to 127.0.0.1, a loopback address; allow it in"), "{message}");
    }
    let mut received = serve(listener, vec![response("200 OK", &[], "")]);
    let allowed = AddressPolicy::new(false, ["localhost"]).unwrap();
    let delivered = client(allowed).deliver(&request(&format!("http://localhost.:{port}/"))).await.unwrap();
    assert_eq!(delivered.status, 200);
    assert!(received.recv().await.is_some());
}

#[tokio::test]
async fn redirect_to_a_private_address_is_refused() {
    let (listener, base) = listen().await;
    let mut received = serve(listener, vec![response("302 Found", &["Location: http://10.1.2.3/internal"], "")]);
    let error = client(local_only()).deliver(&request(&base)).await.unwrap_err();
    let DeliveryError::Refused { message } = &error else { panic!("{error:?}") };
    assert!(message.contains("http://10.1.2.3/internal points at 10.1.2.3, a private address"), "{message}");
    assert!(message.contains("1 redirect(s) from"), "{message}");
    assert!(received.recv().await.is_some());
    assert!(received.recv().await.is_none(), "only the first server was called");
}

#[tokio::test]
async fn redirect_to_another_scheme_is_refused() {
    let (listener, base) = listen().await;
    let _received = serve(listener, vec![response("308 Permanent Redirect", &["Location: ftp://example.com/"], "")]);
    let error = client(local_only()).deliver(&request(&base)).await.unwrap_err();
    assert!(matches!(error, DeliveryError::Refused { .. }), "{error:?}");
}

#[tokio::test]
async fn every_redirect_reposts_the_same_body() {
    let (listener, base) = listen().await;
    let mut received = serve(
        listener,
        vec![
            response("303 See Other", &["Location: /moved"], ""),
            response("301 Moved Permanently", &[&format!("Location: {base}/final")], ""),
            response("200 OK", &[], ""),
        ],
    );
    let req = request(&format!("{base}/old"));
    let delivered = client(local_only()).deliver(&req).await.unwrap();
    assert_eq!(delivered, Delivered { status: 200, redirects: 2 });
    for path in ["/old", "/moved", "/final"] {
        let got = received.recv().await.unwrap();
        assert_eq!(got.request_line(), format!("POST {path} HTTP/1.1"));
        assert_eq!(got.body, req.body.as_bytes());
        assert_eq!(got.header("idempotency-key"), Some("run-7:step-2"));
    }
}

#[tokio::test]
async fn too_many_redirects_is_permanent() {
    let (listener, base) = listen().await;
    let loops = (0..=MAX_REDIRECTS).map(|_| response("307 Temporary Redirect", &["Location: /again"], "")).collect();
    let _received = serve(listener, loops);
    let error = client(local_only()).deliver(&request(&base)).await.unwrap_err();
    let DeliveryError::Permanent { message, .. } = &error else { panic!("{error:?}") };
    assert!(message.contains("redirected more than 5 times"), "{message}");
}

async fn answer(status: &str, headers: &[&str], body: &str) -> DeliveryError {
    let (listener, base) = listen().await;
    let _received = serve(listener, vec![response(status, headers, body)]);
    client(local_only()).deliver(&request(&base)).await.unwrap_err()
}

#[tokio::test]
async fn server_errors_are_temporary_and_client_errors_permanent() {
    let error = answer("500 Internal Server Error", &[], "database\n  is down").await;
    let DeliveryError::Temporary { status: Some(500), retry_after: None, message } = &error else { panic!("{error:?}") };
    assert!(message.ends_with("answered 500 Internal Server Error: database is down"), "{message}");

    let error = answer("404 Not Found", &[], "").await;
    assert!(matches!(error, DeliveryError::Permanent { status: Some(404), .. }), "{error:?}");

    let error = answer("429 Too Many Requests", &["Retry-After: 7"], "slow down").await;
    assert!(error.to_string().contains("retry after 7 s"), "{error}");
    assert!(
        matches!(error, DeliveryError::Temporary { status: Some(429), retry_after: Some(d), .. } if d == Duration::from_secs(7)),
        "{error:?}"
    );

    for (status, temporary) in
        [("408 Request Timeout", true), ("425 Too Early", true), ("410 Gone", false), ("300 Multiple Choices", false)]
    {
        let error = answer(status, &[], "").await;
        assert_eq!(matches!(error, DeliveryError::Temporary { .. }), temporary, "{status}: {error:?}");
    }
}

#[tokio::test]
async fn long_error_bodies_are_cut_for_the_message() {
    let error = answer("400 Bad Request", &[], &"x".repeat(100_000)).await;
    let message = error.to_string();
    assert!(message.len() < 1000 && message.ends_with('…'), "{} bytes", message.len());
}

#[tokio::test]
async fn connection_refused_is_temporary() {
    let (listener, base) = listen().await;
    drop(listener);
    let error = client(local_only()).deliver(&request(&base)).await.unwrap_err();
    let DeliveryError::Temporary { message, .. } = &error else { panic!("{error:?}") };
    assert!(message.starts_with(&format!("could not connect to {base}/")), "{message}");
}

#[tokio::test]
async fn a_silent_receiver_times_out_as_temporary() {
    let (listener, base) = listen().await;
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_request(&mut stream).await;
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let timeouts = Timeouts { connect: Duration::from_secs(5), request: Duration::from_millis(300) };
    let client = WebhookClient::new(local_only(), timeouts).unwrap();
    let error = client.deliver(&request(&base)).await.unwrap_err();
    let DeliveryError::Temporary { message, .. } = &error else { panic!("{error:?}") };
    assert!(message.contains("did not answer within 0.3 s"), "{message}");
}

/// An `https://` endpoint gets a TLS handshake: a server that does not speak TLS (or whose
/// certificate does not check out) is a failure for now, never a plain-text request.
#[tokio::test]
async fn https_speaks_tls_and_a_failed_handshake_is_temporary() {
    let (listener, _) = listen().await;
    let port = listener.local_addr().unwrap().port();
    let seen = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 3];
        use tokio::io::AsyncReadExt;
        let _ = stream.read_exact(&mut first).await;
        first
    });
    let error = client(local_only()).deliver(&request(&format!("https://127.0.0.1:{port}/"))).await.unwrap_err();
    let DeliveryError::Temporary { message, .. } = &error else { panic!("{error:?}") };
    assert!(message.contains("127.0.0.1"), "{message}");
    // A TLS record (handshake, version 3.x), not "POST / HTTP/1.1".
    let first = seen.await.unwrap();
    assert_eq!(&first[..2], &[0x16, 0x03], "{first:?}");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let shown = format!("{:?}", request("https://example.com/"));
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}

#[test]
fn retry_schedule_is_fixed_and_capped() {
    let minutes: Vec<u64> = (0..=MAX_ATTEMPTS + 2).map(|a| retry_delay(a).as_secs()).collect();
    assert_eq!(minutes, [30, 30, 120, 600, 3600, 21600, 21600, 21600, 21600, 21600, 21600]);
    let total: Duration = (1..MAX_ATTEMPTS).map(retry_delay).sum();
    assert!(total < Duration::from_secs(24 * 3600), "{total:?}");
}
