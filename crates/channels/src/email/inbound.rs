//! Mail that comes back: delivery status notifications (RFC 3464), complaints in the abuse
//! reporting format (RFC 5965), and answers, told apart from automatic answers (RFC 3834 and
//! the headers and subjects common mail programs use instead).
//!
//! Everything here is a pure function of the raw message. Which of our messages a piece of
//! returned mail is about comes from the `X-Rapport-Message` header and the `Message-ID`
//! (`<{outbox id}@{domain}>`) the sender puts on every message: they come back in a report's
//! returned headers, and in an answer's `In-Reply-To` and `References`.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// Longest snippet of an answer kept, in characters.
pub const SNIPPET_CHARS: usize = 500;

/// What a piece of inbound mail is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A delivery report or complaint, with one item per failed recipient (none when it only
    /// says a message was delayed or delivered).
    Report(Vec<Bounce>),
    /// Someone (or their mail program) answered.
    Reply(Reply),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceKind {
    /// Will never be delivered (a 5.x.x status): the address is not to be mailed again.
    Hard,
    /// Not delivered this time (a 4.x.x status after the relay gave up).
    Soft,
    /// The recipient marked the message as spam.
    Complaint,
}

impl BounceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hard => "hard",
            Self::Soft => "soft",
            Self::Complaint => "complaint",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "hard" => Some(Self::Hard),
            "soft" => Some(Self::Soft),
            "complaint" => Some(Self::Complaint),
            _ => None,
        }
    }
}

/// One recipient a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The address as the report gives it (`Final-Recipient`, `Original-Rcpt-To`).
    pub recipient: String,
    pub kind: BounceKind,
    /// The enhanced status code (`5.1.1`), for bounces.
    pub status: Option<String>,
    /// What the receiving server said, or the complaint's feedback type.
    pub detail: String,
    /// Our message ids the report names: `X-Rapport-Message` values and `Message-ID`s (without
    /// angle brackets), best first.
    pub message_refs: Vec<String>,
}

/// An answer to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The sender's address.
    pub from: Option<String>,
    pub subject: Option<String>,
    /// The new text of the answer, quoted text left out, at most [`SNIPPET_CHARS`] characters.
    pub snippet: String,
    /// The answer's own `Message-ID` (without angle brackets).
    pub message_id: Option<String>,
    /// Message ids it answers: `In-Reply-To` first, then `References` newest first.
    pub in_reply_to: Vec<String>,
    /// Why it is an automatic answer (out of office, vacation), when it is one.
    pub auto: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("the body is not an email message (no headers could be read)")]
    NotAMessage,
}

/// Reads a raw RFC 5322 message.
pub fn parse(raw: &[u8]) -> Result<Inbound, InboundError> {
    let message = MessageParser::default().parse(raw).ok_or(InboundError::NotAMessage)?;
    if message.headers().is_empty() {
        return Err(InboundError::NotAMessage);
    }
    if let Some(bounces) = report(&message) {
        return Ok(Inbound::Report(bounces));
    }
    Ok(Inbound::Reply(reply(&message)))
}

/// The header `name`'s value (unfolded, trimmed), case-insensitively.
fn header(m: &Message<'_>, name: &str) -> Option<String> {
    m.headers_raw().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| unfold(v))
}

