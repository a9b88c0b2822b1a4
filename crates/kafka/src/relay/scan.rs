//! The recovery scan: reads a topic back over a bounded range to find which in-flight outbox
//! rows already reached Kafka (by `ce_id`), so the relay never re-sends them blind.

use crate::KafkaConfig;
use crate::client::recovery_consumer_config;
use petitiond_store::Delivered;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Headers;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a scan of one topic found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The wanted rows found on the topic, with where they sit.
    pub hits: Vec<Delivered>,
    /// Records read.
    pub scanned: u64,
    /// A partition's range was cut at `recovery_scan_max_records`.
    pub capped: bool,
}

/// Where to start reading a partition holding offsets `[low, high)`: the earlier of the time
/// bound (`by_time`: the first offset at or after the oldest in-flight row's creation minus
/// the margin) and the position bound (one batch before the highest offset recorded), either
/// of which may be unknown; never before `low`, never more than `max` records before `high`.
/// Returns the start and whether `max` cut it.
pub fn scan_start(
    low: i64,
    high: i64,
    by_time: Option<i64>,
    by_position: Option<i64>,
    max: u64,
) -> (i64, bool) {
    let bound = match (by_time, by_position) {
        (Some(t), Some(p)) => t.min(p),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => low,
    };
    let start = bound.clamp(low, high.max(low));
    let floor = high.saturating_sub(i64::try_from(max).unwrap_or(i64::MAX));
    if start < floor {
        (floor, true)
    } else {
        (start, false)
    }
}

/// Reads `topic` from each partition's [`scan_start`] to its current end and returns the rows
/// whose `ce_id` (keys of `wanted`, values their outbox seq) is there. Any doubt is an error
/// (the caller holds the topic): metadata that names no partition or reports an error, a
/// failed watermark query, a read that stalls.
///
/// The end is not trusted to the high watermark alone: tansu 0.6 reports, until the next
/// batch arrives, the newest batch's base offset + 1 — a batch of several records looks like
/// one (`tests/it/broker.rs`). Reading stopped there missed the rest of that batch, exactly
/// the records a crash leaves in flight, and re-sent them: the duplicate of issue 16. A
/// partition is done once its position has reached the watermark *and* the consumer has
/// nothing more buffered (a poll comes back empty): the records of one fetched batch are
/// queued together, so by then the whole batch holding the watermark's record has been read.
pub fn scan_topic(
    cfg: &KafkaConfig,
    topic: &str,
    positions: &HashMap<i32, i64>,
    since: Option<jiff::Timestamp>,
    wanted: &HashMap<String, i64>,
) -> anyhow::Result<Scan> {
    let consumer: BaseConsumer = recovery_consumer_config(cfg).create()?;
    let partitions = partitions_of(&consumer, cfg, topic)?;
    let by_time = match since {
        Some(since) => time_bounds(&consumer, cfg, topic, &partitions, since)?,
        None => HashMap::new(),
    };
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    let mut out = Scan::default();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, cfg.request_timeout)
            .map_err(|e| anyhow::anyhow!("watermarks of `{topic}` partition {p}: {e}"))?;
        // One batch before the highest offset recorded: an in-flight record can sit below a
        // delivered one (the highest is a max over all deliveries).
        let by_position = positions
            .get(&p)
            .map(|at| at.saturating_sub(cfg.relay_batch as i64));
        let (start, capped) = scan_start(
            low,
            high,
            by_time.get(&p).copied(),
            by_position,
            cfg.recovery_scan_max_records,
        );
        out.capped |= capped;
        if start < high {
            tpl.add_partition_offset(topic, p, Offset::Offset(start))?;
            ends.insert(p, high);
        }
    }
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    read_to_ends(&consumer, cfg, topic, ends, wanted, &mut out)?;
    Ok(out)
}

