//! An [`OutgoingEmail`] as an RFC 5322 message. lettre writes the MIME: RFC 2047 encoded words
//! for non-ASCII subjects and display names, quoted-printable or base64 bodies (so the message is
//! 7-bit and needs no 8BITMIME), and `multipart/alternative` with the text part first. This
//! module checks what lettre would pass through unchecked: header names, the Message-ID and the
//! unsubscribe URLs.

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{MultiPart, SinglePart};

use super::{ListUnsubscribe, OutgoingEmail};

const LIST_UNSUBSCRIBE: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe");
const LIST_UNSUBSCRIBE_POST: HeaderName = HeaderName::new_from_ascii_str("List-Unsubscribe-Post");
/// RFC 8058's only value.
const ONE_CLICK: &str = "List-Unsubscribe=One-Click";

/// Headers this module writes; [`OutgoingEmail::headers`] may not replace them.
const RESERVED: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "bcc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "list-unsubscribe",
    "list-unsubscribe-post",
];

/// Longest URL or Message-ID accepted: a header line must stay under 998 characters and lettre
/// folds only at spaces.
const MAX_TOKEN: usize = 900;

/// The message exactly as it goes over the wire after `DATA` (CRLF line ends, before dot
/// stuffing), with a fresh `Date`.
pub fn build_mime(m: &OutgoingEmail) -> Result<Vec<u8>, String> {
    Ok(formatted(&build_message(m)?))
}

/// lettre ends a single-part body with one CRLF more than it holds, so a text ending in a line
/// break would arrive with an extra blank line; that CRLF is taken back here. A multipart message
/// ends with its closing boundary line and is left alone.
pub(crate) fn formatted(message: &Message) -> Vec<u8> {
    let mut bytes = message.formatted();
    if bytes.ends_with(b"\r\n\r\n") {
        bytes.truncate(bytes.len() - 2);
    }
    bytes
}

pub(crate) fn build_message(m: &OutgoingEmail) -> Result<Message, String> {
    check_message_id(&m.message_id)?;
    let subject: String = if m.subject.contains(['\r', '\n']) {
        m.subject.split(['\r', '\n']).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" ")
    } else {
        m.subject.clone()
    };
    let mut builder = Message::builder()
        .message_id(Some(m.message_id.clone()))
        .date_now()
        .from(m.from.clone())
        .to(m.to.clone())
        .subject(subject);
    if let Some(reply_to) = &m.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    if let Some(unsubscribe) = &m.list_unsubscribe {
        builder = builder
            .raw_header(HeaderValue::new(LIST_UNSUBSCRIBE, list_unsubscribe(unsubscribe)?))
            .raw_header(HeaderValue::new(LIST_UNSUBSCRIBE_POST, ONE_CLICK.to_owned()));
    }
    for (name, value) in &m.headers {
        builder = builder.raw_header(HeaderValue::new(header_name(name)?, header_value(name, value)?));
    }
    let built = match &m.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(m.text.clone(), html.clone())),
        None => builder.singlepart(SinglePart::plain(m.text.clone())),
    };
    built.map_err(|e| format!("the message cannot be built: {e}"))
}

/// `<local@domain>` in visible ASCII, as RFC 5322's msg-id: anything else would be re-encoded or
/// refused somewhere on the way and no longer match the outbox row.
fn check_message_id(id: &str) -> Result<(), String> {
    let inner = id.strip_prefix('<').and_then(|s| s.strip_suffix('>'));
    let valid = inner.is_some_and(|inner| {
        id.len() <= MAX_TOKEN
            && inner.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b'\\' | b'(' | b')' | b','))
            && inner
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty() && !domain.contains('@'))
    });
    if valid { Ok(()) } else { Err(format!("Message-ID {id:?} is not <local@domain> in visible ASCII")) }
}

/// `<https://…>, <mailto:…>`: the one-click URL first, as RFC 8058 clients look for it.
fn list_unsubscribe(unsubscribe: &ListUnsubscribe) -> Result<String, String> {
    let url = &unsubscribe.url;
    if !(url.starts_with("https://") || url.starts_with("http://")) || !is_uri_token(url) {
        return Err(format!("the unsubscribe URL {url:?} is not an http(s) URL in visible ASCII"));
    }
    let mut value = format!("<{url}>");
    if let Some(mailto) = &unsubscribe.mailto {
        let mailto = if mailto.starts_with("mailto:") { mailto.clone() } else { format!("mailto:{mailto}") };
        if !is_uri_token(&mailto) || !mailto.contains('@') {
            return Err(format!("the unsubscribe address {mailto:?} is not a mailto: URL in visible ASCII"));
        }
        value.push_str(", <");
        value.push_str(&mailto);
        value.push('>');
    }
    Ok(value)
}

fn is_uri_token(s: &str) -> bool {
    s.len() <= MAX_TOKEN && s.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"' | b','))
}

/// RFC 5322 field names are printable ASCII without colon; lettre's own check lets control
/// characters through, which would let a name start a new header.
fn header_name(name: &str) -> Result<HeaderName, String> {
    let printable = !name.is_empty() && name.len() <= 76 && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !printable {
        return Err(format!("header name {name:?} is not printable ASCII without a colon"));
    }
    if RESERVED.iter().any(|reserved| reserved.eq_ignore_ascii_case(name)) {
        return Err(format!("header {name} is written by Rapport and cannot be set"));
    }
    HeaderName::new_from_ascii(name.to_owned()).map_err(|_| format!("header name {name:?} is invalid"))
}

