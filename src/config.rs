//! Configuration: built-in defaults, then `rapport.toml`, then `RAPPORT_*` environment
//! variables, then command-line flags — each overriding the one before.

use std::path::{Path, PathBuf};

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use rapport_core::profile::ProfileRules;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// `sqlite://PATH` (default `sqlite://rapport.db`) or `postgres://USER@HOST/DB`.
    pub database_url: String,
    /// Address the HTTP server listens on.
    pub bind: String,
    /// ISO 3166 region used to read phone numbers written without `+country`.
    pub phone_region: String,
    /// `text` (human-friendly) or `json` (one JSON object per line, for log shippers).
    pub log_format: String,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Seconds before a request is abandoned with 408.
    pub request_timeout_secs: u64,
    /// PostgreSQL connections per instance.
    pub pg_max_connections: u32,
    /// SQLite reader connections.
    pub sqlite_readers: u32,
    /// When set and no API key exists yet, this becomes an admin key (for automated setups).
    pub bootstrap_key: Option<String>,
    /// Largest body of `POST /api/v1/events`, in bytes (a batch holds up to 10,000 events).
    pub max_ingest_body_bytes: usize,
    /// How events add up to profiles: base currency, exchange rates, value tiers, lifecycle
    /// and RFM thresholds (the `[profiles]` table of rapport.toml).
    pub profiles: ProfileRules,
    /// The IANA time zone of contacts who have none: their "today" in segment filters.
    pub default_time_zone: String,
    /// Minutes between full re-evaluations of segments that depend on time (birthdays,
    /// windows such as "in the last 21 days").
    pub segment_refresh_minutes: u64,
    /// Mark the sign-in cookie `Secure` (browsers then send it over HTTPS only). Set it when
    /// Rapport is reached over HTTPS; requests arriving through an HTTPS proxy get it anyway.
    pub secure_cookies: bool,
    /// The SMTP relay email goes out through: `smtp://host:port` (STARTTLS when offered),
    /// `smtps://host:port`, with `user:password@` in it when the relay needs a login. Without
    /// it, messages wait in the outbox marked unsendable.
    pub smtp_url: Option<String>,
    /// Who email is from: `Harbour & Pine <hello@harbourpine.example>`.
    pub smtp_from: String,
    /// The address people reach Rapport at, for links in email (unsubscribe).
    pub public_url: String,
    /// How workflows behave (the `[automation]` table).
    pub automation: AutomationConfig,
    /// Outgoing webhooks of workflows (the `[webhooks]` table).
    pub webhooks: WebhooksConfig,
    /// How fast and how wide email goes out (the `[email]` table).
    pub email: EmailConfig,
    /// SMS and chat providers (the `[messaging]` table).
    pub messaging: MessagingConfig,
}

/// `[email]` in rapport.toml: the sender's pace, kept gentle by default for a shared relay.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// Messages per second over all recipients; 0 for no limit.
    pub per_second: u32,
    /// Messages per second to one recipient domain; 0 for no limit.
    pub per_domain_per_second: u32,
    /// Connections to the relay at most (messages in flight at once).
    pub connections: u32,
    /// Seconds one message may take (connecting, logging in, the transaction).
    pub timeout_secs: u64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        let d = rapport_channels::email::SendLimits::default();
        Self {
            per_second: d.per_second,
            per_domain_per_second: d.per_domain_per_second,
            connections: d.pool_size,
            timeout_secs: d.timeout.as_secs(),
        }
    }
}

impl EmailConfig {
    /// The sender's limits, or what is wrong with them.
    pub fn limits(&self) -> anyhow::Result<rapport_channels::email::SendLimits> {
        anyhow::ensure!(
            (1..=256).contains(&self.connections),
            "email.connections: {} is out of range; use 1 to 256",
            self.connections
        );
        anyhow::ensure!(self.timeout_secs >= 1, "email.timeout_secs: must be at least 1");
        Ok(rapport_channels::email::SendLimits {
            per_second: self.per_second,
            per_domain_per_second: self.per_domain_per_second,
            pool_size: self.connections,
            timeout: std::time::Duration::from_secs(self.timeout_secs),
        })
    }
}

