//! The demo's printer: it consumes the department and alert topics, prints what arrives and
//! plays the departments (a status event stops a clock) until the scenario has played out.

use super::DeptInfo;
use petitiond_core::envelope::Envelope;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What the demo's printer watches.
pub(super) struct Watch {
    pub(super) departments: BTreeMap<String, DeptInfo>,
    pub(super) alerts_topic: String,
    /// Items that should be routed.
    pub(super) expected: usize,
}

fn header(m: &rdkafka::message::BorrowedMessage<'_>, k: &str) -> String {
    m.headers()
        .and_then(|h| h.iter().find(|h| h.key == k).and_then(|h| h.value))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// The status event a department sends: `event` on item `id`, by `department`.
fn status_event(id: &str, event: &str, department: &str) -> String {
    serde_json::json!({
        "event_id": format!("demo-{event}-{id}"),
        "item_id": id,
        "event": event,
        "time": jiff::Timestamp::now().to_string(),
        "actor": { "department": department, "person": "clerk-07" },
    })
    .to_string()
}

/// Consumes the department and alert topics and prints one line per routed record (the first
/// envelope in full, masked) and per alert. Plays the departments: the lead of the first
/// letter registers it, the lead of the first hotline order marks it viewed (status events on
/// the department's own status topic), so those clocks stop; the other short clocks breach.
/// Cancels `done` once every item is routed and every clock not stopped has breached; runs
/// until `stop`.
pub(super) fn print_routed(
    brokers: &str,
    w: &Watch,
    stop: &CancellationToken,
    done: &CancellationToken,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "petitiond-demo-printer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let department: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let by_topic: HashMap<&str, &str> = w
        .departments
        .iter()
        .map(|(id, d)| (d.topic.as_str(), id.as_str()))
        .collect();
    let watched: Vec<&str> = by_topic
        .keys()
        .copied()
        .chain(std::iter::once(w.alerts_topic.as_str()))
        .collect();
    let mut progress = Progress::default();
    let mut assigned = false;
    while !stop.is_cancelled() {
        if !assigned {
            if !assign_from_beginning(&consumer, &watched)? {
                std::thread::sleep(Duration::from_millis(300));
                continue;
            }
            assigned = true;
        }
        if !done.is_cancelled() && progress.settled(w.expected) {
            done.cancel();
        }
        department.poll(Duration::ZERO);
        let Some(m) = consumer.poll(Duration::from_millis(300)) else {
            continue;
        };
        let m = m?;
        if m.topic() == w.alerts_topic {
            progress.alert(m.payload().unwrap_or_default())?;
        } else {
            let dept = by_topic.get(m.topic()).copied().unwrap_or_default();
            progress.department_record(w, &department, dept, &m)?;
        }
    }
    Ok(())
}

/// Assigns every partition of the `topics` that exist, from the beginning; false while none
/// does yet (topics appear once the relay has verified them).
fn assign_from_beginning(consumer: &BaseConsumer, topics: &[&str]) -> anyhow::Result<bool> {
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        if let Ok(md) = consumer.fetch_metadata(Some(t), Duration::from_secs(2)) {
            for p in md.topics().iter().flat_map(|t| t.partitions()) {
                tpl.add_partition_offset(t, p.id(), Offset::Beginning)?;
            }
        }
    }
    if tpl.count() == 0 {
        return Ok(false);
    }
    consumer.assign(&tpl)?;
    Ok(true)
}

/// What the printer has seen so far.
#[derive(Default)]
struct Progress {
    /// Items routed (a record of theirs seen).
    seen: HashSet<String>,
    /// Items whose clock a played department stopped.
    stopped: HashSet<String>,
    /// Channels whose first item a department has played.
    played: HashSet<&'static str>,
    /// Items with a breach alert.
    breached: HashSet<String>,
    /// The first routed envelope has been printed in full.
    shown_full: bool,
}

impl Progress {
    /// Every expected item is routed and each has its clock stopped or breached.
    fn settled(&self, expected: usize) -> bool {
        self.seen.len() >= expected
            && self
                .seen
                .iter()
                .all(|i| self.stopped.contains(i) || self.breached.contains(i))
    }

