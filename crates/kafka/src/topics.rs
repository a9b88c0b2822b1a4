//! Start-up check of the topics petitiond produces to: create them where allowed, verify
//! them everywhere, and name every missing topic in the error otherwise.

use super::client::client_config;
use crate::KafkaConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The brokers did not answer: retry.
    #[error("cannot reach kafka to check topics: {0}")]
    Unreachable(KafkaError),
    /// Fatal: the operator must create them (or allow `kafka.create_topics`).
    #[error("kafka topics missing and kafka.create_topics = false: {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("cannot create kafka topic `{topic}`: {code}")]
    CreateFailed {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

impl TopicError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, TopicError::Unreachable(_))
    }
}

fn existing(
    admin: &AdminClient<DefaultClientContext>,
    k: &KafkaConfig,
) -> Result<BTreeSet<String>, TopicError> {
    let md = admin
        .inner()
        .fetch_metadata(None, k.request_timeout)
        .map_err(TopicError::Unreachable)?;
    Ok(md
        .topics()
        .iter()
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.name().to_string())
        .collect())
}

/// Verifies (and, when allowed, creates) every topic. Blocking metadata calls run on the
/// blocking pool.
pub async fn ensure_topics(k: &KafkaConfig, topics: &[String]) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(k).create().map_err(TopicError::Unreachable)?;
    let admin = std::sync::Arc::new(admin);
    let (a, kc) = (admin.clone(), k.clone());
    let have = tokio::task::spawn_blocking(move || existing(&a, &kc))
        .await
        .expect("metadata task panicked")?;
    let missing: Vec<String> = topics
        .iter()
        .filter(|t| !have.contains(*t))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !k.create_topics {
        return Err(TopicError::Missing(missing));
    }
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                k.partitions,
                TopicReplication::Fixed(k.replication_factor),
            )
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(k.request_timeout));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(TopicError::Unreachable)?;
    for r in results {
        match r {
            Ok(t) => tracing::info!(topic = %t, partitions = k.partitions, "created kafka topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::CreateFailed { topic, code }),
        }
    }
    // Metadata propagates asynchronously on some brokers: verify before reporting success.
    for attempt in 0..20 {
        let (a, kc) = (admin.clone(), k.clone());
        let have = tokio::task::spawn_blocking(move || existing(&a, &kc))
            .await
            .expect("metadata task panicked")?;
        let still: Vec<String> = missing
            .iter()
            .filter(|t| !have.contains(*t))
            .cloned()
            .collect();
        if still.is_empty() {
            return Ok(());
        }
        if attempt == 19 {
            return Err(TopicError::Missing(still));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    Ok(())
}
