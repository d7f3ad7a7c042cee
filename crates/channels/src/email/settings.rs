//! Where the relay is and how to reach it, parsed once from the operator's URL, and how fast
//! Rapport may send.

use std::fmt;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use url::{Host, Url};

/// The submission port (RFC 6409), for `smtp://` without a port.
const SUBMISSION_PORT: u16 = 587;
/// Submission over implicit TLS (RFC 8314), for `smtps://` without a port.
const SUBMISSIONS_PORT: u16 = 465;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `smtp://` (or `?tls=opportunistic`): plain TCP upgraded with STARTTLS when the server
    /// offers it. Credentials are sent only once the connection is encrypted.
    StartTlsIfOffered,
    /// `smtp://…?tls=required`: STARTTLS or no connection.
    StartTlsRequired,
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
    /// `smtp://…?tls=none`: never encrypted, for a relay on the same host or a test sink. The
    /// only mode that will send credentials in clear.
    None,
}

/// The relay: host, port, TLS and login. `Display` and `Debug` show the password as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    host: String,
    port: u16,
    security: Security,
    user: Option<String>,
    password: Option<String>,
    helo: Option<String>,
}

impl SmtpSettings {
    /// Reads `smtp://[user:password@]host[:port][?tls=required|none|opportunistic][&helo=name]`
    /// or `smtps://[user:password@]host[:port][?helo=name]`. The user and password are
    /// percent-decoded (`p%40ss` is `p@ss`). Errors never quote the URL, since it may hold the
    /// password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = Url::parse(url.trim()).map_err(|e| format!("the SMTP URL is not a URL: {e}"))?;
        let implicit_tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => return Err(format!("the SMTP URL must start with smtp:// or smtps://, not {other}://")),
        };
        let host = match url.host() {
            Some(Host::Domain(name)) if !name.is_empty() => name.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            _ => return Err("the SMTP URL has no host".to_owned()),
        };
        let port = url.port().unwrap_or(if implicit_tls { SUBMISSIONS_PORT } else { SUBMISSION_PORT });
        if !matches!(url.path(), "" | "/") {
            return Err("the SMTP URL has a path; put the EHLO name in ?helo=".to_owned());
        }

        let mut security = if implicit_tls { Security::ImplicitTls } else { Security::StartTlsIfOffered };
        let mut helo = None;
        for (key, value) in url.query_pairs() {
            match (&*key, &*value, implicit_tls) {
                ("tls", "opportunistic", false) => security = Security::StartTlsIfOffered,
                ("tls", "required", false) => security = Security::StartTlsRequired,
                ("tls", "none", false) => security = Security::None,
                // smtps:// is TLS already; `required` says the same thing and is harmless.
                ("tls", "required", true) => {}
                ("tls", other, _) => {
                    let allowed = if implicit_tls { "smtps:// is always TLS" } else { "use required, none or opportunistic" };
                    return Err(format!("the SMTP URL has tls={other}: {allowed}"));
                }
                ("helo", name, _) if is_helo_name(name) => helo = Some(name.to_owned()),
                ("helo", _, _) => return Err("the SMTP URL's helo= is not a host name".to_owned()),
                (other, _, _) => return Err(format!("the SMTP URL has an unknown setting {other:?} (known: tls, helo)")),
            }
        }

        let decode = |part: &str, what: &str| {
            percent_decode_str(part).decode_utf8().map(|s| s.into_owned()).map_err(|_| format!("the SMTP {what} is not UTF-8"))
        };
        let user = Some(decode(url.username(), "user")?).filter(|u| !u.is_empty());
        let password = url.password().map(|p| decode(p, "password")).transpose()?.filter(|p| !p.is_empty());
        match (&user, &password) {
            (Some(_), None) => return Err("the SMTP URL has a user but no password".to_owned()),
            (None, Some(_)) => return Err("the SMTP URL has a password but no user".to_owned()),
            _ => {}
        }

        Ok(Self { host, port, security, user, password, helo })
    }

    /// Sets the login, for operators who keep the password out of the URL.
    pub fn with_credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self.password = Some(password.into());
        self
    }

    /// Sets the name Rapport gives in `EHLO`; the machine's host name by default.
    pub fn with_helo_name(mut self, name: impl Into<String>) -> Self {
        self.helo = Some(name.into());
        self
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn security(&self) -> Security {
        self.security
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    pub(crate) fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `host:port`, with brackets around an IPv6 address, for messages.
    pub(crate) fn server(&self) -> String {
        if self.host.contains(':') { format!("[{}]:{}", self.host, self.port) } else { format!("{}:{}", self.host, self.port) }
    }
}

/// The URL the settings would be parsed from, password as `***`.
impl fmt::Display for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.security == Security::ImplicitTls { "smtps" } else { "smtp" };
        write!(f, "{scheme}://")?;
        if let Some(user) = &self.user {
            let user = percent_encoding::utf8_percent_encode(user, percent_encoding::NON_ALPHANUMERIC);
            write!(f, "{user}:***@")?;
        }
        write!(f, "{}", self.server())?;
        let mut separator = '?';
        let mut param = |f: &mut fmt::Formatter<'_>, key: &str, value: &str| {
            let written = write!(f, "{separator}{key}={value}");
            separator = '&';
            written
        };
        match self.security {
            Security::StartTlsRequired => param(f, "tls", "required")?,
            Security::None => param(f, "tls", "none")?,
            Security::StartTlsIfOffered | Security::ImplicitTls => {}
        }
        if let Some(helo) = &self.helo {
            param(f, "helo", helo)?;
        }
        Ok(())
    }
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("helo", &self.helo)
            .finish()
    }
}

