//! The envelope: one type for every item from every channel.
//!
//! Owns the domain record of a petition item (DOMAIN.md §4) and its deterministic id. It does
//! not own the Kafka wire form (that is `kafka::wire`, converted by hand from this type so the
//! wire can be versioned on its own) nor how items are stored (`store`).

pub mod person;
pub mod pii;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

pub use pii::{Kind as PiiKind, Personal};

/// Version of the envelope's JSON shape; bumped on any breaking change to `schema/`.
pub const ENVELOPE_VERSION: u32 = 1;

/// Namespace for envelope ids (UUID v5 over "channel:upstream id").
const ID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x6e, 0x2f, 0x1d, 0x3a, 0x91, 0x4c, 0x4b, 0x0e, 0x9a, 0x53, 0x2b, 0x7c, 0x10, 0x88, 0x42, 0xd1,
]);

/// Most earlier items an item is linked to (`related`) and the store returns for one item (the
/// newest): enough to link and to count a repeat (`routing.repeat.flag_at` is at most this),
/// and a bound on what one item costs.
pub const MAX_RELATED_ITEMS: usize = 100;

/// The intake channel an item came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// 12345 hotline work order.
    Hotline,
    /// Web petition portal (website and mobile app).
    Portal,
    /// Scanned paper letter from the mailbox.
    Letter,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Hotline => "hotline",
            Channel::Portal => "portal",
            Channel::Letter => "letter",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The four categories of DOMAIN.md §5.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Livelihood,
    Rights,
    Policy,
    Historical,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Livelihood => "livelihood",
            Category::Rights => "rights",
            Category::Policy => "policy",
            Category::Historical => "historical",
        }
    }
}

/// Closed-loop stage (DOMAIN.md §6), plus `received` before anyone accepted it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Received,
    Accepted,
    Handling,
    Replied,
    Evaluated,
    Closed,
}

impl Stage {
    /// Order along the closed loop: a stored stage only moves to a higher rank.
    pub fn rank(self) -> u8 {
        match self {
            Stage::Received => 0,
            Stage::Accepted => 1,
            Stage::Handling => 2,
            Stage::Replied => 3,
            Stage::Evaluated => 4,
            Stage::Closed => 5,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Accepted => "accepted",
            Stage::Handling => "handling",
            Stage::Replied => "replied",
            Stage::Evaluated => "evaluated",
            Stage::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Stage> {
        [
            Stage::Received,
            Stage::Accepted,
            Stage::Handling,
            Stage::Replied,
            Stage::Evaluated,
            Stage::Closed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// Deterministic item id from (channel, upstream id): a re-poll of the same record yields the
/// same id, which is how the store recognises it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemId(String);

impl ItemId {
    pub fn derive(channel: Channel, upstream_id: &str) -> Self {
        let name = format!("{}:{}", channel.as_str(), upstream_id);
        Self(uuid::Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()).to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An id as the store keeps it (a hyphenated UUID); `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::try_parse(s)
            .ok()
            .map(|u| Self(u.hyphenated().to_string()))
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where the item came from upstream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Upstream {
    /// The upstream system's id for the record (for mail: `sha256:` of the raw message).
    pub id: String,
    /// A link to the record in the upstream system, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Which configured source produced it (e.g. `mailbox`).
    pub source: String,
    /// Claim check of the raw upstream bytes in the blob store (`sha256:<hex>`).
    pub raw_ref: String,
    /// When the upstream record last changed (HTTP channels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// The upstream system's status for the record (e.g. Open311 `open`, a portal's `待受理`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The upstream service / matter code (Open311 `service_code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_code: Option<String>,
    /// Region or district the record names (routing can match on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The reference number people use for the record, when the upstream has one besides its
    /// id (a scanned letter's barcode / 信件编号, found by `letter_reference_pattern`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Who sent it upstream (for mail: the From address — the scanner or clerk, not the
    /// petitioner). May name a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<Personal>,
}

/// The petitioner, as the visit register (来访事项登记表) records them. All optional: a scanned
/// letter carries them only inside the scan until a clerk registers it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Petitioner {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Personal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_number: Option<Personal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Personal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Personal>,
}

/// What the petitioner asks for.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Personal>,
    pub content: Personal,
}

/// Key evidence: a reference to bytes in the blob store, never the bytes (claim check).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name as sent; may name a person, so it is personal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Personal>,
    pub media_type: String,
    pub size: u64,
    pub sha256: String,
    /// Where a consumer fetches it (CloudEvents `dataref` style URI).
    pub dataref: String,
}

/// Lead (主办) and assisting (协办) departments and the decision that chose them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Routing {
    pub lead: String,
    #[serde(default)]
    pub assists: Vec<String>,
    pub rule_id: String,
    pub rules_version: String,
    pub decided_at: Timestamp,
    /// The rules' `sla_overrides`: clocks started although their policy does not apply, and
    /// clocks not started although it does. Kept with the item so that clocks started later
    /// by a status event honour them too. Not on the wire (the envelope's `sla` lists the
    /// clocks that run).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sla_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sla_skip: Vec<String>,
    /// How the category was decided (absent: no keyword and no model, or an envelope
    /// recorded before classification carried a source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<CategoryDecision>,
}

/// How routing decided an item's category: by a rule, the keyword dictionaries or the
/// classifier model, with the confidence and the two best candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoryDecision {
    /// `rule`, `dictionary` or `model`.
    pub source: String,
    /// 0..1: the top candidate's probability (1 when a rule set the category).
    pub confidence: f64,
    /// The classifier's two best categories, best first.
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Below `routing.review_threshold` and no rule decided: the intake desk sorts it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_review: bool,
}

/// One candidate category with its probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub category: Category,
    pub confidence: f64,
}