    /// Prints an SLA alert; a breach counts for [`Progress::settled`].
    fn alert(&mut self, payload: &[u8]) -> anyhow::Result<()> {
        let a: serde_json::Value = serde_json::from_slice(payload)?;
        let kind = a["kind"].as_str().unwrap_or_default();
        println!(
            "SLA alert   {kind:<10} {:<22} item {} ({}, due {}{})",
            a["clock"].as_str().unwrap_or_default(),
            a["item_id"].as_str().unwrap_or_default(),
            a["department"].as_str().unwrap_or_default(),
            a["due_at"].as_str().unwrap_or_default(),
            if a["late"].as_bool() == Some(true) {
                ", late"
            } else {
                ""
            },
        );
        if kind == "breach" {
            self.breached
                .insert(a["item_id"].as_str().unwrap_or_default().to_string());
        }
        Ok(())
    }

    /// Prints a record on department `dept`'s topic: a routed envelope in a line (the first
    /// in full, masked), any other event by its type; plays the lead of a routed item.
    fn department_record(
        &mut self,
        w: &Watch,
        department: &BaseProducer,
        dept: &str,
        m: &rdkafka::message::BorrowedMessage<'_>,
    ) -> anyhow::Result<()> {
        let ce_type = header(m, "ce_type");
        let role = header(m, "ce_role");
        if ce_type != "cn.gov.petition.item.routed.v1" {
            println!(
                "event       {:<18} {role:<6} {ce_type} item {}",
                dept,
                header(m, "ce_subject")
            );
            return Ok(());
        }
        let env: Envelope = serde_json::from_slice(m.payload().unwrap_or_default())?;
        let id = env.id.to_string();
        println!(
            "routed    → {dept:<18} {role:<6} {:<7} {:<12} rule={:<24} item {id}{}",
            env.channel.as_str(),
            env.category.map_or("unclassified", |c| c.as_str()),
            env.routing.as_ref().map_or("", |r| r.rule_id.as_str()),
            if env.flags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", env.flags.join(" "))
            },
        );
        if !self.shown_full {
            self.shown_full = true;
            println!(
                "  (each record is the whole envelope; this one in full, personal fields masked:)"
            );
            println!("{}", serde_json::to_string_pretty(&env.redacted())?);
        }
        if role == "lead" {
            self.play_lead(w, department, &env, &id)?;
        }
        self.seen.insert(id);
        Ok(())
    }

    /// Plays the lead department: registers the first letter, views the first hotline order
    /// (a status event on the department's status topic), so that item's clock stops.
    fn play_lead(
        &mut self,
        w: &Watch,
        department: &BaseProducer,
        env: &Envelope,
        id: &str,
    ) -> anyhow::Result<()> {
        let play = match env.channel.as_str() {
            "letter" => Some(("letter", "registered")),
            "hotline" => Some(("hotline", "viewed")),
            _ => None,
        };
        if let Some((channel, event)) = play
            && !self.played.contains(channel)
            && let Some(lead) = env.routing.as_ref().map(|r| r.lead.as_str())
            && let Some(d) = w.departments.get(lead)
        {
            department
                .send(
                    BaseRecord::to(&d.status_topic)
                        .key(id)
                        .payload(&status_event(id, event, lead)),
                )
                .map_err(|(e, _)| e)?;
            department.flush(Duration::from_secs(5))?;
            println!(
                "status    → {}: {lead} reports `{event}` for item {id}; its {channel} clock stops",
                d.status_topic
            );
            self.played.insert(channel);
            self.stopped.insert(id.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_is_settled_once_every_expected_item_is_routed_and_stopped_or_breached() {
        let mut p = Progress::default();
        assert!(!p.settled(1), "nothing routed yet");
        p.seen.extend(["a".to_string(), "b".to_string()]);
        p.stopped.insert("a".into());
        assert!(!p.settled(2), "b's clock neither stopped nor breached");
        p.breached.insert("b".into());
        assert!(p.settled(2));
        assert!(!p.settled(3), "an item still to route");
    }
}
