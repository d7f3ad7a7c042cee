//! The sender against the sink: what arrives, and how each failure is reported.

use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use tokio::net::TcpListener;
use tokio::time::Instant;

use super::sink::{Behaviour, SmtpSink};
use super::*;

const PASSWORD: &str = "s3cret-pässword";

fn email(to: &str) -> OutgoingEmail {
    OutgoingEmail {
        message_id: "<0190c6b2-7a1e-7cc1-9a7e-3f2d1c0b0a99@rapport.example>".to_owned(),
        from: "Zoë's Café <hello@cafe.example>".parse().unwrap(),
        reply_to: Some("Zoë Ørsted <zoe@cafe.example>".parse().unwrap()),
        to: format!("José Núñez <{to}>").parse().unwrap(),
        subject: "Grüße, José — 20 % off your next coffee ☕".to_owned(),
        text: "Hallo José,\n\nyour coupon: KAFFEE20 (valid until 31.12.)\n.\n..a line that starts with dots\n".to_owned(),
        html: Some("<p>Hallo <b>José</b>,</p>\n<p>your coupon: <code>KAFFEE20</code> ☕</p>\n".to_owned()),
        list_unsubscribe: Some(ListUnsubscribe {
            url: "https://crm.cafe.example/u/v1.abc123".to_owned(),
            mailto: Some("unsubscribe+v1.abc123@cafe.example".to_owned()),
        }),
        headers: vec![("X-Rapport-Message".to_owned(), "msg_0190c6b2".to_owned())],
    }
}

fn limits() -> SendLimits {
    SendLimits { per_second: 0, per_domain_per_second: 0, pool_size: 4, timeout: Duration::from_secs(10) }
}

fn sender(url: &str) -> EmailSender {
    EmailSender::new(SmtpSettings::parse(url).unwrap(), limits()).unwrap()
}

/// Line ends as the author wrote them: the wire has CRLF.
fn lf(s: &str) -> String {
    s.replace("\r\n", "\n")
}

#[tokio::test]
async fn a_marketing_message_arrives_whole() {
    let sink = SmtpSink::start(Behaviour::accept()).await.unwrap();
    let accepted = sender(&sink.url()).send(&email("jose@example.org")).await.unwrap();
    assert!(accepted.reply.starts_with("250 "), "{accepted:?}");

    let received = sink.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].mail_from, "hello@cafe.example");
    assert_eq!(received[0].rcpt_to, ["jose@example.org"]);
    // 7-bit on the wire: non-ASCII only as encoded words and quoted-printable or base64.
    assert!(received[0].data.is_ascii());

    let original = email("jose@example.org");
    let parsed = MessageParser::default().parse(&received[0].data).expect("parsable MIME");
    assert_eq!(parsed.subject(), Some(original.subject.as_str()));
    assert_eq!(parsed.message_id(), Some("0190c6b2-7a1e-7cc1-9a7e-3f2d1c0b0a99@rapport.example"));
    assert!(parsed.date().is_some());
    let from = parsed.from().and_then(|a| a.first()).unwrap();
    assert_eq!((from.name(), from.address()), (Some("Zoë's Café"), Some("hello@cafe.example")));
    let to = parsed.to().and_then(|a| a.first()).unwrap();
    assert_eq!((to.name(), to.address()), (Some("José Núñez"), Some("jose@example.org")));
    let reply_to = parsed.reply_to().and_then(|a| a.first()).unwrap();
    assert_eq!(reply_to.name(), Some("Zoë Ørsted"));

    let root = parsed.root_part().content_type().unwrap();
    assert_eq!((root.ctype(), root.subtype()), ("multipart", Some("alternative")));
    let parts = parsed.root_part().sub_parts().unwrap();
    let kinds: Vec<_> = parts
        .iter()
        .map(|&id| {
            let ct = parsed.part(id).unwrap().content_type().unwrap();
            (ct.ctype().to_owned(), ct.subtype().unwrap().to_owned(), ct.attribute("charset").unwrap().to_ascii_lowercase())
        })
        .collect();
    assert_eq!(
        kinds,
        [("text".into(), "plain".into(), "utf-8".into()), ("text".into(), "html".into(), "utf-8".into())],
        "text first, then HTML"
    );
    assert_eq!(lf(&parsed.body_text(0).unwrap()), original.text);
    assert_eq!(lf(&parsed.body_html(0).unwrap()), original.html.unwrap());

    assert_eq!(
        parsed.header_raw("List-Unsubscribe").map(|v| v.replace("\r\n ", " ").trim().to_owned()).as_deref(),
        Some("<https://crm.cafe.example/u/v1.abc123>, <mailto:unsubscribe+v1.abc123@cafe.example>")
    );
    assert_eq!(parsed.header_raw("List-Unsubscribe-Post").map(str::trim), Some("List-Unsubscribe=One-Click"));
    assert_eq!(parsed.header_raw("X-Rapport-Message").map(str::trim), Some("msg_0190c6b2"));
}