/// `[automation]` in rapport.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutomationConfig {
    /// How late (hours) a date or inactivity trigger may still fire after the server was down;
    /// older occurrences are passed over instead of all firing at once.
    pub catch_up_hours: u32,
    /// Local hours of each contact in which no message goes out, `"21:00-08:00"`; `"off"` for none.
    pub quiet_hours: String,
    /// At most this many marketing messages per person in 7 days, all channels together.
    pub max_messages_per_week: u32,
    /// At most this many marketing emails per person in 7 days.
    pub max_emails_per_week: u32,
    /// At most this many marketing text messages per person in 7 days.
    pub max_sms_per_week: u32,
    /// At most this many marketing chat messages per person in 7 days.
    pub max_chat_per_week: u32,
}

impl Default for AutomationConfig {
    fn default() -> Self {
        Self {
            catch_up_hours: 24,
            quiet_hours: "21:00-08:00".into(),
            max_messages_per_week: 3,
            max_emails_per_week: 2,
            max_sms_per_week: 1,
            max_chat_per_week: 1,
        }
    }
}

impl AutomationConfig {
    /// The store's options, or what is wrong with the configuration.
    pub fn options(&self) -> anyhow::Result<rapport_store::automation::AutomationOptions> {
        use rapport_core::workflow::{MessageChannel, TimeOfDay};
        use rapport_store::automation::{AutomationOptions, FrequencyCap};
        let quiet = match self.quiet_hours.trim() {
            "" | "off" => None,
            raw => {
                let (from, to) = raw.split_once('-').ok_or_else(|| {
                    anyhow::anyhow!("automation.quiet_hours: write a range such as \"21:00-08:00\", or \"off\"")
                })?;
                let t = |s: &str| TimeOfDay::parse(s).map_err(|e| anyhow::anyhow!("automation.quiet_hours: {e}"));
                Some((t(from)?, t(to)?))
            }
        };
        let week = chrono::Duration::days(7);
        Ok(AutomationOptions {
            catch_up: chrono::Duration::hours(i64::from(self.catch_up_hours)),
            quiet_hours: quiet,
            caps: vec![
                FrequencyCap { channel: None, max: self.max_messages_per_week, per: week },
                FrequencyCap { channel: Some(MessageChannel::Email), max: self.max_emails_per_week, per: week },
                FrequencyCap { channel: Some(MessageChannel::Sms), max: self.max_sms_per_week, per: week },
                FrequencyCap { channel: Some(MessageChannel::Chat), max: self.max_chat_per_week, per: week },
            ],
            ready_channels: Vec::new(),
        })
    }
}

/// `[webhooks]` in rapport.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Let webhooks call private, loopback and link-local addresses (an intranet service).
    pub allow_private: bool,
    /// Hosts, addresses or ranges (`10.1.0.0/16`) webhooks may call even though they are private.
    pub allow_hosts: Vec<String>,
    /// Signing secrets by the name workflows give as `secret_ref` (`[webhooks.secrets]`).
    pub secrets: Secrets,
}

/// `[messaging]` in rapport.toml: the provider webhook of each text channel. A channel without
/// one keeps its messages in the outbox, marked unsendable.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagingConfig {
    /// `[messaging.sms]`; also `RAPPORT_SMS_URL`, `RAPPORT_SMS_SECRET`, `RAPPORT_SMS_AUTH_TOKEN`.
    pub sms: Option<ProviderConfig>,
    /// `[messaging.chat]`; also `RAPPORT_CHAT_URL`, `RAPPORT_CHAT_SECRET`, `RAPPORT_CHAT_AUTH_TOKEN`.
    pub chat: Option<ProviderConfig>,
}

/// One text channel's provider (see docs/messaging.md for the request it receives).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Where each message is posted.
    pub url: String,
    /// Signs each request (`Rapport-Signature`), as webhooks are signed.
    #[serde(default)]
    pub secret: Option<String>,
    /// Sent as `Authorization: Bearer <token>`.
    #[serde(default)]
    pub auth_token: Option<String>,
    /// More headers for each request (`[messaging.sms.headers]`).
    #[serde(default)]
    pub headers: Secrets,
    /// Let the URL be a private or loopback address (a gateway on the same host).
    #[serde(default)]
    pub allow_private: bool,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .field("headers", &self.headers)
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

impl ProviderConfig {
    pub fn settings(&self) -> rapport_channels::messaging::ProviderSettings {
        rapport_channels::messaging::ProviderSettings {
            url: self.url.clone(),
            secret: self.secret.clone(),
            auth_token: self.auth_token.clone(),
            headers: self.headers.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            allow_private: self.allow_private,
        }
    }
}

