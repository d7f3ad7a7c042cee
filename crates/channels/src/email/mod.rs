//! Email over SMTP. The engine commits each message to its outbox and hands it to
//! [`EmailSender::send`], which renders it as MIME ([`build_mime`]), waits for the rate limits,
//! sends it over a pooled connection and says whether the relay took it, refused it for now (try
//! again later) or refused it for good.
//!
//! The relay is configured by one URL ([`SmtpSettings::parse`]): `smtp://host:port` upgrades with
//! STARTTLS when the server offers it (`?tls=required` insists, `?tls=none` never tries), and
//! `smtps://host:port` speaks TLS from the first byte. TLS is rustls with the bundled Mozilla
//! roots. The password never leaves [`SmtpSettings`] in any printed form.
//!
//! [`sink`] is a small SMTP server for tests and benchmarks.

pub mod inbound;
mod mime;
mod rate;
mod sender;
mod settings;
pub mod sink;
#[cfg(test)]
mod tests;

pub use lettre::Address;
pub use lettre::message::Mailbox;
pub use mime::build_mime;
pub use sender::{BuiltEmail, EmailSender, SendTimes};
pub use settings::{Security, SendLimits, SmtpSettings};

/// One message as the outbox row describes it, already rendered.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    /// `<unique@domain>`, sent as `Message-ID` exactly as given. The same for every attempt of
    /// one outbox row, so a receiver (and a reply) can tell a retry from a second message.
    pub message_id: String,
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    /// The one recipient: both the `To` header and the envelope.
    pub to: Mailbox,
    /// Line breaks in it are sent as spaces: a header cannot carry them.
    pub subject: String,
    /// The plain-text body, always sent; first part of `multipart/alternative` when there is HTML.
    pub text: String,
    pub html: Option<String>,
    /// Present on marketing mail only; adds `List-Unsubscribe` and
    /// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
    pub list_unsubscribe: Option<ListUnsubscribe>,
    /// Further headers, e.g. `X-Rapport-Message`. Names must be printable ASCII and may not
    /// replace a header this module writes (From, To, Subject, Message-ID, Content-Type…).
    pub headers: Vec<(String, String)>,
}

/// Where a recipient unsubscribes. RFC 8058 one-click needs the HTTPS URL; the `mailto:` address
/// is for clients that only offer that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUnsubscribe {
    /// `https://…`, receiving the one-click POST.
    pub url: String,
    /// A bare address (`unsubscribe@example.com`) or a full `mailto:` URL.
    pub mailto: Option<String>,
}

/// The relay took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The relay's reply to the end of the message, e.g. `250 2.0.0 Ok: queued as 4F2A1`; worth
    /// keeping with the outbox row, since the queue id is what the relay's logs are searched by.
    pub reply: String,
}

/// Why a message did not go out. The message names the server and quotes its reply where there
/// was one; it never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later: a 4xx reply, a network failure or timeout, or a relay that could not be
    /// reached or logged in to (a configuration fault is no reason to give up on the message).
    #[error("temporary failure: {message}")]
    Temporary { message: String },
    /// Do not try again: the relay refused this message with a 5xx reply, or the message itself
    /// cannot be sent (an invalid header, an address the relay cannot carry).
    #[error("permanent failure: {message}")]
    Permanent { message: String },
}

impl SendError {
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Temporary { .. })
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Temporary { message } | Self::Permanent { message } => message,
        }
    }
}