fn unfold(v: &str) -> String {
    v.split(['\r', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ")
}

/// `<a@b>` → `a@b`.
fn bare_id(v: &str) -> Option<String> {
    let v = v.trim().trim_start_matches('<').trim_end_matches('>').trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The fields of a `message/delivery-status` or `message/feedback-report` body: groups of
/// `Name: value` lines separated by blank lines, names lower-cased.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = group.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// `rfc822; a@b.c` → `a@b.c`.
fn typed_value(v: &str) -> String {
    let v = v.split_once(';').map_or(v, |(_, rest)| rest);
    v.trim().trim_start_matches('<').trim_end_matches('>').trim().to_string()
}

fn content_type_is(part: &mail_parser::MessagePart<'_>, ctype: &str, subtypes: &[&str]) -> bool {
    part.content_type().is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case(ctype) && c.subtype().is_some_and(|s| subtypes.iter().any(|x| s.eq_ignore_ascii_case(x)))
    })
}

fn part_text(part: &mail_parser::MessagePart<'_>) -> String {
    String::from_utf8_lossy(part.contents()).into_owned()
}

/// Our message ids named in a message's headers: `X-Rapport-Message`, then `Message-ID`.
fn ids_in_headers(m: &Message<'_>, out: &mut Vec<String>) {
    if let Some(v) = header(m, "X-Rapport-Message").and_then(|v| bare_id(&v)) {
        out.push(v);
    }
    if let Some(v) = header(m, "Message-ID").and_then(|v| bare_id(&v)) {
        out.push(v);
    }
}

/// The delivery report or complaint in `m`, if it is one.
fn report(m: &Message<'_>) -> Option<Vec<Bounce>> {
    let mut status_text = None;
    let mut feedback_text = None;
    let mut refs = Vec::new();
    let mut returned_to = None;
    for part in &m.parts {
        if content_type_is(part, "message", &["delivery-status", "global-delivery-status"]) {
            status_text.get_or_insert_with(|| part_text(part));
        } else if content_type_is(part, "message", &["feedback-report"]) {
            feedback_text.get_or_insert_with(|| part_text(part));
        } else if let PartType::Message(returned) = &part.body {
            ids_in_headers(returned, &mut refs);
            returned_to = returned.to().and_then(|a| a.first()).and_then(|a| a.address.as_deref().map(str::to_string));
        } else if (content_type_is(part, "text", &["rfc822-headers"]) || content_type_is(part, "message", &["rfc822-headers"]))
            && let Some(headers) = MessageParser::default().parse_headers(part.contents())
        {
            ids_in_headers(&headers, &mut refs);
            returned_to = headers.to().and_then(|a| a.first()).and_then(|a| a.address.as_deref().map(str::to_string));
        }
    }
    if status_text.is_none() && feedback_text.is_none() {
        return None;
    }
    // Some relays return the original as plain text rather than a message part.
    // The report's own headers are left out: its Message-ID is the reporting server's.
    if refs.is_empty() {
        let body = m.raw_message().get(m.root_part().offset_body as usize..).unwrap_or_default();
        let body = String::from_utf8_lossy(body);
        for wanted in ["X-Rapport-Message", "Message-ID"] {
            for line in body.lines() {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case(wanted)
                    && let Some(id) = bare_id(value)
                    && !refs.contains(&id)
                {
                    refs.push(id);
                }
            }
        }
    }
    let mut out = Vec::new();
    if let Some(text) = feedback_text {
        let groups = field_groups(&text);
        let fields: Vec<(String, String)> = groups.into_iter().flatten().collect();
        let kind = field(&fields, "feedback-type").unwrap_or("abuse").to_ascii_lowercase();
        if kind != "not-spam" {
            let recipient = field(&fields, "original-rcpt-to").map(typed_value).or(returned_to);
            if let Some(recipient) = recipient.filter(|r| r.contains('@')) {
                out.push(Bounce {
                    recipient,
                    kind: BounceKind::Complaint,
                    status: None,
                    detail: format!("complaint ({kind})"),
                    message_refs: refs.clone(),
                });
            }
        }
    }
    if let Some(text) = status_text {
        // The first group is about the whole message; each further one about one recipient.
        for group in field_groups(&text).iter().skip(1) {
            let Some(recipient) = field(group, "final-recipient").or(field(group, "original-recipient")).map(typed_value) else {
                continue;
            };
            let action = field(group, "action").unwrap_or("").to_ascii_lowercase();
            let status = field(group, "status").map(|s| s.split_whitespace().next().unwrap_or("").to_string());
            let class = status.as_deref().and_then(|s| s.chars().next());
            let kind = match (action.as_str(), class) {
                ("failed", Some('4')) => BounceKind::Soft,
                ("failed", _) => BounceKind::Hard,
                // No action given: the status class decides.
                ("", Some('5')) => BounceKind::Hard,
                // Delayed, delivered, relayed, expanded: nothing failed (yet).
                _ => continue,
            };
            let diagnostic = field(group, "diagnostic-code").map(typed_value);
            let detail = match (&diagnostic, &status) {
                (Some(d), _) => d.clone(),
                (None, Some(s)) => format!("status {s}"),
                (None, None) => "delivery failed".to_string(),
            };
            out.push(Bounce { recipient, kind, status, detail, message_refs: refs.clone() });
        }
    }
    Some(out)
}

/// Why a message is an automatic answer, when it is one.
fn auto_reply(m: &Message<'_>) -> Option<String> {
    if let Some(v) = header(m, "Auto-Submitted") {
        let value = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if value != "no" && !value.is_empty() {
            return Some(format!("Auto-Submitted: {value}"));
        }
    }
    for name in ["X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress", "X-Autoreply-From"] {
        if header(m, name).is_some() {
            return Some(format!("{name} header"));
        }
    }
    if let Some(v) = header(m, "Precedence") {
        let v = v.trim().to_ascii_lowercase();
        if matches!(v.as_str(), "auto_reply" | "bulk" | "junk") {
            return Some(format!("Precedence: {v}"));
        }
    }
    let subject = m.subject().unwrap_or("").trim().to_lowercase();
    const SUBJECTS: &[&str] = &[
        "out of office",
        "out of the office",
        "automatic reply",
        "auto-reply",
        "autoreply",
        "auto reply",
        "auto response",
        "autosvar",
        "abwesenheitsnotiz",
        "automatische antwort",
        "réponse automatique",
        "respuesta automática",
        "risposta automatica",
        "automatisch antwoord",
    ];
    SUBJECTS.iter().find(|s| subject.starts_with(*s)).map(|s| format!("subject begins \"{s}\""))
}

/// The new text of an answer: quoted lines and everything from the quote's introduction on
/// are left out; blanks are collapsed.
pub fn snippet(text: &str) -> String {
    let mut kept = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        let lower = t.to_lowercase();
        if lower.starts_with("-----original message-----")
            || lower.starts_with("________________")
            || (lower.starts_with("on ") && lower.ends_with("wrote:"))
            || (lower.starts_with("am ") && lower.ends_with("schrieb:"))
            || (lower.starts_with("le ") && lower.ends_with("a écrit :"))
        {
            break;
        }
        if t.starts_with('>') {
            continue;
        }
        kept.push(t);
    }
    let joined = kept.join(" ");
    let collapsed = joined.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(SNIPPET_CHARS).collect()
}

