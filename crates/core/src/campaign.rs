//! Campaigns: one template sent to the members of a segment, now or at a set time (optionally
//! that wall-clock time in each person's own time zone), with a holdout group that receives
//! nothing so that the campaign's effect can be measured against it.
//!
//! Times are spelled `chrono::DateTime<chrono::Utc>` where the OpenAPI schema derives from them.

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ValidationErrors;
use crate::text;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_EXCLUSIONS: usize = 20;
/// More than this and there is little left to measure the effect on.
pub const MAX_HOLDOUT_PERCENT: u8 = 90;
pub const DEFAULT_CONVERSION_DAYS: u16 = 7;
pub const MAX_CONVERSION_DAYS: u16 = 90;

/// Where a campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    /// Being prepared; nothing goes out until it is sent.
    Draft,
    /// Will start at `send_at`.
    Scheduled,
    /// Choosing its audience and handing messages to the outbox; finished once every message has
    /// left or been given up.
    Sending,
    /// Nothing more leaves until it is resumed.
    Paused,
    /// Stopped for good: what had not left never will.
    Cancelled,
    Finished,
}

impl CampaignStatus {
    pub const ALL: [CampaignStatus; 6] = [
        CampaignStatus::Draft,
        CampaignStatus::Scheduled,
        CampaignStatus::Sending,
        CampaignStatus::Paused,
        CampaignStatus::Cancelled,
        CampaignStatus::Finished,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Sending => "sending",
            CampaignStatus::Paused => "paused",
            CampaignStatus::Cancelled => "cancelled",
            CampaignStatus::Finished => "finished",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether its settings may still change.
    pub fn is_editable(self) -> bool {
        matches!(self, CampaignStatus::Draft | CampaignStatus::Scheduled)
    }
}

/// What can be done to a campaign, and from which states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignCommand {
    Send,
    Pause,
    Resume,
    Cancel,
}

impl CampaignCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignCommand::Send => "send",
            CampaignCommand::Pause => "pause",
            CampaignCommand::Resume => "resume",
            CampaignCommand::Cancel => "cancel",
        }
    }

    /// The state the command leads to from `from`, or why it cannot be done. `send_at` decides
    /// whether sending starts now or is scheduled.
    pub fn apply(self, from: CampaignStatus, starts_later: bool) -> Result<CampaignStatus, String> {
        use CampaignStatus as S;
        let to = match (self, from) {
            (CampaignCommand::Send, S::Draft) if starts_later => S::Scheduled,
            (CampaignCommand::Send, S::Draft | S::Scheduled) => S::Sending,
            (CampaignCommand::Pause, S::Scheduled | S::Sending) => S::Paused,
            (CampaignCommand::Resume, S::Paused) => S::Sending,
            (CampaignCommand::Cancel, S::Draft | S::Scheduled | S::Sending | S::Paused) => S::Cancelled,
            _ => {
                return Err(format!("a {} campaign cannot be asked to {}", from.as_str(), self.as_str()));
            }
        };
        Ok(to)
    }
}

/// A stored campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub template_id: Uuid,
    /// The template's name (all its locales are used, by each person's locale).
    pub template: String,
    pub segment_id: Uuid,
    pub segment: String,
    pub exclude_segment_ids: Vec<Uuid>,
    /// The subscription topic it belongs to; people unsubscribed from it get nothing.
    pub topic: Option<String>,
    /// When it starts; `null`: when it is sent. With `local_time`, the wall-clock time in each
    /// contact's zone (shown here as if it were UTC).
    pub send_at: Option<chrono::DateTime<chrono::Utc>>,
    pub local_time: bool,
    pub holdout_percent: u8,
    /// Orders within this many days of the message count as its conversions.
    pub conversion_days: u16,
    pub status: CampaignStatus,
    /// Why it is where it is, when that needs saying ("3 messages wait for an email relay").
    pub status_reason: Option<String>,
    pub audience_chosen_at: Option<chrono::DateTime<chrono::Utc>>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CampaignDraft {
    pub name: Option<String>,
    pub template_id: Option<String>,
    pub segment_id: Option<String>,
    #[serde(default)]
    pub exclude_segment_ids: Vec<String>,
    pub topic: Option<String>,
    /// RFC 3339 (`2027-03-01T09:00:00Z`); with `local_time`, a wall-clock time
    /// (`2027-03-01T09:00`) read in each contact's zone.
    pub send_at: Option<String>,
    pub local_time: Option<bool>,
    pub holdout_percent: Option<u8>,
    pub conversion_days: Option<u16>,
}

