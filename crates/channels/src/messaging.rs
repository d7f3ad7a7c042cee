//! SMS and chat through a provider's webhook: Rapport posts each text message as a small,
//! signed JSON document to a URL the operator configures per channel, and the provider (or a
//! few lines of glue in front of Twilio, MessageBird, a WhatsApp Business gateway…) sends it.
//! The same address guard, signing and retry classification as outgoing webhooks apply
//! ([`crate::webhook`]); what this adds is the request body, the provider's credentials and
//! reading the provider's own message id from its answer.
//!
//! The request (`docs/messaging.md` documents it for integrators):
//!
//! ```json
//! {"message_id": "0193…", "channel": "sms", "to": "+4915112345678", "text": "Hi Ana …",
//!  "contact_id": "0193…", "metadata": {"template": "birthday-sms", "marketing": true, …}}
//! ```
//!
//! with `Idempotency-Key` and `Rapport-Delivery` set to the message id (the same on every
//! attempt, so a provider can drop a repeat after a retry or a crash) and `Rapport-Signature`
//! when a secret is configured.

use std::fmt;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::webhook::{AddressPolicy, DeliveryError, Timeouts, WebhookClient, WebhookRequest, WebhookSecret};

/// How to reach one channel's provider.
#[derive(Clone, Default)]
pub struct ProviderSettings {
    /// Where messages are posted: an `http://` or `https://` URL without credentials.
    pub url: String,
    /// Signs every request (`Rapport-Signature`, as outgoing webhooks).
    pub secret: Option<String>,
    /// Sent as `Authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// More headers for every request (an account id, an API key header).
    pub headers: Vec<(String, String)>,
    /// Let the URL be a private or loopback address (a gateway on the same host, tests).
    pub allow_private: bool,
}

impl fmt::Debug for ProviderSettings {
    /// The URL and header names only: secrets, tokens and header values stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<redacted>"))
            .field("headers", &self.headers.iter().map(|(k, _)| format!("{k}: <redacted>")).collect::<Vec<_>>())
            .field("allow_private", &self.allow_private)
            .finish()
    }
}

/// The settings cannot work; the message names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingsError(pub String);

/// One text message as the provider receives it (the JSON body).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TextMessage {
    /// Rapport's outbox id: stable over retries, the idempotency key.
    pub message_id: String,
    /// `sms` or `chat`.
    pub channel: String,
    /// The recipient in E.164 (`+4915112345678`).
    pub to: String,
    /// The rendered text part of the template.
    pub text: String,
    pub contact_id: String,
    /// Template, run, attempt, marketing or not: for the provider's logs and routing.
    pub metadata: Value,
}

/// What the provider said when it took a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub status: u16,
    /// The provider's id for the message, when its answer was JSON with one
    /// (`provider_message_id`, `message_id`, `id` or `sid`, at the top or under `data`).
    pub provider_message_id: Option<String>,
}

/// Sends text messages of one channel to its provider. Cheap to share.
#[derive(Debug, Clone)]
pub struct TextProvider {
    client: WebhookClient,
    url: String,
    secret: Option<WebhookSecret>,
    headers: HeaderMap,
}