#[tokio::test]
async fn a_transactional_text_message_is_one_part_without_unsubscribe() {
    let sink = SmtpSink::start(Behaviour::accept()).await.unwrap();
    let m = OutgoingEmail { html: None, list_unsubscribe: None, reply_to: None, ..email("jose@example.org") };
    sender(&sink.url()).send(&m).await.unwrap();

    let data = &sink.messages()[0].data;
    let parsed = MessageParser::default().parse(data).unwrap();
    let ct = parsed.root_part().content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("text", Some("plain")));
    assert_eq!(lf(&parsed.body_text(0).unwrap()), m.text);
    assert_eq!(parsed.header_raw("List-Unsubscribe"), None);
    assert_eq!(parsed.header_raw("List-Unsubscribe-Post"), None);
    assert!(parsed.reply_to().is_none());
}

#[tokio::test]
async fn build_mime_matches_what_is_sent() {
    let sink = SmtpSink::start(Behaviour::accept()).await.unwrap();
    let m = email("jose@example.org");
    sender(&sink.url()).send(&m).await.unwrap();
    let built = build_mime(&m).unwrap();
    let sent = &sink.messages()[0].data;
    // Equal but for the Date and the MIME boundary, both made anew for each build.
    assert!(built.len().abs_diff(sent.len()) < 8, "{} vs {} bytes", built.len(), sent.len());
    assert!(sent.ends_with(b"--\r\n") && built.ends_with(b"--\r\n"));
}

#[tokio::test]
async fn a_451_is_temporary_and_the_next_message_goes_through() {
    let sink = SmtpSink::start(Behaviour::accept().fail_next(1)).await.unwrap();
    let sender = sender(&sink.url());
    let error = sender.send(&email("jose@example.org")).await.unwrap_err();
    assert!(error.is_temporary(), "{error:?}");
    assert!(error.message().contains("451 4.3.0 Temporary failure"), "{error}");
    assert!(error.message().contains(&sink.addr().to_string()), "names the server: {error}");

    sender.send(&email("jose@example.org")).await.unwrap();
    assert_eq!(sink.accepted(), 1);
    assert_eq!(sink.connections(), 1, "kept after RSET");
}

#[tokio::test]
async fn a_550_recipient_is_permanent_and_others_still_go_through() {
    let sink = SmtpSink::start(Behaviour::accept().reject("gone@example.org")).await.unwrap();
    let sender = sender(&sink.url());
    let error = sender.send(&email("gone@example.org")).await.unwrap_err();
    assert!(!error.is_temporary(), "{error:?}");
    assert!(error.message().contains("550 5.1.1 Recipient address rejected"), "{error}");

    sender.send(&email("jose@example.org")).await.unwrap();
    assert_eq!(sink.messages().iter().map(|m| m.rcpt_to[0].as_str()).collect::<Vec<_>>(), ["jose@example.org"]);
    assert_eq!(sink.connections(), 1, "kept after RSET");
}

#[tokio::test]
async fn a_connection_dropped_mid_data_is_temporary() {
    let sink = SmtpSink::start(Behaviour::accept().drop_mid_data(1)).await.unwrap();
    let sender = sender(&sink.url());
    let error = sender.send(&email("jose@example.org")).await.unwrap_err();
    assert!(error.is_temporary(), "{error:?}");
    assert_eq!(sink.accepted(), 0);

    sender.send(&email("jose@example.org")).await.unwrap();
    assert_eq!(sink.accepted(), 1);
    assert_eq!(sink.connections(), 2, "a new connection after the broken one");
}

#[tokio::test]
async fn an_unreachable_relay_is_temporary() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = sender(&url).send(&email("jose@example.org")).await.unwrap_err();
    assert!(error.is_temporary(), "{error:?}");
    assert!(error.message().starts_with("connecting to 127.0.0.1:"), "{error}");
}

#[tokio::test]
async fn a_silent_relay_times_out_as_temporary() {
    // Accepts the connection and never says a word.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("smtp://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(stream);
    });
    let limits = SendLimits { timeout: Duration::from_millis(300), ..limits() };
    let sender = EmailSender::new(SmtpSettings::parse(&url).unwrap(), limits).unwrap();
    let started = Instant::now();
    let error = sender.send(&email("jose@example.org")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.is_temporary(), "{error:?}");
    assert!(error.message().contains("did not answer within 300ms"), "{error}");
    held.abort();
}

#[tokio::test]
async fn an_invalid_message_is_permanent_before_any_connection() {
    let sink = SmtpSink::start(Behaviour::accept()).await.unwrap();
    let m = OutgoingEmail { message_id: "not-a-message-id".to_owned(), ..email("jose@example.org") };
    let error = sender(&sink.url()).send(&m).await.unwrap_err();
    assert!(!error.is_temporary(), "{error:?}");
    assert_eq!(sink.connections(), 0);
}

