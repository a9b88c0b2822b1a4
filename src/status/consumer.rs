//! The status consumer's Kafka loop: subscribe to the departments' status topics, hand each
//! record to the pure steps in [`super`] (parse, authorise, closing, clock writes), apply it in
//! one store transaction, dead-letter what is refused, commit the offset, and survive any
//! Kafka or store failure with a back-off (see the module head of [`super`]).

use super::*;

pub struct StatusConsumer {
    /// Its config sections: [`StatusInputs::from_config`].
    pub inputs: Arc<StatusInputs>,
    pub store: Arc<dyn Store>,
    pub metrics: Metrics,
    pub health: Arc<BrokerHealth>,
    pub timers: mpsc::UnboundedSender<Vec<Timer>>,
    /// Set by the relay once topics are verified: subscribing to a topic that does not exist
    /// yet would leave the consumer waiting for a metadata refresh.
    pub topics_ready: Arc<std::sync::atomic::AtomicBool>,
}

/// Back-off between consumer sessions after a failure.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

/// Failure state across sessions: the back-off, and whether this outage was reported.
struct Outage {
    backoff: Duration,
    reported: bool,
}

impl StatusConsumer {
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        while !self.topics_ready.load(std::sync::atomic::Ordering::Relaxed) {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.cancelled() => return Ok(()),
            }
        }
        let mut outage = Outage {
            backoff: RETRY_MIN,
            reported: false,
        };
        loop {
            match self.session(&stop, &mut outage).await {
                Ok(()) => break,
                // The consumer or the dead-letter producer could not be built or subscribed.
                Err(e) => {
                    if !self.wait_after(&e, &mut outage, &stop).await {
                        break;
                    }
                }
            }
        }
        tracing::info!("status consumer stopped");
        Ok(())
    }

    /// Counts and logs a failure; the first of an outage also goes to the alerts topic.
    async fn failed(&self, e: &anyhow::Error, outage: &mut Outage) {
        self.metrics.status_consumer_failures.inc();
        tracing::error!(
            error = format!("{e:#}"),
            retry_in_secs = outage.backoff.as_secs(),
            "status consumer failed; retrying (status events wait on their topics)"
        );
        if outage.reported {
            return;
        }
        let mut extra = serde_json::Map::new();
        extra.insert(
            "retry_in_secs".into(),
            serde_json::json!(outage.backoff.as_secs()),
        );
        let record = ops_event(
            &self.inputs.clocks.sla.alerts_topic,
            TYPE_STATUS_CONSUMER_FAILED,
            "urn:petitiond:status",
            &self.inputs.clocks.sla.consumer_group,
            "status_consumer_failed",
            &format!("{e:#}"),
            extra,
        );
        match blocking(&self.store, move |s| s.enqueue("status-consumer", &record)).await {
            Ok(()) => outage.reported = true,
            Err(e) => tracing::error!(error = %e, "cannot record the status consumer alert"),
        }
    }

    /// One consumer and dead-letter producer, until `stop` (Ok) or a failure to build them
    /// (Err). Failures while consuming are retried inside.
    async fn session(&self, stop: &CancellationToken, outage: &mut Outage) -> anyhow::Result<()> {
        let ctx = KafkaContext {
            metrics: self.metrics.clone(),
            health: self.health.clone(),
        };
        let consumer: StreamConsumer<KafkaContext> =
            status_consumer_config(&self.inputs.kafka, &self.inputs.clocks.sla.consumer_group)
                .create_with_context(ctx.clone())?;
        let sources: HashMap<String, StatusSource> =
            self.inputs.status_topics().into_iter().collect();
        let topics: Vec<&str> = sources.keys().map(String::as_str).collect();
        consumer.subscribe(&topics)?;
        let dlq = create_producer(&self.inputs.kafka, ctx)?;
        tracing::info!(topics = ?topics, group = %self.inputs.clocks.sla.consumer_group, "status consumer subscribed");
        loop {
            let m = tokio::select! {
                m = consumer.recv() => m,
                _ = stop.cancelled() => return Ok(()),
            };
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    // librdkafka recovers from most of these by itself: count, report once,
                    // and keep the session.
                    self.failed(&anyhow::anyhow!("consumer error: {e}"), outage)
                        .await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = stop.cancelled() => return Ok(()),
                    }
                    continue;
                }
            };
            let source = sources
                .get(m.topic())
                .cloned()
                .unwrap_or(StatusSource::Shared);
            // This record is handled before the next one: a failure (the store, the
            // dead-letter topic, the commit) is reported and retried in place, so nothing is
            // skipped, nothing is read out of order, and the group is not rebalanced.
            let (label, outcome) = loop {
                let attempt = match self.handle(&m, &source).await {
                    Ok(Ok(label)) => Ok((label, "applied")),
                    Ok(Err(rejected)) => {
                        tracing::warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(), reason = %rejected, "status event rejected; dead-lettering");
                        self.dead_letter(&dlq, &m, &rejected)
                            .await
                            .map(|()| (rejected.label().to_string(), "dead_lettered"))
                    }
                    Err(e) => Err(e),
                };
                match attempt {
                    Ok(done) => break done,
                    Err(e) => {
                        if !self.wait_after(&e, outage, stop).await {
                            return Ok(());
                        }
                    }
                }
            };
            self.metrics
                .status_events
                .get_or_create(&StatusLabels {
                    event: label,
                    outcome: outcome.into(),
                })
                .inc();
            while let Err(e) = consumer.commit_message(&m, CommitMode::Async) {
                if !self
                    .wait_after(&anyhow::anyhow!("committing the offset: {e}"), outage, stop)
                    .await
                {
                    return Ok(());
                }
            }
            if outage.reported || outage.backoff > RETRY_MIN {
                tracing::info!("status consumer working again");
                *outage = Outage {
                    backoff: RETRY_MIN,
                    reported: false,
                };
            }
        }
    }

    /// After a failure: report it, wait the back-off (doubling it); false if stopped meanwhile.
    async fn wait_after(
        &self,
        e: &anyhow::Error,
        outage: &mut Outage,
        stop: &CancellationToken,
    ) -> bool {
        self.failed(e, outage).await;
        let wait = outage.backoff;
        outage.backoff = (outage.backoff * 2).min(RETRY_MAX);
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = stop.cancelled() => false,
        }
    }

    /// Applies one record; `Ok(Ok(event name))` when applied or a duplicate.
    async fn handle(
        &self,
        m: &BorrowedMessage<'_>,
        source: &StatusSource,
    ) -> anyhow::Result<Result<String, Rejected>> {
        let (ev, kind) = match parse(m.payload().unwrap_or_default()) {
            Ok(x) => x,
            Err(r) => return Ok(Err(r)),
        };
        let id = ev.item_id.clone();
        let Some(env) = blocking(&self.store, move |s| s.item_envelope(&id)).await? else {
            return Ok(Err(Rejected::UnknownItem(ev.item_id)));
        };
        let department = match authorise(
            source,
            &self.inputs.clocks.sla.shared_status_departments,
            &ev,
            &env,
            Timestamp::now(),
            self.inputs.clocks.sla.status_max_future_skew,
        ) {
            Ok(d) => d,
            Err(r) => return Ok(Err(r)),
        };
        let reroute = match petitiond_core::routing::corrections::reroute(
            ev.payload.as_ref(),
            &self.inputs.clocks.departments,
        ) {
            Ok(r) => r,
            Err(why) => return Ok(Err(Rejected::Shape(why))),
        };
        let extend_days = ev
            .payload
            .as_ref()
            .and_then(|p| p.get("extend_days"))
            .and_then(|v| v.as_u64())
            .map(|d| d.min(u32::MAX as u64) as u32);
        let closing = match closing(&self.inputs.replies, kind, ev.payload.as_ref()) {
            Ok(c) => c,
            Err(r) => return Ok(Err(r)),
        };
        let record = StatusRecord {
            event_id: ev.event_id.clone(),
            item_id: ev.item_id.clone(),
            event: kind.as_str().into(),
            at: ev.time,
            department: Some(department.clone()),
            person: ev.actor.as_ref().and_then(|a| a.person.clone()),
            verdict: closing.verdict().map(Into::into),
            // A bounced reply is not a reply: the item stays where it was.
            stage: if closing.bounced() {
                None
            } else {
                stage_after(kind)
            },
        };
        let (inputs, metrics) = (self.inputs.clone(), self.metrics.clone());
        let closing_in = closing.clone();
        let outcome = blocking(&self.store, move |s| {
            s.apply_status(&record, &mut |env, clocks| {
                event_writes(
                    &inputs.clocks,
                    &metrics,
                    env,
                    clocks,
                    kind,
                    &record.event_id,
                    &department,
                    &closing_in,
                    record.at,
                    Timestamp::now(),
                    extend_days,
                )
            })
        })
        .await?;
        if matches!(outcome, StatusOutcome::Applied(_)) {
            self.count_closing(&ev, &closing);
        }
        if let (Some(r), StatusOutcome::Applied(_) | StatusOutcome::Duplicate) = (reroute, &outcome)
        {
            self.record_correction(&ev, r).await?;
        }
        match outcome {
            StatusOutcome::Applied(timers) => {
                if !timers.is_empty() {
                    let _ = self.timers.send(timers);
                }
                Ok(Ok(kind.as_str().into()))
            }
            StatusOutcome::Duplicate => {
                tracing::debug!(event_id = %ev.event_id, "duplicate status event ignored");
                Ok(Ok(kind.as_str().into()))
            }
            StatusOutcome::UnknownItem => Ok(Err(Rejected::UnknownItem(ev.item_id))),
        }
    }

    async fn dead_letter(
        &self,
        producer: &rdkafka::producer::FutureProducer<KafkaContext>,
        m: &BorrowedMessage<'_>,
        why: &Rejected,
    ) -> anyhow::Result<()> {
        let reason = why.to_string();
        let mut headers = OwnedHeaders::new();
        if let Some(h) = m.headers() {
            for x in h.iter() {
                headers = headers.insert(Header {
                    key: x.key,
                    value: x.value,
                });
            }
        }
        headers = headers
            .insert(Header {
                key: DLQ_REASON,
                value: Some(reason.as_bytes()),
            })
            .insert(Header {
                key: DLQ_TOPIC,
                value: Some(m.topic().as_bytes()),
            });
        let mut rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.inputs.kafka.dead_letter_topic).headers(headers);
        if let Some(k) = m.key() {
            rec = rec.key(k);
        }
        if let Some(p) = m.payload() {
            rec = rec.payload(p);
        }
        // Wait for the dead-letter topic to take it before the offset is committed.
        producer
            .send(rec, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("dead-lettering a status event failed: {e}"))?;
        Ok(())
    }
}

