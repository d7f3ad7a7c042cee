//! Consent and subscription topics: what a person agreed to receive, on which channel, on what
//! legal basis and where the choice came from. Consent is a ledger of facts (a grant, a
//! withdrawal); the current state is whatever the latest effective fact says. A double opt-in
//! grant is not effective until the person confirms it.
//!
//! Privacy choices are separate: "do not track" is about recording opens and clicks, "do not
//! contact" stops every marketing message on every channel whatever the consent says.

use serde::{Deserialize, Serialize};

use crate::error::ValidationErrors;
use crate::{Patch, text};

/// The purpose that stands for every marketing topic at once. Its subscription topic is `*`.
pub const ALL_MARKETING: &str = "marketing";

/// The subscription-state key of "all marketing" (what an unsubscribe link writes).
pub const ALL_TOPICS: &str = "*";

/// A topic or purpose key: a lowercase slug (`newsletter`, `offers`, `new_arrivals`), 1–64
/// characters, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicKey(String);

impl TopicKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let k = raw.trim();
        if k.is_empty() {
            return Err("must not be blank".into());
        }
        if k.len() > 64 {
            return Err("must be at most 64 characters".into());
        }
        let starts_well = k.chars().next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !starts_well || !rest_ok {
            return Err(format!(
                "'{k}' is not a key: use lowercase letters, digits, '_' and '-', starting with a letter (e.g. newsletter)"
            ));
        }
        Ok(Self(k.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a consent is for: every marketing topic, or one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConsentPurpose {
    AllMarketing,
    Topic(TopicKey),
}

impl ConsentPurpose {
    /// `marketing` (or `*`) for everything, otherwise a topic key.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            ALL_MARKETING | ALL_TOPICS => Ok(Self::AllMarketing),
            other => TopicKey::parse(other).map(Self::Topic),
        }
    }

    /// The name stored in the ledger.
    pub fn as_str(&self) -> &str {
        match self {
            Self::AllMarketing => ALL_MARKETING,
            Self::Topic(t) => t.as_str(),
        }
    }

    /// The key of the email subscription state it changes (`*` for all marketing).
    pub fn subscription_topic(&self) -> &str {
        match self {
            Self::AllMarketing => ALL_TOPICS,
            Self::Topic(t) => t.as_str(),
        }
    }
}

/// How a person can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentChannel {
    Email,
    Sms,
    Phone,
    Post,
    Chat,
    Push,
}

impl ConsentChannel {
    pub const ALL: [ConsentChannel; 6] = [Self::Email, Self::Sms, Self::Phone, Self::Post, Self::Chat, Self::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Phone => "phone",
            Self::Post => "post",
            Self::Chat => "chat",
            Self::Push => "push",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let k = raw.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|c| c.as_str() == k).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
            format!("'{}' is not a channel; use one of {}", raw.trim(), names.join(", "))
        })
    }
}

/// The lawful basis a contact is processed on (GDPR art. 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    Consent,
    Contract,
    LegitimateInterest,
    LegalObligation,
}

impl LegalBasis {
    pub const ALL: [LegalBasis; 4] = [Self::Consent, Self::Contract, Self::LegitimateInterest, Self::LegalObligation];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "consent",
            Self::Contract => "contract",
            Self::LegitimateInterest => "legitimate_interest",
            Self::LegalObligation => "legal_obligation",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let k = raw.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|b| b.as_str() == k).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|b| b.as_str()).collect();
            format!("'{}' is not a legal basis; use one of {}", raw.trim(), names.join(", "))
        })
    }
}

/// A grant or withdrawal as sent (`POST /contacts/{id}/consent`).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsentDraft {
    /// `marketing` for every topic, or a subscription topic's key.
    pub purpose: Option<String>,
    /// `email` (default), `sms`, `phone`, `post`, `chat` or `push`.
    pub channel: Option<String>,
    /// `true` grants, `false` withdraws.
    pub granted: Option<bool>,
    /// Where the choice was made: `signup_form`, `phone_call`, `import`…
    pub source: Option<String>,
    /// `consent` (default), `contract`, `legitimate_interest` or `legal_obligation`.
    pub legal_basis: Option<String>,
    /// What proves it: a form submission id, the wording shown, who took the call.
    pub evidence: Option<String>,
    /// The grant waits until the person confirms it through the confirmation link.
    pub double_opt_in: Option<bool>,
    /// With `double_opt_in` on email: the template of the confirmation email Rapport sends them
    /// (it reads `{{ confirm_url }}`). Without it the caller sends the link itself.
    pub confirmation_template: Option<String>,
}