fn ids(v: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match v {
        mail_parser::HeaderValue::Text(t) => t.split_whitespace().filter_map(bare_id).collect(),
        mail_parser::HeaderValue::TextList(l) => l.iter().flat_map(|t| t.split_whitespace()).filter_map(bare_id).collect(),
        _ => Vec::new(),
    }
}

fn reply(m: &Message<'_>) -> Reply {
    let mut in_reply_to = ids(m.in_reply_to());
    let mut references = ids(m.references());
    references.reverse();
    for r in references {
        if !in_reply_to.contains(&r) {
            in_reply_to.push(r);
        }
    }
    let text = m.body_text(0).map(|t| t.into_owned()).unwrap_or_default();
    Reply {
        from: m.from().and_then(|a| a.first()).and_then(|a| a.address.as_deref()).map(|a| a.trim().to_string()),
        subject: m.subject().map(|s| s.trim().to_string()),
        snippet: snippet(&text),
        message_id: m.message_id().and_then(bare_id),
        in_reply_to,
        auto: auto_reply(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUR_ID: &str = "01968f2e-7c1a-7d3e-9b41-6a0c2f1e5d77";

    /// A Postfix bounce for a mailbox that does not exist, the original's headers returned.
    fn postfix_hard_bounce() -> String {
        format!(
            "Return-Path: <>\r\n\
             Received: by mx.shop.example (Postfix) id 3F1A2B; Tue,  3 Mar 2026 10:00:05 +0000 (UTC)\r\n\
             Date: Tue,  3 Mar 2026 10:00:05 +0000 (UTC)\r\n\
             From: MAILER-DAEMON@mx.shop.example (Mail Delivery System)\r\n\
             Subject: Undelivered Mail Returned to Sender\r\n\
             To: news@shop.example\r\n\
             Auto-Submitted: auto-replied\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\
             \tboundary=\"3F1A2B.1772532005/mx.shop.example\"\r\n\
             Message-Id: <20260303100005.3F1A2B@mx.shop.example>\r\n\
             \r\n\
             This is a MIME-encapsulated message.\r\n\
             \r\n\
             --3F1A2B.1772532005/mx.shop.example\r\n\
             Content-Description: Notification\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\
             \r\n\
             This is the mail system at host mx.shop.example.\r\n\
             \r\n\
             I'm sorry to have to inform you that your message could not\r\n\
             be delivered to one or more recipients.\r\n\
             \r\n\
             <gone@customer.example>: host mx.customer.example[203.0.113.7] said: 550 5.1.1\r\n\
             \x20   <gone@customer.example>: Recipient address rejected: User unknown\r\n\
             \r\n\
             --3F1A2B.1772532005/mx.shop.example\r\n\
             Content-Description: Delivery report\r\n\
             Content-Type: message/delivery-status\r\n\
             \r\n\
             Reporting-MTA: dns; mx.shop.example\r\n\
             X-Postfix-Queue-ID: 3F1A2B\r\n\
             Arrival-Date: Tue,  3 Mar 2026 10:00:04 +0000 (UTC)\r\n\
             \r\n\
             Final-Recipient: rfc822; Gone@Customer.example\r\n\
             Original-Recipient: rfc822;gone@customer.example\r\n\
             Action: failed\r\n\
             Status: 5.1.1\r\n\
             Remote-MTA: dns; mx.customer.example\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 <gone@customer.example>: Recipient address\r\n\
             \x20   rejected: User unknown\r\n\
             \r\n\
             --3F1A2B.1772532005/mx.shop.example\r\n\
             Content-Description: Undelivered Message Headers\r\n\
             Content-Type: text/rfc822-headers\r\n\
             \r\n\
             From: Shop <news@shop.example>\r\n\
             To: gone@customer.example\r\n\
             Subject: Our spring sale\r\n\
             Message-ID: <{OUR_ID}@shop.example>\r\n\
             X-Rapport-Message: {OUR_ID}\r\n\
             \r\n\
             --3F1A2B.1772532005/mx.shop.example--\r\n"
        )
    }

    /// An Exchange-style report of a full mailbox (temporary), the whole original returned.
    fn mailbox_full_soft_bounce() -> String {
        format!(
            "From: postmaster@relay.example\r\n\
             To: news@shop.example\r\n\
             Subject: Delivery Status Notification (Failure)\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=\"delivery-status\"; boundary=\"b1\"\r\n\
             \r\n\
             --b1\r\n\
             Content-Type: text/plain\r\n\
             \r\n\
             Delivery has failed to these recipients: full@customer.example\r\n\
             --b1\r\n\
             Content-Type: message/delivery-status\r\n\
             \r\n\
             Reporting-MTA: dns;relay.example\r\n\
             \r\n\
             Final-Recipient: rfc822;full@customer.example\r\n\
             Action: failed\r\n\
             Status: 4.2.2\r\n\
             Diagnostic-Code: smtp;452 4.2.2 Mailbox full\r\n\
             \r\n\
             Final-Recipient: rfc822;slow@customer.example\r\n\
             Action: delayed\r\n\
             Status: 4.4.1\r\n\
             \r\n\
             --b1\r\n\
             Content-Type: message/rfc822\r\n\
             \r\n\
             From: Shop <news@shop.example>\r\n\
             To: full@customer.example\r\n\
             Subject: Hello\r\n\
             Message-ID: <{OUR_ID}@shop.example>\r\n\
             \r\n\
             Hello there.\r\n\
             --b1--\r\n"
        )
    }

    /// A spam complaint in the abuse reporting format (RFC 5965), as feedback loops send them.
    fn arf_complaint() -> String {
        format!(
            "From: <fbl@isp.example>\r\n\
             To: <abuse@shop.example>\r\n\
             Subject: FW: Our spring sale\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=feedback-report; boundary=\"part1\"\r\n\
             \r\n\
             --part1\r\n\
             Content-Type: text/plain; charset=\"US-ASCII\"\r\n\
             \r\n\
             This is an email abuse report for an email message received from IP 198.51.100.2.\r\n\
             --part1\r\n\
             Content-Type: message/feedback-report\r\n\
             \r\n\
             Feedback-Type: abuse\r\n\
             User-Agent: SomeGenerator/1.0\r\n\
             Version: 1\r\n\
             Original-Mail-From: <news@shop.example>\r\n\
             Original-Rcpt-To: <angry@customer.example>\r\n\
             \r\n\
             --part1\r\n\
             Content-Type: text/rfc822-headers\r\n\
             \r\n\
             From: Shop <news@shop.example>\r\n\
             To: angry@customer.example\r\n\
             Message-ID: <{OUR_ID}@shop.example>\r\n\
             X-Rapport-Message: {OUR_ID}\r\n\
             \r\n\
             --part1--\r\n"
        )
    }

    fn report_of(raw: &str) -> Vec<Bounce> {
        match parse(raw.as_bytes()).expect("a message") {
            Inbound::Report(b) => b,
            other => panic!("not read as a report: {other:?}"),
        }
    }

    fn reply_of(raw: &str) -> Reply {
        match parse(raw.as_bytes()).expect("a message") {
            Inbound::Reply(r) => r,
            other => panic!("not read as a reply: {other:?}"),
        }
    }

    #[test]
    fn a_permanent_failure_is_a_hard_bounce_of_our_message() {
        let b = report_of(&postfix_hard_bounce());
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].recipient, "Gone@Customer.example");
        assert_eq!(b[0].kind, BounceKind::Hard);
        assert_eq!(b[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(b[0].detail, "550 5.1.1 <gone@customer.example>: Recipient address rejected: User unknown");
        assert_eq!(b[0].message_refs, [OUR_ID.to_string(), format!("{OUR_ID}@shop.example")]);
    }

    #[test]
    fn a_temporary_failure_is_soft_and_a_delay_is_nothing() {
        let b = report_of(&mailbox_full_soft_bounce());
        assert_eq!(b.len(), 1, "the delayed recipient is not a bounce: {b:?}");
        assert_eq!(b[0].recipient, "full@customer.example");
        assert_eq!(b[0].kind, BounceKind::Soft);
        assert_eq!(b[0].detail, "452 4.2.2 Mailbox full");
        assert_eq!(b[0].message_refs, [format!("{OUR_ID}@shop.example")], "from the returned message/rfc822");
    }

    #[test]
    fn an_abuse_report_is_a_complaint() {
        let b = report_of(&arf_complaint());
        assert_eq!(b.len(), 1, "{b:?}");
        assert_eq!(b[0].recipient, "angry@customer.example");
        assert_eq!(b[0].kind, BounceKind::Complaint);
        assert_eq!(b[0].message_refs[0], OUR_ID);
        let not_spam = arf_complaint().replace("Feedback-Type: abuse", "Feedback-Type: not-spam");
        assert!(report_of(&not_spam).is_empty());
    }

    #[test]
    fn headers_of_a_plain_text_return_still_name_our_message() {
        // A report whose original comes back as plain text.
        let raw = postfix_hard_bounce().replace("Content-Type: text/rfc822-headers", "Content-Type: text/plain");
        let b = report_of(&raw);
        assert_eq!(b[0].message_refs[0], OUR_ID);
    }

    fn answer(extra_headers: &str, subject: &str, body: &str) -> String {
        format!(
            "From: Zoë <Zoe@Customer.example>\r\n\
             To: Shop <news@shop.example>\r\n\
             Subject: {subject}\r\n\
             Message-ID: <CAF=abc123@mail.customer.example>\r\n\
             In-Reply-To: <{OUR_ID}@shop.example>\r\n\
             References: <older@shop.example> <{OUR_ID}@shop.example>\r\n\
             {extra_headers}\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             \r\n\
             {body}"
        )
    }

    #[test]
    fn a_real_answer_is_a_reply_with_its_new_text() {
        let body = "Yes please, I'd like the blue one.\r\n\r\nZoë\r\n\r\nOn Tue, 3 Mar 2026 at 10:00, Shop <news@shop.example> wrote:\r\n> Our spring sale\r\n> starts today\r\n";
        let r = reply_of(&answer("", "Re: Our spring sale", body));
        assert_eq!(r.auto, None);
        assert_eq!(r.from.as_deref(), Some("Zoe@Customer.example"));
        assert_eq!(r.subject.as_deref(), Some("Re: Our spring sale"));
        assert_eq!(r.snippet, "Yes please, I'd like the blue one. Zoë");
        assert_eq!(r.message_id.as_deref(), Some("CAF=abc123@mail.customer.example"));
        assert_eq!(r.in_reply_to, [format!("{OUR_ID}@shop.example"), "older@shop.example".to_string()]);
        // Replying about being out of the office is still a person answering.
        let r = reply_of(&answer("", "Re: Out of office policy", "I am back, thanks."));
        assert_eq!(r.auto, None);
    }

    #[test]
    fn automatic_answers_are_recognised() {
        let cases = [
            ("Auto-Submitted: auto-replied\r\n", "Re: Our spring sale"),
            ("Auto-Submitted: auto-generated; owner-email=\"x@y\"\r\n", "Hello"),
            ("X-Autoreply: yes\r\n", "Hello"),
            ("X-Autorespond: Vacation\r\n", "Hello"),
            ("Precedence: bulk\r\n", "Hello"),
            ("Precedence: auto_reply\r\n", "Hello"),
            ("X-Auto-Response-Suppress: All\r\n", "Hello"),
            ("", "Out of Office: Our spring sale"),
            ("", "Automatic reply: Our spring sale"),
            ("", "Abwesenheitsnotiz: Our spring sale"),
        ];
        for (headers, subject) in cases {
            let r = reply_of(&answer(headers, subject, "I am away until Monday."));
            assert!(r.auto.is_some(), "{headers} {subject}");
            assert_eq!(r.snippet, "I am away until Monday.");
        }
        let r = reply_of(&answer("Auto-Submitted: no\r\nPrecedence: list\r\n", "Hello", "Hi"));
        assert_eq!(r.auto, None, "Auto-Submitted: no is a person");
    }

    #[test]
    fn snippets_are_bounded_and_garbage_is_refused() {
        let long = "word ".repeat(400);
        assert_eq!(snippet(&long).chars().count(), SNIPPET_CHARS);
        assert_eq!(snippet("é".repeat(600).as_str()).chars().count(), SNIPPET_CHARS);
        assert_eq!(parse(b""), Err(InboundError::NotAMessage));
    }
}