impl StatusConsumer {
    /// Counts and logs what the closed loop made of an applied event: ids, element names and
    /// configured phrases only, never the reply's text.
    fn count_closing(&self, ev: &StatusEvent, closing: &Closing) {
        match closing {
            Closing::Nothing => {}
            Closing::Reply(check) => {
                self.metrics
                    .reply_checks
                    .get_or_create(&crate::metrics::ResultLabel {
                        result: check.verdict().into(),
                    })
                    .inc();
                if !check.passed() {
                    let missing: Vec<&str> = check.missing.iter().map(|m| m.as_str()).collect();
                    tracing::warn!(item = %ev.item_id, event_id = %ev.event_id, no_text = check.no_text, ?missing, banned = ?check.banned, "reply bounced: the clock keeps running");
                }
            }
            Closing::Evaluation(s) => {
                self.metrics
                    .evaluations
                    .get_or_create(&crate::metrics::VerdictLabel {
                        verdict: s.map_or("none", Satisfaction::as_str).into(),
                    })
                    .inc();
                if *s == Some(Satisfaction::Dissatisfied) {
                    tracing::warn!(item = %ev.item_id, event_id = %ev.event_id, "dissatisfied evaluation: revisit alert raised");
                }
            }
        }
    }

    /// Records a re-route as a correction (once per event id: also after a redelivery whose
    /// clock changes were committed before a crash, hence on `Duplicate` too).
    async fn record_correction(
        &self,
        ev: &StatusEvent,
        r: petitiond_core::routing::corrections::Reroute,
    ) -> anyhow::Result<()> {
        let c = crate::store::NewCorrection {
            event_id: ev.event_id.clone(),
            item_id: ev.item_id.clone(),
            at: ev.time,
            actor: ev.actor.as_ref().map(|a| a.department.clone()),
            category: r.category,
            department: r.department,
        };
        let item = c.item_id.clone();
        if blocking(&self.store, move |s| s.record_correction(&c)).await? {
            tracing::info!(item = %item, "re-route recorded as a correction");
        }
        Ok(())
    }
}