/// lettre would encode a line break rather than let it split the header, but a value with one is
/// a bug upstream (a template rendered into a header), better reported than mangled.
fn header_value(name: &str, value: &str) -> Result<String, String> {
    if value.contains(['\r', '\n']) {
        return Err(format!("header {name} contains a line break"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> OutgoingEmail {
        OutgoingEmail {
            message_id: "<0190c6b2-7a1e-7cc1-9a7e-3f2d1c0b0a99@rapport.example>".to_owned(),
            from: "Shop <shop@example.com>".parse().unwrap(),
            reply_to: None,
            to: "ana@example.org".parse().unwrap(),
            subject: "Hello".to_owned(),
            text: "Hi Ana".to_owned(),
            html: None,
            list_unsubscribe: None,
            headers: vec![],
        }
    }

    fn header_block(m: &OutgoingEmail) -> String {
        let mime = String::from_utf8(build_mime(m).unwrap()).unwrap();
        // Unfolded: lettre folds lines over 78 characters at a space.
        mime.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ")
    }

    #[test]
    fn message_id_is_sent_exactly_as_given() {
        let headers = header_block(&email());
        assert!(headers.contains("Message-ID: <0190c6b2-7a1e-7cc1-9a7e-3f2d1c0b0a99@rapport.example>\r\n"), "{headers}");
        assert!(headers.contains("\r\nDate: "), "{headers}");
    }

    #[test]
    fn a_single_part_body_ends_as_written() {
        assert!(build_mime(&email()).unwrap().ends_with(b"\r\n\r\nHi Ana\r\n"));
        let m = OutgoingEmail { text: "Hi Ana\n\n".to_owned(), ..email() };
        assert!(build_mime(&m).unwrap().ends_with(b"\r\n\r\nHi Ana\r\n\r\n"));
        let m = OutgoingEmail { text: String::new(), ..email() };
        assert!(build_mime(&m).unwrap().ends_with(b"7bit\r\n\r\n"));
    }

    #[test]
    fn malformed_message_ids_are_refused() {
        for id in ["0190@rapport.example", "<0190>", "<a b@c>", "<é@c>", "<@c>", "<a@>", "<a@b\r\nBcc: x@y>"] {
            let m = OutgoingEmail { message_id: id.to_owned(), ..email() };
            assert!(build_mime(&m).is_err(), "{id:?} was accepted");
        }
    }

    #[test]
    fn list_unsubscribe_is_one_click() {
        let m = OutgoingEmail {
            list_unsubscribe: Some(ListUnsubscribe {
                url: "https://crm.example.com/u/tok3n".to_owned(),
                mailto: Some("unsubscribe+tok3n@example.com".to_owned()),
            }),
            ..email()
        };
        let headers = header_block(&m);
        assert!(
            headers.contains("List-Unsubscribe: <https://crm.example.com/u/tok3n>, <mailto:unsubscribe+tok3n@example.com>\r\n"),
            "{headers}"
        );
        assert!(headers.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"), "{headers}");
    }

    #[test]
    fn transactional_mail_has_no_unsubscribe_headers() {
        let headers = header_block(&email());
        assert!(!headers.contains("List-Unsubscribe"), "{headers}");
        assert!(headers.contains("Content-Type: text/plain; charset=utf-8"), "{headers}");
    }

    #[test]
    fn unsubscribe_urls_must_be_plain_http() {
        for (url, mailto) in [("javascript:alert(1)", None), ("https://x.example/a b", None), ("https://x.example/>", None)] {
            let m = OutgoingEmail { list_unsubscribe: Some(ListUnsubscribe { url: url.to_owned(), mailto }), ..email() };
            assert!(build_mime(&m).is_err(), "{url:?} was accepted");
        }
        let m = OutgoingEmail {
            list_unsubscribe: Some(ListUnsubscribe { url: "https://x.example/u".to_owned(), mailto: Some("nobody".to_owned()) }),
            ..email()
        };
        assert!(build_mime(&m).is_err());
    }

    #[test]
    fn extra_headers_cannot_inject_or_replace() {
        for (name, value) in [
            ("X-Rapport\r\nBcc", "x@example.com"),
            ("X Rapport", "1"),
            ("Subject", "Replaced"),
            ("message-id", "<x@y>"),
            ("X-Rapport-Message", "1\r\nBcc: x@example.com"),
        ] {
            let m = OutgoingEmail { headers: vec![(name.to_owned(), value.to_owned())], ..email() };
            assert!(build_mime(&m).is_err(), "{name:?}: {value:?} was accepted");
        }
        let m = OutgoingEmail { headers: vec![("X-Rapport-Message".to_owned(), "msg_42".to_owned())], ..email() };
        assert!(header_block(&m).contains("X-Rapport-Message: msg_42\r\n"));
    }

    #[test]
    fn line_breaks_in_the_subject_become_spaces() {
        let m = OutgoingEmail { subject: "Your order\r\nBcc: x@example.com\n".to_owned(), ..email() };
        let headers = header_block(&m);
        assert!(headers.contains("Subject: Your order Bcc: x@example.com\r\n"), "{headers}");
        assert!(!headers.contains("\r\nBcc:"), "{headers}");
    }
}