/// Letters, digits, dots and hyphens, or an address literal in brackets.
fn is_helo_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'))
}

/// How fast and how wide Rapport sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendLimits {
    /// Messages per second over all recipients, evenly spaced; 0 for no limit.
    pub per_second: u32,
    /// Messages per second to one recipient domain (gmail.com, a company's own domain), evenly
    /// spaced; 0 for no limit. Large mailbox providers throttle senders who burst.
    pub per_domain_per_second: u32,
    /// Connections to the relay at most, and so messages in flight at once. Idle connections
    /// are kept for reuse.
    pub pool_size: u32,
    /// For one message: connecting and logging in (when no pooled connection is free) plus the
    /// whole transaction. Waiting for the rate limits or a free connection is not counted.
    pub timeout: Duration,
}

impl Default for SendLimits {
    /// 50 messages a second, 10 to one domain, 4 connections, 60 s a message: enough for a
    /// small business's campaign within an hour, gentle with a shared relay.
    fn default() -> Self {
        Self { per_second: 50, per_domain_per_second: 10, pool_size: 4, timeout: Duration::from_secs(60) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_defaults_to_submission_and_opportunistic_starttls() {
        let s = SmtpSettings::parse("smtp://relay.example.com").unwrap();
        assert_eq!((s.host(), s.port(), s.security()), ("relay.example.com", 587, Security::StartTlsIfOffered));
        assert_eq!(s.user(), None);
        assert_eq!(s.to_string(), "smtp://relay.example.com:587");
    }

    #[test]
    fn smtps_is_implicit_tls_on_465() {
        let s = SmtpSettings::parse("smtps://relay.example.com").unwrap();
        assert_eq!((s.port(), s.security()), (465, Security::ImplicitTls));
        let s = SmtpSettings::parse("smtps://relay.example.com:2465?tls=required").unwrap();
        assert_eq!((s.port(), s.security()), (2465, Security::ImplicitTls));
        assert!(SmtpSettings::parse("smtps://relay.example.com?tls=none").is_err());
    }

    #[test]
    fn tls_setting_and_helo_are_read() {
        let s = SmtpSettings::parse("smtp://relay.example.com:25?tls=required&helo=mail.shop.example").unwrap();
        assert_eq!((s.port(), s.security(), s.helo_name()), (25, Security::StartTlsRequired, Some("mail.shop.example")));
        assert_eq!(s.to_string(), "smtp://relay.example.com:25?tls=required&helo=mail.shop.example");
        assert_eq!(SmtpSettings::parse("smtp://localhost:25?tls=none").unwrap().security(), Security::None);
        assert_eq!(SmtpSettings::parse("smtp://localhost?tls=opportunistic").unwrap().security(), Security::StartTlsIfOffered);
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets_for_connecting() {
        let s = SmtpSettings::parse("smtp://[::1]:2525").unwrap();
        assert_eq!((s.host(), s.port()), ("::1", 2525));
        assert_eq!(s.to_string(), "smtp://[::1]:2525");
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let s = SmtpSettings::parse("smtp://me%40shop.example:p%40ss%3Aw%C3%B6rd@relay.example.com").unwrap();
        assert_eq!(s.user(), Some("me@shop.example"));
        assert_eq!(s.password(), Some("p@ss:wörd"));
    }

    #[test]
    fn with_credentials_sets_the_login() {
        let s = SmtpSettings::parse("smtp://relay.example.com").unwrap().with_credentials("me", "secret");
        assert_eq!((s.user(), s.password()), (Some("me"), Some("secret")));
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (url, expected) in [
            ("relay.example.com", "not a URL"),
            ("http://relay.example.com", "smtp:// or smtps://"),
            ("smtp://relay.example.com?tls=sometimes", "tls=sometimes"),
            ("smtp://relay.example.com?tsl=required", "unknown setting"),
            ("smtp://relay.example.com/mail.example", "path"),
            ("smtp://me@relay.example.com", "no password"),
            ("smtp://:secret@relay.example.com", "no user"),
            ("smtp://relay.example.com?helo=a%20b", "helo"),
        ] {
            let error = SmtpSettings::parse(url).unwrap_err();
            assert!(error.contains(expected), "{url}: {error}");
        }
    }

    #[test]
    fn the_password_is_never_printed() {
        let s = SmtpSettings::parse("smtp://me:hunter2%21@relay.example.com?tls=required").unwrap();
        assert_eq!(s.to_string(), "smtp://me:***@relay.example.com:587?tls=required");
        let debug = format!("{s:?} {s:#?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("***"));
        let error = SmtpSettings::parse("smtp://me:hunter2@relay.example.com?tls=maybe").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }
}