/// A validated grant or withdrawal.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentInput {
    pub purpose: ConsentPurpose,
    pub channel: ConsentChannel,
    pub granted: bool,
    pub source: String,
    pub legal_basis: LegalBasis,
    pub evidence: Option<String>,
    pub double_opt_in: bool,
    /// The confirmation email's template, for a double opt-in grant on email.
    pub confirmation_template: Option<String>,
}

impl ConsentInput {
    pub fn parse(d: ConsentDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let purpose = match d.purpose.as_deref() {
            None => {
                errs.push("purpose", "is required: marketing, or a subscription topic's key");
                None
            }
            Some(p) => ConsentPurpose::parse(p).map_err(|m| errs.push("purpose", m)).ok(),
        };
        let channel = match d.channel.as_deref() {
            None => Some(ConsentChannel::Email),
            Some(c) => ConsentChannel::parse(c).map_err(|m| errs.push("channel", m)).ok(),
        };
        if d.granted.is_none() {
            errs.push("granted", "is required: true grants, false withdraws");
        }
        let source = errs.take(text::required(d.source, "source", 100));
        let legal_basis = match d.legal_basis.as_deref() {
            None => Some(LegalBasis::Consent),
            Some(b) => LegalBasis::parse(b).map_err(|m| errs.push("legal_basis", m)).ok(),
        };
        let evidence = errs.take(text::optional(d.evidence, "evidence", 2000)).flatten();
        let double_opt_in = d.double_opt_in.unwrap_or(false);
        if double_opt_in && d.granted == Some(false) {
            errs.push("double_opt_in", "only a grant waits for confirmation; a withdrawal takes effect at once");
        }
        let confirmation_template = errs.take(text::optional(d.confirmation_template, "confirmation_template", 200)).flatten();
        if confirmation_template.is_some() && (!double_opt_in || channel.is_some_and(|c| c != ConsentChannel::Email)) {
            errs.push("confirmation_template", "goes with a double opt-in grant on email (\"double_opt_in\": true)");
        }
        errs.into_result()?;
        Ok(Self {
            purpose: purpose.expect("checked above"),
            channel: channel.expect("checked above"),
            granted: d.granted.expect("checked above"),
            source: source.expect("checked above"),
            legal_basis: legal_basis.expect("checked above"),
            evidence,
            double_opt_in,
            confirmation_template,
        })
    }
}

/// A subscription topic people choose in the preference centre.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionTopic {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    /// Whether a contact with no recorded choice receives it.
    pub default_subscribed: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TopicDraft {
    /// A lowercase slug such as `newsletter`; fixed once created.
    pub key: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    /// Default `true`: people receive it until they opt out. `false` makes it opt-in only.
    pub default_subscribed: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TopicPatch {
    pub name: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Patch<String>,
    pub default_subscribed: Option<bool>,
}

/// A validated topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicInput {
    pub key: TopicKey,
    pub name: String,
    pub description: Option<String>,
    pub default_subscribed: bool,
}

impl TopicInput {
    pub fn parse(d: TopicDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let key = match d.key.as_deref() {
            None => {
                errs.push("key", "is required (a lowercase slug such as newsletter)");
                None
            }
            Some(k) if k.trim() == ALL_MARKETING || k.trim() == ALL_TOPICS => {
                errs.push("key", format!("'{}' is reserved: it means every marketing topic", k.trim()));
                None
            }
            Some(k) => TopicKey::parse(k).map_err(|m| errs.push("key", m)).ok(),
        };
        let name = errs.take(text::required(d.name, "name", 100));
        let description = errs.take(text::optional(d.description, "description", 500)).flatten();
        errs.into_result()?;
        Ok(Self {
            key: key.expect("checked above"),
            name: name.expect("checked above"),
            description,
            default_subscribed: d.default_subscribed.unwrap_or(true),
        })
    }

    pub fn patched(current: &SubscriptionTopic, p: TopicPatch) -> Result<Self, ValidationErrors> {
        Self::parse(TopicDraft {
            key: Some(current.key.clone()),
            name: Some(p.name.unwrap_or_else(|| current.name.clone())),
            description: p.description.apply(current.description.clone()),
            default_subscribed: Some(p.default_subscribed.unwrap_or(current.default_subscribed)),
        })
    }
}

