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
}

impl Default for AutomationConfig {
    fn default() -> Self {
        Self {
            catch_up_hours: 24,
            quiet_hours: "21:00-08:00".into(),
            max_messages_per_week: 3,
            max_emails_per_week: 2,
            max_sms_per_week: 1,
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
}