/// A validated campaign's settings (its template and segments are checked to exist by the store).
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignInput {
    pub name: String,
    pub template_id: Uuid,
    pub segment_id: Uuid,
    pub exclude_segment_ids: Vec<Uuid>,
    pub topic: Option<String>,
    pub send_at: Option<DateTime<Utc>>,
    pub local_time: bool,
    pub holdout_percent: u8,
    pub conversion_days: u16,
}

fn parse_uuid(raw: &str, field: &str, errs: &mut ValidationErrors) -> Option<Uuid> {
    match Uuid::parse_str(raw.trim()) {
        Ok(id) => Some(id),
        Err(_) => {
            errs.push(field, format!("\"{raw}\" is not an id"));
            None
        }
    }
}

/// A send time: RFC 3339, or (for local-time campaigns) a wall-clock time without an offset.
fn parse_send_at(raw: &str, local_time: bool) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        // A local-time campaign keeps the wall-clock reading and drops the offset.
        return Ok(if local_time { t.naive_local().and_utc() } else { t.with_timezone(&Utc) });
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(raw, format) {
            if !local_time {
                return Err("needs a time zone offset (`2027-03-01T09:00:00Z`), or set local_time to read it in each \
                            contact's zone"
                    .into());
            }
            return Ok(n.and_utc());
        }
    }
    Err(format!("\"{raw}\" is not a time; write it like 2027-03-01T09:00:00Z"))
}

/// A subscription topic key: a lowercase slug such as `newsletter` or `offers-de`.
pub fn check_topic(raw: &str) -> Result<String, String> {
    let key = raw.trim().to_lowercase();
    let ok = !key.is_empty()
        && key.len() <= 64
        && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && key.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok { Ok(key) } else { Err("must be a short lowercase name of letters, digits, - and _ (like newsletter)".into()) }
}

impl CampaignInput {
    pub fn parse(d: CampaignDraft) -> Result<Self, ValidationErrors> {
        let mut errs = ValidationErrors::default();
        let name = errs.take(text::required(d.name, "name", MAX_NAME_CHARS));
        let template_id = match d.template_id.as_deref() {
            Some(raw) => parse_uuid(raw, "template_id", &mut errs),
            None => {
                errs.push("template_id", "is required: the template to send");
                None
            }
        };
        let segment_id = match d.segment_id.as_deref() {
            Some(raw) => parse_uuid(raw, "segment_id", &mut errs),
            None => {
                errs.push("segment_id", "is required: the segment to send to");
                None
            }
        };
        if d.exclude_segment_ids.len() > MAX_EXCLUSIONS {
            errs.push("exclude_segment_ids", format!("at most {MAX_EXCLUSIONS} segments"));
        }
        let mut exclude_segment_ids = Vec::new();
        for (i, raw) in d.exclude_segment_ids.iter().enumerate() {
            if let Some(id) = parse_uuid(raw, &format!("exclude_segment_ids[{i}]"), &mut errs) {
                if Some(id) == segment_id {
                    errs.push(format!("exclude_segment_ids[{i}]"), "is the segment the campaign goes to");
                } else if !exclude_segment_ids.contains(&id) {
                    exclude_segment_ids.push(id);
                }
            }
        }
        let topic = match d.topic.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(raw) => match check_topic(raw) {
                Ok(t) => Some(t),
                Err(e) => {
                    errs.push("topic", e);
                    None
                }
            },
            None => None,
        };
        let local_time = d.local_time.unwrap_or(false);
        let send_at = match d.send_at.as_deref().filter(|s| !s.trim().is_empty()) {
            Some(raw) => match parse_send_at(raw, local_time) {
                Ok(t) => Some(t),
                Err(e) => {
                    errs.push("send_at", e);
                    None
                }
            },
            None => {
                if local_time {
                    errs.push("send_at", "is required with local_time: the wall-clock time to send at");
                }
                None
            }
        };
        let holdout_percent = d.holdout_percent.unwrap_or(0);
        if holdout_percent > MAX_HOLDOUT_PERCENT {
            errs.push("holdout_percent", format!("must be between 0 and {MAX_HOLDOUT_PERCENT}"));
        }
        let conversion_days = d.conversion_days.unwrap_or(DEFAULT_CONVERSION_DAYS);
        if !(1..=MAX_CONVERSION_DAYS).contains(&conversion_days) {
            errs.push("conversion_days", format!("must be between 1 and {MAX_CONVERSION_DAYS}"));
        }
        errs.into_result()?;
        Ok(Self {
            name: name.expect("checked above"),
            template_id: template_id.expect("checked above"),
            segment_id: segment_id.expect("checked above"),
            exclude_segment_ids,
            topic,
            send_at,
            local_time,
            holdout_percent,
            conversion_days,
        })
    }

    /// The draft that gives back this input (so that a change can be applied field by field).
    pub fn draft_of(c: &Campaign) -> CampaignDraft {
        CampaignDraft {
            name: Some(c.name.clone()),
            template_id: Some(c.template_id.to_string()),
            segment_id: Some(c.segment_id.to_string()),
            exclude_segment_ids: c.exclude_segment_ids.iter().map(Uuid::to_string).collect(),
            topic: c.topic.clone(),
            send_at: c.send_at.map(|t| if c.local_time { t.format("%Y-%m-%dT%H:%M:%S").to_string() } else { t.to_rfc3339() }),
            local_time: Some(c.local_time),
            holdout_percent: Some(c.holdout_percent),
            conversion_days: Some(c.conversion_days),
        }
    }
}

