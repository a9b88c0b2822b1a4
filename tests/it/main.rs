//! Integration tests: the real `petitiond` binary against a real Kafka-protocol broker
//! (tansu, started by scripts/test.sh), one binary so the build happens once.

mod capture;
mod helpers;

mod board;
mod broker;
mod chaos;
mod check;
mod corrections;
mod delivery;
mod demo;
mod deploy;
mod failover;
mod faults;
mod http;
mod imap;
mod ledger;
mod mail;
mod mailbox;
mod metrics;
mod mock_faults;
mod notify;
mod replies;
mod report;
mod routing;
mod sla;
mod supplement;
mod writeback;
