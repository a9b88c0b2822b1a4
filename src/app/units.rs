//! The units: what runs once per installation, each channel source and the singleton tasks,
//! built as restartable starts ([`crate::cluster::Units`]). One instance starts them all at
//! once; several instances (`[cluster]`) start each where the Kafka group assigns it, under
//! the store's lease (ARCHITECTURE.md, "Several instances").

use super::{Application, Tasks};
use crate::channels::Incoming;
use crate::channels::http::writeback::WritebackWorker;
use crate::channels::http::{ChannelHealth, HttpChannel};
use crate::channels::imap::ImapChannel;
use crate::channels::mailbox::MaildirChannel;
use crate::cluster::{ClusterConfig, Ownership, Supervisor, Units};
use crate::config::MailboxKind;
use crate::kafka::relay::Relay;
use anyhow::Context;
use futures::FutureExt;
use petitiond_kafka::lease::{LeaseMember, LeaseSettings, ensure_control_topic};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;

impl Application {
    /// The channel units: the mailbox, and each HTTP source with its status write-back worker.
    /// Returns the HTTP channels' health for the admin server.
    pub(super) fn channel_units(
        &self,
        tasks: &Tasks,
        intake: mpsc::Sender<Incoming>,
    ) -> anyhow::Result<(Units, ChannelHealth)> {
        let cfg = &self.config;
        let mut units = Units::default();
        if let Some(mb) = &cfg.mailbox {
            match &mb.kind {
                MailboxKind::Maildir { path } => {
                    let ch = MaildirChannel {
                        source: "mailbox".into(),
                        path: path.clone(),
                        config: mb.clone(),
                        intake: intake.clone(),
                    };
                    units.add(
                        "mailbox",
                        Box::new(move |_lease, stop| ch.clone().run(stop).boxed()),
                    );
                }
                MailboxKind::Imap(imap) => {
                    // The spool holds whole mails: created owner-only here, whatever the
                    // channel does with it (the umask covers its files).
                    let spool = cfg.data_dir.join("imap-spool");
                    crate::store::files::create_private_dir(&spool)
                        .with_context(|| format!("creating {}", spool.display()))?;
                    let ch = ImapChannel {
                        source: "mailbox".into(),
                        imap: imap.clone(),
                        max_message_bytes: mb.max_message_bytes,
                        poll_interval: mb.poll_interval,
                        spool,
                        intake: intake.clone(),
                        store: self.store.clone(),
                        metrics: self.metrics.clone(),
                        lease: None,
                    };
                    units.add(
                        "mailbox",
                        Box::new(move |lease, stop| {
                            ImapChannel {
                                lease,
                                ..ch.clone()
                            }
                            .run(stop)
                            .boxed()
                        }),
                    );
                }
            }
        }
        let channel_health = ChannelHealth::default();
        for source in &cfg.http_sources {
            let ch = HttpChannel {
                config: Arc::new(source.clone()),
                tz: cfg.sla.calendar.time_zone().clone(),
                store: self.store.clone(),
                blobs: self.blobs.clone(),
                intake: intake.clone(),
                metrics: self.metrics.clone(),
                health: channel_health.clone(),
                alerts_topic: cfg.sla.alerts_topic.clone(),
                relay_wake: tasks.wake.clone(),
                lease: None,
            };
            // Status write-back: its own task beside the channel (its rows wait in the store).
            let worker = source.writeback.is_some().then(|| WritebackWorker {
                source: Arc::new(source.clone()),
                store: self.store.clone(),
                metrics: self.metrics.clone(),
            });
            units.add(
                &source.name,
                Box::new(move |lease, stop| {
                    let ch = HttpChannel {
                        lease,
                        ..ch.clone()
                    }
                    .run(stop.clone());
                    match worker.clone() {
                        None => ch.boxed(),
                        Some(w) => async move {
                            futures::try_join!(ch, w.run(stop))?;
                            Ok(())
                        }
                        .boxed(),
                    }
                }),
            );
        }
        Ok((units, channel_health))
    }