#[tokio::test]
async fn connections_are_reused_and_capped_by_the_pool() {
    let sink = SmtpSink::start(Behaviour::count_only()).await.unwrap();
    let sender = sender(&sink.url());
    for _ in 0..10 {
        sender.send(&email("jose@example.org")).await.unwrap();
    }
    assert_eq!(sink.connections(), 1, "one sender, one message at a time, one connection");

    let sends: Vec<_> = (0..40)
        .map(|i| {
            let sender = sender.clone();
            tokio::spawn(async move { sender.send(&email(&format!("c{i}@example.org"))).await })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    assert_eq!(sink.accepted(), 50);
    assert!(sink.connections() <= 4, "{} connections for a pool of 4", sink.connections());
}

#[tokio::test]
async fn rate_limits_hold_on_the_wire() {
    let sink = SmtpSink::start(Behaviour::count_only()).await.unwrap();
    let limits = SendLimits { per_second: 40, per_domain_per_second: 10, ..limits() };
    let sender = EmailSender::new(SmtpSettings::parse(&sink.url()).unwrap(), limits).unwrap();
    let started = Instant::now();
    // Four messages to one domain (10/s: the last starts after 300 ms) and eight to eight others
    // (40/s: twelve starts take 275 ms).
    let recipients: Vec<String> =
        (0..4).map(|i| format!("a{i}@one.example")).chain((0..8).map(|i| format!("b@d{i}.example"))).collect();
    let sends: Vec<_> = recipients
        .into_iter()
        .map(|to| {
            let sender = sender.clone();
            tokio::spawn(async move { sender.send(&email(&to)).await })
        })
        .collect();
    for send in sends {
        send.await.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(sink.accepted(), 12);
}

#[tokio::test]
async fn credentials_log_in_and_never_appear_in_errors() {
    let sink = SmtpSink::start(Behaviour::accept().require_auth("cafe", PASSWORD)).await.unwrap();
    let url = format!("{}?tls=none", sink.url());
    let settings = SmtpSettings::parse(&url).unwrap().with_credentials("cafe", PASSWORD);
    EmailSender::new(settings, limits()).unwrap().send(&email("jose@example.org")).await.unwrap();
    assert_eq!(sink.accepted(), 1);

    let wrong = SmtpSettings::parse(&url).unwrap().with_credentials("cafe", "not-the-password");
    let sender = EmailSender::new(wrong, limits()).unwrap();
    let error = sender.send(&email("jose@example.org")).await.unwrap_err();
    // A login refused is the configuration's fault, not the message's.
    assert!(error.is_temporary(), "{error:?}");
    assert!(error.message().contains("535"), "{error}");
    for shown in [error.to_string(), format!("{error:?}"), format!("{sender:?}")] {
        assert!(!shown.contains("not-the-password"), "{shown}");
    }
}

#[tokio::test]
async fn the_password_is_not_sent_in_clear_unless_tls_none_says_so() {
    let sink = SmtpSink::start(Behaviour::accept().require_auth("cafe", PASSWORD)).await.unwrap();
    let settings = SmtpSettings::parse(&sink.url()).unwrap().with_credentials("cafe", PASSWORD);
    let sender = EmailSender::new(settings, limits()).unwrap();
    let error = sender.send(&email("jose@example.org")).await.unwrap_err();
    assert!(error.is_temporary(), "{error:?}");
    assert!(error.message().contains("offered no STARTTLS"), "{error}");
    assert!(!format!("{error:?} {sender:?}").contains(PASSWORD));
    assert_eq!(sink.accepted(), 0);
}

#[tokio::test]
async fn tls_required_refuses_a_server_without_starttls() {
    let sink = SmtpSink::start(Behaviour::accept()).await.unwrap();
    let error = sender(&format!("{}?tls=required", sink.url())).send(&email("jose@example.org")).await.unwrap_err();
    assert!(error.is_temporary(), "{error:?}");
    assert!(error.message().contains("does not offer STARTTLS"), "{error}");
    assert_eq!(sink.accepted(), 0);
}

#[tokio::test]
async fn smtps_to_a_plain_server_fails_the_handshake_as_temporary() {
    let sink = SmtpSink::start(Behaviour::accept()).await.unwrap();
    let url = sink.url().replacen("smtp://", "smtps://", 1);
    let error = sender(&url).send(&email("jose@example.org")).await.unwrap_err();
    assert!(error.is_temporary(), "{error:?}");
    assert!(error.message().starts_with("connecting to 127.0.0.1:"), "{error}");
    assert_eq!(sink.accepted(), 0);
}

#[tokio::test]
async fn shutdown_refuses_further_sends() {
    let sink = SmtpSink::start(Behaviour::accept()).await.unwrap();
    let sender = sender(&sink.url());
    sender.send(&email("jose@example.org")).await.unwrap();
    sender.shutdown().await;
    let error = sender.send(&email("jose@example.org")).await.unwrap_err();
    assert!(error.is_temporary() && error.message().contains("shut down"), "{error}");
}

#[test]
fn the_sender_refuses_an_empty_pool_or_no_timeout() {
    let settings = SmtpSettings::parse("smtp://relay.example.com").unwrap();
    assert!(EmailSender::new(settings.clone(), SendLimits { pool_size: 0, ..SendLimits::default() }).is_err());
    assert!(EmailSender::new(settings, SendLimits { timeout: Duration::ZERO, ..SendLimits::default() }).is_err());
}