/// The topic's partitions from the broker's metadata; an error when the topic is not listed,
/// has none, or the topic or a partition reports an error.
fn partitions_of(
    consumer: &BaseConsumer,
    cfg: &KafkaConfig,
    topic: &str,
) -> anyhow::Result<Vec<i32>> {
    let md = consumer
        .fetch_metadata(Some(topic), cfg.request_timeout)
        .map_err(|e| anyhow::anyhow!("metadata for `{topic}`: {e}"))?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| anyhow::anyhow!("metadata for `{topic}`: the topic is not listed"))?;
    if let Some(e) = t.error() {
        anyhow::bail!("metadata for `{topic}`: {:?}", RDKafkaErrorCode::from(e));
    }
    if t.partitions().is_empty() {
        anyhow::bail!("metadata for `{topic}`: no partitions");
    }
    if let Some(p) = t.partitions().iter().find(|p| p.error().is_some()) {
        anyhow::bail!(
            "metadata for `{topic}` partition {}: {:?}",
            p.id(),
            p.error().map(RDKafkaErrorCode::from)
        );
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

/// The time bound per partition: the first offset written at or after `since` (the oldest
/// in-flight row's creation) minus the margin. A broker that cannot answer (or answers
/// "none") only loses the bound, never the scan.
fn time_bounds(
    consumer: &BaseConsumer,
    cfg: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    since: jiff::Timestamp,
) -> anyhow::Result<HashMap<i32, i64>> {
    let mut by_time = HashMap::new();
    let at = since.as_millisecond()
        - i64::try_from(cfg.recovery_time_margin.as_millis()).unwrap_or(i64::MAX);
    let mut q = TopicPartitionList::new();
    for p in partitions {
        q.add_partition_offset(topic, *p, Offset::Offset(at.max(0)))?;
    }
    match consumer.offsets_for_times(q, cfg.request_timeout) {
        Ok(tpl) => {
            for e in tpl.elements() {
                if let (Offset::Offset(o), None) = (e.offset(), e.error().err()) {
                    by_time.insert(e.partition(), o);
                }
            }
        }
        Err(e) => {
            tracing::warn!(topic, error = %e, "recovery scan: no time bound from the broker")
        }
    }
    Ok(by_time)
}

/// Reads the assigned partitions until each reaches its end (`ends`: partition → high
/// watermark), counting records and collecting the wanted ones into `out`. Progress, not a
/// fixed deadline, decides: a long (bounded) range reads as long as records come; a read that
/// stops short of the end is an error.
fn read_to_ends(
    consumer: &BaseConsumer,
    cfg: &KafkaConfig,
    topic: &str,
    mut ends: HashMap<i32, i64>,
    wanted: &HashMap<String, i64>,
    out: &mut Scan,
) -> anyhow::Result<()> {
    let stall = cfg.request_timeout.max(Duration::from_secs(5));
    let mut progress = Instant::now();
    let mut last_read: HashMap<i32, i64> = HashMap::new();
    while !ends.is_empty() {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            // Offsets past the last record (transaction markers, compaction) are never
            // delivered: the position says whether the end is reached.
            drop_reached_ends(consumer, &mut ends);
            if !ends.is_empty() && progress.elapsed() > stall {
                anyhow::bail!(
                    "recovery scan of `{topic}` stalled short of the end of {} partition(s)",
                    ends.len()
                );
            }
            continue;
        };
        let m = m.map_err(|e| anyhow::anyhow!("reading `{topic}`: {e}"))?;
        let (p, off) = (m.partition(), m.offset());
        // A record at or below one already read: the consumer went back. tansu answers a
        // fetch past its last batch as out of range and the consumer resets to the start
        // (`auto.offset.reset`), which then hands the last batch again — counted as a hit
        // each time until the cap, the failure of `faults::recovery_scan_is_capped_at_max_records`.
        // Never count a record twice; past the watermark, going back means the end was read.
        if let Some(last) = last_read.get(&p).copied()
            && off <= last
        {
            if ends.get(&p).is_some_and(|end| last + 1 >= *end) {
                ends.remove(&p);
            } else if progress.elapsed() > stall {
                anyhow::bail!(
                    "recovery scan of `{topic}` partition {p} keeps going back to offset {off} short of the end"
                );
            }
            continue;
        }
        progress = Instant::now();
        last_read.insert(p, off);
        out.scanned += 1;
        if let Some(seq) = wanted_seq(&m, wanted) {
            out.hits.push(Delivered {
                seq,
                topic: topic.to_string(),
                partition: p,
                offset: off,
            });
        }
        // Not done at `off + 1 >= end`: records past `end` in the same batch may follow (see
        // above); the empty poll decides.
    }
    Ok(())
}

/// Removes from `ends` the partitions whose consumer position has reached their end.
fn drop_reached_ends(consumer: &BaseConsumer, ends: &mut HashMap<i32, i64>) {
    if let Ok(pos) = consumer.position() {
        for e in pos.elements() {
            if let Offset::Offset(o) = e.offset()
                && ends.get(&e.partition()).is_some_and(|end| o >= *end)
            {
                ends.remove(&e.partition());
            }
        }
    }
}

/// The outbox seq of the record's `ce_id` header, if that id is wanted.
fn wanted_seq(
    m: &rdkafka::message::BorrowedMessage<'_>,
    wanted: &HashMap<String, i64>,
) -> Option<i64> {
    let id = m
        .headers()?
        .iter()
        .find(|h| h.key == "ce_id")
        .and_then(|h| h.value)?;
    std::str::from_utf8(id)
        .ok()
        .and_then(|id| wanted.get(id))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With nothing recorded the scan read a partition from its first record: on a topic that
    /// keeps years of records, a scan that never finished (and a relay that stopped). The start
    /// is now the earlier of the time and position bounds, and never more than `max` records
    /// before the end.
    #[test]
    fn recovery_scan_range_is_bounded_whatever_is_recorded() {
        // (low, high, by_time, by_position, max) -> (start, capped)
        let cases = [
            // Nothing known: from the first record, unless that is more than max back.
            ((0, 50, None, None, 100), (0, false)),
            ((0, 5_000_000, None, None, 100_000), (4_900_000, true)),
            // The time bound alone, the position bound alone, both: the earlier one.
            (
                (0, 5_000_000, Some(4_999_990), None, 100_000),
                (4_999_990, false),
            ),
            ((0, 1000, None, Some(900), 100), (900, false)),
            ((0, 1000, Some(950), Some(900), 100), (900, false)),
            ((0, 1000, Some(800), Some(900), 1000), (800, false)),
            // Retention removed the start: from the first record still there.
            ((700, 1000, Some(10), None, 1000), (700, false)),
            // A bound past the end (a time with no record after it): nothing to read.
            ((0, 1000, Some(1000), None, 1000), (1000, false)),
            ((0, 0, None, None, 10), (0, false)),
        ];
        for ((low, high, t, p, max), want) in cases {
            assert_eq!(
                scan_start(low, high, t, p, max),
                want,
                "{low} {high} {t:?} {p:?} {max}"
            );
        }
    }
}