/// When a campaign of this `send_at` should start going out: for a local-time campaign, when the
/// first time zone on Earth (UTC+14) reaches that wall-clock time.
pub fn start_instant(send_at: DateTime<Utc>, local_time: bool) -> DateTime<Utc> {
    if local_time { send_at - chrono::Duration::hours(14) } else { send_at }
}

/// When a person's message is due: the wall-clock `send_at` in their zone for a local-time
/// campaign (a time a DST gap skips moves to just after it), otherwise `send_at` itself; never
/// before `now`.
pub fn due_for(send_at: Option<DateTime<Utc>>, local_time: bool, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let Some(at) = send_at else { return now };
    let at = if local_time { crate::workflow::local_instant(tz, at.naive_utc()).unwrap_or(at) } else { at };
    at.max(now)
}

/// Which of `members` (sorted by id, as the caller gives them) are the holdout: exactly
/// `round(n × percent / 100)` people, picked by a hash of the campaign and contact ids, so the
/// choice is random-like, stable across retries and the same on every instance.
pub fn holdout_flags(campaign: Uuid, members: &[Uuid], percent: u8) -> Vec<bool> {
    let n = members.len();
    let size = (n * usize::from(percent) + 50) / 100;
    let mut order: Vec<(u64, usize)> = members.iter().enumerate().map(|(i, m)| (mix(campaign, *m), i)).collect();
    order.sort_unstable();
    let mut flags = vec![false; n];
    for (_, i) in order.into_iter().take(size) {
        flags[i] = true;
    }
    flags
}

/// Whether `contact` falls in the `percent` holdout of `scope` (a workflow) when people come
/// one at a time and the whole group is never known: each is drawn on their own by the same
/// hash as [`holdout_flags`], so the share is `percent` on average and the draw never changes.
pub fn in_holdout(scope: Uuid, contact: Uuid, percent: u8) -> bool {
    percent > 0 && mix(scope, contact) % 10_000 < u64::from(percent) * 100
}

