//! Kafka: client configuration, topic checks, the CloudEvents wire form, and the outbox
//! relay that is the only producer of routed records.

pub mod client;
pub mod relay;
pub mod topics;
pub mod wire;