/// Privacy choices as sent (`PUT /contacts/{id}/privacy`); an absent field keeps its value.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PrivacyDraft {
    /// Opens, clicks and page views are not recorded.
    pub do_not_track: Option<bool>,
    /// No marketing message on any channel.
    pub do_not_contact: Option<bool>,
    /// Unsubscribes from all marketing, flags the contact and tells their owner.
    pub not_interested: Option<bool>,
    /// Where the choice came from (default `api`).
    pub source: Option<String>,
}

/// A contact's privacy choices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Privacy {
    pub do_not_track: bool,
    pub do_not_contact: bool,
    pub not_interested: bool,
}

impl Privacy {
    /// The choices after `d`, and where they came from.
    pub fn patched(self, d: PrivacyDraft) -> Result<(Privacy, String), ValidationErrors> {
        let source = text::optional(d.source, "source", 100)?.unwrap_or_else(|| "api".into());
        Ok((
            Privacy {
                do_not_track: d.do_not_track.unwrap_or(self.do_not_track),
                do_not_contact: d.do_not_contact.unwrap_or(self.do_not_contact),
                not_interested: d.not_interested.unwrap_or(self.not_interested),
            },
            source,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> ConsentDraft {
        ConsentDraft {
            purpose: Some("newsletter".into()),
            granted: Some(true),
            source: Some("signup_form".into()),
            ..Default::default()
        }
    }

    #[test]
    fn keys_are_lowercase_slugs() {
        assert_eq!(TopicKey::parse(" new_arrivals ").unwrap().as_str(), "new_arrivals");
        assert!(TopicKey::parse("offers-2026").is_ok());
        for bad in ["", "Offers", "2026", "a b", "é", "*", &"x".repeat(65)] {
            assert!(TopicKey::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(ConsentPurpose::parse("*").unwrap(), ConsentPurpose::AllMarketing);
        assert_eq!(ConsentPurpose::parse("marketing").unwrap().subscription_topic(), "*");
        assert_eq!(ConsentPurpose::parse("offers").unwrap().subscription_topic(), "offers");
    }

    #[test]
    fn a_draft_defaults_to_email_and_consent() {
        let c = ConsentInput::parse(draft()).unwrap();
        assert_eq!((c.channel, c.legal_basis, c.double_opt_in), (ConsentChannel::Email, LegalBasis::Consent, false));
    }

    #[test]
    fn every_bad_field_is_named() {
        let e = ConsentInput::parse(ConsentDraft {
            purpose: Some("Big News".into()),
            channel: Some("pigeon".into()),
            granted: None,
            source: Some("  ".into()),
            legal_basis: Some("because".into()),
            evidence: None,
            double_opt_in: None,
            confirmation_template: None,
        })
        .unwrap_err();
        let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["purpose", "channel", "granted", "source", "legal_basis"]);
        let e = ConsentInput::parse(ConsentDraft { granted: Some(false), double_opt_in: Some(true), ..draft() }).unwrap_err();
        assert_eq!(e.errors[0].field, "double_opt_in");
        // A confirmation email only for a double opt-in grant on email.
        let e = ConsentInput::parse(ConsentDraft { confirmation_template: Some("confirm".into()), ..draft() }).unwrap_err();
        assert_eq!(e.errors[0].field, "confirmation_template");
        let ok = ConsentInput::parse(ConsentDraft {
            confirmation_template: Some("confirm".into()),
            double_opt_in: Some(true),
            ..draft()
        })
        .unwrap();
        assert_eq!(ok.confirmation_template.as_deref(), Some("confirm"));
    }

    #[test]
    fn topics_reserve_the_all_marketing_keys() {
        for key in ["marketing", "*"] {
            let e = TopicInput::parse(TopicDraft { key: Some(key.into()), name: Some("x".into()), ..Default::default() })
                .unwrap_err();
            assert_eq!(e.errors[0].field, "key");
        }
        let e = TopicInput::parse(TopicDraft { key: Some("news".into()), ..Default::default() }).unwrap_err();
        assert_eq!(e.errors[0].field, "name");
        let t =
            TopicInput::parse(TopicDraft { key: Some("news".into()), name: Some("News".into()), ..Default::default() }).unwrap();
        assert!(t.default_subscribed);
    }

    #[test]
    fn privacy_keeps_what_is_not_sent() {
        let now = Privacy { do_not_track: true, ..Default::default() };
        let (p, source) = now.patched(PrivacyDraft { do_not_contact: Some(true), ..Default::default() }).unwrap();
        assert_eq!(p, Privacy { do_not_track: true, do_not_contact: true, not_interested: false });
        assert_eq!(source, "api");
    }
}