/// A stable 64-bit mix of two ids (splitmix64 over their halves).
fn mix(a: Uuid, b: Uuid) -> u64 {
    let (a1, a2) = a.as_u64_pair();
    let (b1, b2) = b.as_u64_pair();
    let mut x = a1 ^ b1.rotate_left(17) ^ a2.rotate_left(31) ^ b2.rotate_left(47);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> CampaignDraft {
        CampaignDraft {
            name: Some("Spring sale".into()),
            template_id: Some(Uuid::now_v7().to_string()),
            segment_id: Some(Uuid::now_v7().to_string()),
            ..CampaignDraft::default()
        }
    }

    #[test]
    fn a_minimal_draft_is_valid() {
        let c = CampaignInput::parse(draft()).unwrap();
        assert_eq!((c.holdout_percent, c.conversion_days, c.local_time, c.send_at), (0, 7, false, None));
    }

    #[test]
    fn errors_name_their_fields() {
        let d = CampaignDraft {
            name: None,
            template_id: Some("nope".into()),
            segment_id: None,
            holdout_percent: Some(95),
            send_at: Some("2027-03-01T09:00".into()),
            topic: Some("News Letter".into()),
            ..CampaignDraft::default()
        };
        let errs = CampaignInput::parse(d).unwrap_err();
        let fields: Vec<&str> = errs.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "template_id", "segment_id", "topic", "send_at", "holdout_percent"]);
        assert!(errs.errors[4].message.contains("local_time"), "{}", errs.errors[4].message);
    }

    #[test]
    fn excluding_the_target_segment_is_refused() {
        let mut d = draft();
        d.exclude_segment_ids = vec![d.segment_id.clone().unwrap()];
        let errs = CampaignInput::parse(d).unwrap_err();
        assert_eq!(errs.errors[0].field, "exclude_segment_ids[0]");
    }

    #[test]
    fn local_time_keeps_the_wall_clock_reading() {
        let mut d = draft();
        d.local_time = Some(true);
        d.send_at = Some("2027-03-01T09:00:00+05:00".into());
        let c = CampaignInput::parse(d).unwrap();
        assert_eq!(c.send_at.unwrap().to_rfc3339(), "2027-03-01T09:00:00+00:00");
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let now = "2027-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(due_for(c.send_at, true, tokyo, now).to_rfc3339(), "2027-03-01T00:00:00+00:00");
        let la: Tz = "America/Los_Angeles".parse().unwrap();
        assert_eq!(due_for(c.send_at, true, la, now).to_rfc3339(), "2027-03-01T17:00:00+00:00");
        assert_eq!(start_instant(c.send_at.unwrap(), true).to_rfc3339(), "2027-02-28T19:00:00+00:00");
        // Already past in a zone: now.
        let later = "2027-03-01T10:00:00Z".parse().unwrap();
        assert_eq!(due_for(c.send_at, true, tokyo, later), later);
    }

    #[test]
    fn the_holdout_is_exact_and_stable() {
        let campaign = Uuid::now_v7();
        let members: Vec<Uuid> = (0..1000).map(|_| Uuid::now_v7()).collect();
        let flags = holdout_flags(campaign, &members, 10);
        assert_eq!(flags.iter().filter(|f| **f).count(), 100);
        assert_eq!(flags, holdout_flags(campaign, &members, 10), "the same every time");
        assert_ne!(flags, holdout_flags(Uuid::now_v7(), &members, 10), "another campaign picks others");
        // Not simply the first or last ids.
        assert!(flags[..500].iter().any(|f| *f) && flags[500..].iter().any(|f| *f));
        assert_eq!(holdout_flags(campaign, &members[..3], 10), [false; 3]);
        assert_eq!(holdout_flags(campaign, &members[..5], 10).iter().filter(|f| **f).count(), 1);
        assert!(holdout_flags(campaign, &[], 50).is_empty());
        // One at a time: about the share asked for, the same answer every time.
        let people: Vec<Uuid> = (0..20_000u128).map(Uuid::from_u128).collect();
        let held = people.iter().filter(|p| in_holdout(campaign, **p, 10)).count();
        assert!((1_800..2_200).contains(&held), "{held} of 20,000 held out at 10%");
        assert!(!people.iter().any(|p| in_holdout(campaign, *p, 0)));
    }

    #[test]
    fn commands_follow_the_life_of_a_campaign() {
        use CampaignCommand as C;
        use CampaignStatus as S;
        assert_eq!(C::Send.apply(S::Draft, true), Ok(S::Scheduled));
        assert_eq!(C::Send.apply(S::Draft, false), Ok(S::Sending));
        assert_eq!(C::Pause.apply(S::Sending, false), Ok(S::Paused));
        assert_eq!(C::Resume.apply(S::Paused, false), Ok(S::Sending));
        assert_eq!(C::Cancel.apply(S::Paused, false), Ok(S::Cancelled));
        assert!(C::Send.apply(S::Finished, false).unwrap_err().contains("finished campaign cannot be asked to send"));
        assert!(C::Resume.apply(S::Sending, false).is_err());
        assert!(C::Pause.apply(S::Cancelled, false).is_err());
    }
}