    /// Several instances: the tasks that must run once per installation become units too —
    /// the outbox relay (stopped at once on revocation: what it had in flight is recovered by
    /// the next owner's recovery scan), the mailer and the report scheduler.
    pub(super) fn singleton_units(&self, tasks: &Tasks, units: &mut Units) {
        let cfg = &self.config;
        let relay = Relay {
            config: cfg.kafka.clone(),
            topics: cfg.topics(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            health: tasks.health.clone(),
            wake: tasks.wake.clone(),
            // `/readyz` in cluster mode is set by the member once the topics are verified.
            ready: Arc::new(Default::default()),
            alerts_topic: cfg.sla.alerts_topic.clone(),
            lease: None,
        };
        units.add(
            crate::cluster::RELAY_UNIT,
            Box::new(move |lease, stop| {
                let mut r = relay.clone();
                r.lease = lease;
                r.run(stop.clone(), stop).boxed()
            }),
        );
        if let Some(email) = &cfg.email {
            let mailer = crate::alerts::mail::Mailer {
                config: email.clone(),
                store: self.store.clone(),
                metrics: self.metrics.clone(),
            };
            units.add(
                crate::cluster::MAILER_UNIT,
                Box::new(move |_lease, stop| mailer.clone().run(stop).boxed()),
            );
        }
        if cfg.reports.is_some() {
            let scheduler = crate::report::schedule::Scheduler::new(
                Arc::new(crate::report::schedule::ReportInputs::from_config(cfg)),
                self.store.clone(),
                tasks.wake.clone(),
            );
            units.add(
                crate::cluster::REPORTS_UNIT,
                Box::new(move |_lease, stop| scheduler.clone().run(stop).boxed()),
            );
        }
    }

    /// Several instances: checks the topics and the control topic, joins the ownership group
    /// and runs the units it assigns here until shutdown. `/readyz` turns ready once the
    /// topics are verified and the member has joined.
    pub(super) fn spawn_cluster(
        &self,
        tasks: &Tasks,
        cluster: &ClusterConfig,
        units: Units,
        ownership: Ownership,
    ) {
        let settings = LeaseSettings {
            topic: cluster.control_topic.clone(),
            group: cluster.group.clone(),
            instance: cluster.instance.clone(),
            units: units.names(),
            session_timeout: cluster.session_timeout,
            revoke_deadline: cluster.revoke_deadline,
        };
        let kafka = self.config.kafka.clone();
        let topics = self.config.topics();
        let context = crate::kafka::client::KafkaContext {
            metrics: self.metrics.clone(),
            health: tasks.health.clone(),
        };
        let supervisor = Supervisor {
            units,
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            ownership,
            revoke_deadline: cluster.revoke_deadline,
        };
        let (ready, shutdown) = (tasks.ready.clone(), tasks.shutdown.clone());
        tasks.spawn("cluster", async move {
            crate::kafka::topics::ensure_topics(&kafka, &topics)
                .await
                .context("verifying the topics")?;
            let (k, s) = (kafka.clone(), settings.clone());
            tokio::task::spawn_blocking(move || ensure_control_topic(&k, &s))
                .await
                .map_err(|e| anyhow::anyhow!(crate::panics::join_error(&e)))?
                .context("the ownership control topic")?;
            let (member, changes) = LeaseMember::join(&kafka, &settings, context)?;
            tracing::info!(
                instance = %settings.instance,
                group = %settings.group,
                units = ?settings.units,
                "joined the ownership group"
            );
            ready.store(true, Ordering::Relaxed);
            let result = supervisor.run(changes, shutdown).await;
            // Leaving revokes nothing that still runs (the supervisor stopped every unit);
            // the others take this instance's units at once instead of after the timeout.
            tokio::task::spawn_blocking(move || member.leave())
                .await
                .ok();
            result
        });
    }
}