/// One SLA clock's state as carried on the envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlaClock {
    pub clock: String,
    pub due_at: Timestamp,
    pub state: String,
    /// `due_at` rests on a provisional calendar year (no official file yet): a due-update
    /// record follows if it changes when the official file is installed.
    #[serde(default)]
    pub provisional: bool,
}

/// The envelope, v1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u32,
    pub id: ItemId,
    pub channel: Channel,
    pub upstream: Upstream,
    /// When the item reached the office (server arrival time; for mail, delivery time).
    pub received_at: Timestamp,
    /// When the upstream record says it was created (for mail, the `Date:` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_created_at: Option<Timestamp>,
    #[serde(default)]
    pub petitioner: Petitioner,
    pub request: Request,
    #[serde(default)]
    pub involved_departments: Vec<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<Category>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
    #[serde(default)]
    pub sla: Vec<SlaClock>,
    pub stage: Stage,
    /// Ids of related items (repeat petitions).
    #[serde(default)]
    pub related: Vec<ItemId>,
    /// Flags such as `needs_supplement`.
    #[serde(default)]
    pub flags: Vec<String>,
}

impl Envelope {
    /// A new envelope in stage `received`, id derived from (channel, upstream id).
    pub fn new(
        channel: Channel,
        upstream: Upstream,
        received_at: Timestamp,
        request: Request,
    ) -> Self {
        Self {
            version: ENVELOPE_VERSION,
            id: ItemId::derive(channel, &upstream.id),
            channel,
            upstream,
            received_at,
            upstream_created_at: None,
            petitioner: Petitioner::default(),
            request,
            involved_departments: Vec::new(),
            attachments: Vec::new(),
            category: None,
            routing: None,
            sla: Vec::new(),
            stage: Stage::Received,
            related: Vec::new(),
            flags: Vec::new(),
        }
    }

    /// A copy with every personal field masked: for the demo's output, `explain` and anything
    /// else a person reads on a screen.
    pub fn redacted(&self) -> Envelope {
        let m = |p: &Option<Personal>, k| p.as_ref().map(|v| Personal::new(v.masked(k)));
        let mut e = self.clone();
        e.petitioner = Petitioner {
            name: m(&self.petitioner.name, PiiKind::Name),
            id_number: m(&self.petitioner.id_number, PiiKind::IdNumber),
            phone: m(&self.petitioner.phone, PiiKind::Phone),
            address: m(&self.petitioner.address, PiiKind::Address),
        };
        e.upstream.sender = m(&self.upstream.sender, PiiKind::FreeText);
        e.request = Request {
            title: m(&self.request.title, PiiKind::FreeText),
            content: Personal::new(self.request.content.masked(PiiKind::FreeText)),
        };
        for a in &mut e.attachments {
            a.name = m(&a.name, PiiKind::FreeText);
        }
        e
    }

    /// The earliest open SLA due time, carried as the `sladue` CloudEvents extension.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.sla.iter().map(|c| c.due_at).min()
    }

    /// Whether [`Envelope::next_due`] rests on a provisional calendar year (some clock due
    /// then is provisional); `None` without clocks.
    pub fn next_due_provisional(&self) -> Option<bool> {
        let due = self.next_due()?;
        Some(self.sla.iter().any(|c| c.due_at == due && c.provisional))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        let mut e = Envelope::new(
            Channel::Letter,
            Upstream {
                id: "sha256:abc".into(),
                url: None,
                source: "mailbox".into(),
                raw_ref: "sha256:abc".into(),
                ..Default::default()
            },
            "2026-03-02T01:00:00Z".parse().unwrap(),
            Request {
                title: Some(Personal::new("关于拖欠工资的来信")),
                content: Personal::new("张三反映某公司拖欠工资三个月，电话13812345678"),
            },
        );
        e.petitioner.name = Some(Personal::new("张三"));
        e.petitioner.phone = Some(Personal::new("13812345678"));
        e
    }

    #[test]
    fn id_is_deterministic_and_channel_scoped() {
        let a = ItemId::derive(Channel::Hotline, "42");
        assert_eq!(a, ItemId::derive(Channel::Hotline, "42"));
        assert_ne!(a, ItemId::derive(Channel::Portal, "42"));
        assert_ne!(a, ItemId::derive(Channel::Hotline, "43"));
        // Pinned: changing the namespace or the name format would re-route every re-polled item.
        assert_eq!(a.as_str(), ItemId::derive(Channel::Hotline, "42").as_str());
        assert_eq!(a.as_str().len(), 36);
    }

    #[test]
    fn debug_of_envelope_carries_no_personal_data() {
        let dbg = format!("{:?}", sample());
        for raw in ["张三", "13812345678", "拖欠工资"] {
            assert!(!dbg.contains(raw), "Debug leaked {raw}: {dbg}");
        }
    }

    #[test]
    fn redacted_copy_masks_everything_personal() {
        let json = serde_json::to_string(&sample().redacted()).unwrap();
        for raw in ["张三", "13812345678", "拖欠工资"] {
            assert!(!json.contains(raw), "redacted leaked {raw}: {json}");
        }
        assert!(json.contains("张*"));
    }

    #[test]
    fn round_trips_through_json() {
        let e = sample();
        let back: Envelope = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
    }
}