/// Webhook signing secrets; never printed.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secrets(pub std::collections::BTreeMap<String, String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys().map(|k| format!("{k}: <redacted>"))).finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://rapport.db".into(),
            bind: "127.0.0.1:8080".into(),
            phone_region: "US".into(),
            log_format: "text".into(),
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            pg_max_connections: 16,
            sqlite_readers: 8,
            bootstrap_key: None,
            max_ingest_body_bytes: 32 * 1024 * 1024,
            profiles: ProfileRules::default(),
            default_time_zone: "UTC".into(),
            segment_refresh_minutes: 15,
            secure_cookies: false,
            smtp_url: None,
            smtp_from: "Rapport <rapport@localhost>".into(),
            public_url: "http://127.0.0.1:8080".into(),
            automation: AutomationConfig::default(),
            webhooks: WebhooksConfig::default(),
            email: EmailConfig::default(),
            messaging: MessagingConfig::default(),
        }
    }
}

/// Values given on the command line; only the ones present override.
#[derive(Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_url: Option<String>,
}

impl Config {
    /// Loads the layers. `file` is the `--config` path; without it `./rapport.toml` is read
    /// when present.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(path.exists(), "the configuration file {} does not exist", path.display());
                fig = fig.merge(Toml::file(path));
            }
            None => {
                let default = PathBuf::from("rapport.toml");
                if default.exists() {
                    fig = fig.merge(Toml::file(default));
                }
            }
        }
        // Only the known keys: RAPPORT_TEST_DATABASE_URL and friends belong to the test suite.
        let known = [
            "database_url",
            "bind",
            "phone_region",
            "log_format",
            "max_body_bytes",
            "request_timeout_secs",
            "pg_max_connections",
            "sqlite_readers",
            "bootstrap_key",
            "max_ingest_body_bytes",
            "smtp_url",
            "smtp_from",
            "public_url",
        ];
        fig = fig.merge(Env::prefixed("RAPPORT_").filter(move |k| known.contains(&k.as_str().to_ascii_lowercase().as_str())));
        // RAPPORT_SMS_URL → messaging.sms.url, and so on for chat.
        for (prefix, channel) in [("RAPPORT_SMS_", "sms"), ("RAPPORT_CHAT_", "chat")] {
            let keys = ["url", "secret", "auth_token", "allow_private"];
            fig = fig.merge(
                Env::prefixed(prefix)
                    .filter(move |k| keys.contains(&k.as_str().to_ascii_lowercase().as_str()))
                    .map(move |k| format!("messaging.{channel}.{}", k.as_str().to_ascii_lowercase()).into()),
            );
        }
        fig = fig.merge(Serialized::defaults(overrides));
        fig.extract().context("invalid configuration (check rapport.toml and RAPPORT_* variables)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
    fn flags_beat_environment_beat_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("rapport.toml", "bind = \"0.0.0.0:1\"\nphone_region = \"DE\"\ndatabase_url = \"sqlite://file.db\"")?;
            jail.set_env("RAPPORT_PHONE_REGION", "PH");
            jail.set_env("RAPPORT_DATABASE_URL", "sqlite://env.db");
            jail.set_env("RAPPORT_TEST_DATABASE_URL", "postgres://ignored");
            let c = Config::load(None, Overrides { database_url: Some("sqlite://flag.db".into()), bind: None, smtp_url: None })
                .unwrap();
            assert_eq!(c.bind, "0.0.0.0:1");
            assert_eq!(c.phone_region, "PH");
            assert_eq!(c.database_url, "sqlite://flag.db");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
    fn text_providers_come_from_file_and_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "rapport.toml",
                "[messaging.chat]\nurl = \"https://chat.example/send\"\n[messaging.chat.headers]\nX-Account = \"acme\"",
            )?;
            jail.set_env("RAPPORT_SMS_URL", "https://sms.example/send");
            jail.set_env("RAPPORT_SMS_SECRET", "whsec-very-secret");
            let c = Config::load(None, Overrides::default()).unwrap();
            let sms = c.messaging.sms.as_ref().expect("sms from the environment");
            assert_eq!((sms.url.as_str(), sms.secret.as_deref()), ("https://sms.example/send", Some("whsec-very-secret")));
            let chat = c.messaging.chat.as_ref().expect("chat from the file");
            assert_eq!(chat.headers.0.get("X-Account").map(String::as_str), Some("acme"));
            assert!(!format!("{c:?}").contains("whsec-very-secret"));
            Ok(())
        });
    }
}