impl TextProvider {
    pub fn new(settings: ProviderSettings) -> Result<Self, SettingsError> {
        let url = settings.url.trim().to_string();
        let parsed = url::Url::parse(&url).map_err(|e| SettingsError(format!("url: '{url}' is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SettingsError(format!("url: {url} is not an http:// or https:// URL")));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(SettingsError("url: put credentials in auth_token or headers, not in the URL".into()));
        }
        let mut headers = HeaderMap::new();
        if let Some(token) = settings.auth_token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| SettingsError("auth_token: cannot be sent in an HTTP header".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        for (name, value) in &settings.headers {
            let header = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| SettingsError(format!("headers: '{name}' is not a header name")))?;
            let mut value = HeaderValue::from_str(value.trim())
                .map_err(|_| SettingsError(format!("headers: the value of {name} cannot be sent in an HTTP header")))?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        let policy = AddressPolicy::new(settings.allow_private, Vec::<String>::new())
            .map_err(|e| SettingsError(format!("allow_private: {e}")))?;
        let client = WebhookClient::new(policy, Timeouts::default()).map_err(|e| SettingsError(e.to_string()))?;
        let secret = settings.secret.filter(|s| !s.is_empty()).map(WebhookSecret::new);
        Ok(Self { client, url, secret, headers })
    }

    /// The provider's URL (for logs; it carries no credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Posts one message. A 2xx answer is [`Accepted`]; the errors are those of
    /// [`WebhookClient::deliver`]: `Temporary` for a network error, a timeout, 408, 425, 429
    /// or 5xx (with the provider's `Retry-After`), `Permanent` for any other answer (its start
    /// quoted in the message), `Refused` when the address policy forbids the URL.
    pub async fn send(&self, message: &TextMessage) -> Result<Accepted, DeliveryError> {
        let body = serde_json::to_string(message).map_err(|e| DeliveryError::Permanent {
            status: None,
            message: format!("the message could not be written as JSON: {e}"),
        })?;
        let request = WebhookRequest {
            url: self.url.clone(),
            body,
            secret: self.secret.clone(),
            delivery_id: message.message_id.clone(),
            idempotency_key: message.message_id.clone(),
        };
        let answer = self.client.deliver_with(&request, &self.headers).await?;
        Ok(Accepted { status: answer.status, provider_message_id: provider_message_id(&answer.body) })
    }
}

/// Longest provider message id kept.
const MAX_PROVIDER_ID: usize = 200;

/// The provider's id for a message in its JSON answer, if it gave one.
pub fn provider_message_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let pick = |obj: &Value| {
        ["provider_message_id", "message_id", "id", "sid"].iter().find_map(|k| match obj.get(k)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let id = pick(&v).or_else(|| v.get("data").and_then(pick))?;
    (id.chars().count() <= MAX_PROVIDER_ID).then_some(id)
}

/// Replies that ask to stop text messages: the carriers' and regulators' usual keywords
/// (CTIA's STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT; STOPP in German and Scandinavian,
/// ARRET/ARRÊT in French, BAJA and ALTO in Spanish, PARAR in Portuguese). The whole reply
/// must be the keyword (case, accents, spaces and final punctuation aside), so "please don't
/// stop" is not an opt-out.
pub fn is_stop_request(text: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "stop",
        "stopall",
        "stop all",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "optout",
        "opt out",
        "opt-out",
        "stopp",
        "arret",
        "arrêt",
        "baja",
        "alto",
        "parar",
    ];
    let t = text.trim().trim_end_matches(['.', '!']).trim().to_lowercase();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    KEYWORDS.contains(&t.as_str())
}

/// Replies that ask for text messages again after a stop: the carriers' START and UNSTOP (and
/// "opt in"). Like [`is_stop_request`], the whole reply must be the keyword.
pub fn is_start_request(text: &str) -> bool {
    const KEYWORDS: &[&str] = &["start", "unstop", "optin", "opt in", "opt-in"];
    let t = text.trim().trim_end_matches(['.', '!']).trim().to_lowercase();
    let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
    KEYWORDS.contains(&t.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_asks_for_messages_again_only_as_the_whole_reply() {
        for yes in ["START", " start ", "Unstop!", "opt in"] {
            assert!(is_start_request(yes), "{yes:?}");
        }
        for no in ["start over", "STOP", "restart", ""] {
            assert!(!is_start_request(no), "{no:?}");
        }
    }

    #[test]
    fn the_provider_id_is_read_from_common_answers() {
        assert_eq!(provider_message_id(br#"{"id":"SM123"}"#).as_deref(), Some("SM123"));
        assert_eq!(provider_message_id(br#"{"sid":"SMabc","status":"queued"}"#).as_deref(), Some("SMabc"));
        assert_eq!(provider_message_id(br#"{"data":{"message_id":42}}"#).as_deref(), Some("42"));
        assert_eq!(provider_message_id(br#"{"provider_message_id":"p-1","id":"other"}"#).as_deref(), Some("p-1"));
        assert_eq!(provider_message_id(b"ok"), None);
        assert_eq!(provider_message_id(br#"{"id":""}"#), None);
        assert_eq!(provider_message_id(b""), None);
    }

    #[test]
    fn stop_keywords_are_whole_replies() {
        for yes in ["STOP", " stop ", "Stop.", "STOPP", "arrêt", "ARRET!", "Unsubscribe", "stop  all", "Opt-Out"] {
            assert!(is_stop_request(yes), "{yes}");
        }
        for no in ["please don't stop", "STOPPED", "stop it", "yes", ""] {
            assert!(!is_stop_request(no), "{no}");
        }
    }

    #[test]
    fn settings_are_checked_and_never_printed() {
        let ok = ProviderSettings {
            url: "http://127.0.0.1:9/sms".into(),
            secret: Some("hunter2".into()),
            auth_token: Some("tok-very-secret".into()),
            headers: vec![("X-Account".into(), "acct-secret".into())],
            allow_private: true,
        };
        let shown = format!("{ok:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("tok-very") && !shown.contains("acct-secret"), "{shown}");
        assert!(TextProvider::new(ok.clone()).is_ok());
        let bad = |f: fn(&mut ProviderSettings)| {
            let mut s = ok.clone();
            f(&mut s);
            TextProvider::new(s).unwrap_err().0
        };
        assert!(bad(|s| s.url = "ftp://x.example/".into()).starts_with("url:"));
        assert!(bad(|s| s.url = "http://u:p@x.example/".into()).starts_with("url:"));
        assert!(bad(|s| s.headers = vec![("bad header".into(), "v".into())]).starts_with("headers:"));
        assert!(bad(|s| s.auth_token = Some("a\nb".into())).starts_with("auth_token:"));
    }

    #[tokio::test]
    async fn a_private_provider_needs_allow_private() {
        let settings = ProviderSettings { url: "http://127.0.0.1:9/sms".into(), ..ProviderSettings::default() };
        let message = TextMessage {
            message_id: "m1".into(),
            channel: "sms".into(),
            to: "+4915112345678".into(),
            text: "Hi".into(),
            contact_id: "c1".into(),
            metadata: Value::Null,
        };
        let refused = TextProvider::new(settings).unwrap().send(&message).await.unwrap_err();
        assert!(matches!(refused, DeliveryError::Refused { .. }), "{refused:?}");
        for spelling in ["http://2130706433/sms", "http://[::ffff:127.0.0.1]/sms", "http://0x7f.1/sms"] {
            let settings = ProviderSettings { url: spelling.into(), ..ProviderSettings::default() };
            let refused = TextProvider::new(settings).unwrap().send(&message).await.unwrap_err();
            assert!(matches!(refused, DeliveryError::Refused { .. }), "{spelling}: {refused:?}");
        }
    }

    #[test]
    fn the_body_is_the_documented_json() {
        let m = TextMessage {
            message_id: "m1".into(),
            channel: "sms".into(),
            to: "+4915112345678".into(),
            text: "Hi".into(),
            contact_id: "c1".into(),
            metadata: serde_json::json!({"template": "t"}),
        };
        let v: Value = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"message_id": "m1", "channel": "sms", "to": "+4915112345678", "text": "Hi",
                "contact_id": "c1", "metadata": {"template": "t"}})
        );
    }
}
