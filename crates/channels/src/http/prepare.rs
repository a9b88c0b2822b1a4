//! The prepare stage: one fetched record → what intake gets — an envelope with its
//! attachments fetched and stored (or a rejection), or held back while an attachment fails
//! for now, within each record's failure budget. Does not fetch pages nor move the cursor
//! (that is the poll loop, `super`).

use super::*;

/// A fetched record once mapped, before the store is asked anything about it.
pub(super) enum Mapping {
    /// Answered already (a rejection: it does not map).
    Done(Prepared),
    Mapped {
        reference: String,
        m: Box<Mapped>,
        time: Option<Timestamp>,
        bound: Option<Timestamp>,
    },
}

impl Mapping {
    /// The item id a mapped record will have.
    pub(super) fn id(&self, channel: petitiond_core::envelope::Channel) -> Option<String> {
        match self {
            Mapping::Mapped { m, .. } => {
                Some(petitiond_core::envelope::ItemId::derive(channel, &m.upstream_id).to_string())
            }
            Mapping::Done(_) => None,
        }
    }
}

impl HttpChannel {
    /// Maps one record (no I/O): a rejection is answered at once, with its reference.
    pub(super) fn map(&self, page: &str, i: usize, raw: &RawValue, key: TimeKey) -> Mapping {
        // The item boundary (as in intake): a panic while mapping one record quarantines it.
        let (mapping, tz, max) = (&self.config.mapping, &self.tz, self.config.max_record_bytes);
        let mapped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            record::map(raw, mapping, tz, max)
        }));
        let Ok(mapped) = mapped else {
            let detail = "petitiond panicked while mapping the record (a bug: please report it with the quarantined bytes); the panic message is not kept";
            return Mapping::Done(Prepared::Hand {
                reference: format!("{page}#{i}"),
                payload: Payload::Rejected {
                    raw: raw.get().as_bytes().to_vec(),
                    reason: crate::PANIC_REASON,
                    detail: detail.into(),
                },
                time: None,
                bound: None,
                raw: None,
            });
        };
        match mapped {
            Ok(m) => Mapping::Mapped {
                reference: format!("{page}#{i} id={}", m.upstream_id),
                time: key.cursor(&m),
                bound: key.bound(&m),
                m: Box::new(m),
            },
            Err(bad) => {
                // Name the record by its id when it has one, so the operator can find it.
                let id = serde_json::from_str::<serde_json::Value>(raw.get())
                    .ok()
                    .and_then(|v| {
                        self.config
                            .mapping
                            .id
                            .iter()
                            .find_map(|p| v.pointer(p).cloned())
                    })
                    .map(|v| match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    });
                let reference = match id {
                    Some(id) => format!("{page}#{i} id={id}"),
                    None => format!("{page}#{i}"),
                };
                Mapping::Done(Prepared::Hand {
                    reference,
                    payload: rejected(raw, bad),
                    time: None,
                    bound: None,
                    raw: None,
                })
            }
        }
    }

    /// One mapped record → what intake gets (an envelope with its version, or a rejection),
    /// or held back because an attachment failed for now. `known`: the item's version in the
    /// store, if it has one.
    pub(super) async fn prepare(
        &self,
        f: &Fetcher,
        stop: &CancellationToken,
        ctx: &PollCtx,
        raw: &RawValue,
        mapping: Mapping,
        known: Option<String>,
    ) -> Result<Prepared, PollError> {
        let (reference, m, time, bound) = match mapping {
            Mapping::Done(p) => return Ok(p),
            Mapping::Mapped {
                reference,
                m,
                time,
                bound,
            } => (reference, m, time, bound),
        };
        Ok(match self.envelope(f, stop, ctx, raw, *m, known).await? {
            Some((payload, raw)) => Prepared::Hand {
                reference,
                payload,
                time,
                bound,
                raw,
            },
            None => Prepared::Held(time, bound),
        })
    }

    /// Builds the envelope for a mapped record, its attachments fetched into the blob store,
    /// and the raw bytes the caller must store (unsynced) before handing the envelope over —
    /// `None` for a record already held at this version (intake will call it a duplicate and
    /// commit nothing that refers to them). `None` as a whole: an attachment failed for now
    /// and the item still has budget — held back.
    pub(super) async fn envelope(
        &self,
        f: &Fetcher,
        stop: &CancellationToken,
        ctx: &PollCtx,
        raw: &RawValue,
        m: Mapped,
        known: Option<String>,
    ) -> Result<Option<(Payload, Option<Vec<u8>>)>, PollError> {
        // A record we already have at this version needs no attachment downloads: intake will
        // recognise it.
        let unchanged = known.as_deref() == Some(m.version.as_str());
        let mut attachments = Vec::new();
        let mut flags = Vec::new();
        if !unchanged && self.config.attachments.enabled && !m.attachments.is_empty() {
            let limits = &self.config.attachments;
            // Out of budget already (read again through the overlap): straight back to
            // quarantine (idempotent), no more downloads.
            let spent = self
                .budget_seen(ctx, &m)
                .filter(|n| *n >= limits.max_failed_polls);
            let mut failed = None;
            if spent.is_none() {
                for (url, name) in m.attachments.iter().take(limits.max_per_item) {
                    match self.attachment(f, stop, url, name.as_deref()).await? {
                        Fetched::Stored(a) => attachments.push(a),
                        Fetched::Unavailable => {
                            if !flags.iter().any(|f| f == ATTACHMENT_UNAVAILABLE) {
                                flags.push(ATTACHMENT_UNAVAILABLE.to_string());
                            }
                        }
                        Fetched::Failed(reference, why) => {
                            failed = Some((reference, why));
                            break;
                        }
                    }
                }
            }
            let failed_polls = match (&failed, spent) {
                (_, Some(n)) => Some(n),
                (Some(_), None) => Some(self.budget_failed(ctx, &m)),
                (None, None) => {
                    self.budget_clear(ctx, &m);
                    None
                }
            };
            if let Some(n) = failed_polls {
                if n < limits.max_failed_polls {
                    tracing::warn!(source = %self.name(), upstream_id = %m.upstream_id, failed_polls = n, max_failed_polls = limits.max_failed_polls, "attachment failed for now: item held back, the cursor waits before it");
                    self.count_attachment("held");
                    return Ok(None);
                }
                let (reference, why) = failed.unwrap_or_else(|| {
                    (
                        m.attachments
                            .first()
                            .map(|(u, _)| self.attachment_reference(u))
                            .unwrap_or_default(),
                        "failed in earlier polls".into(),
                    )
                });
                let rejected = Payload::Rejected {
                    raw: raw.get().as_bytes().to_vec(),
                    reason: ATTACHMENT_FAILED,
                    detail: format!(
                        "attachment {reference} failed in {n} polls (max_failed_polls = {}): {why}",
                        limits.max_failed_polls
                    ),
                };
                return Ok(Some((rejected, None)));
            }
        }
        for field in &m.dropped {
            self.metrics
                .fields_dropped
                .get_or_create(&petitiond_metrics::SourceField {
                    source: self.name().to_string(),
                    field: (*field).to_string(),
                })
                .inc();
            let flag = format!("{DROPPED_FIELD}{field}");
            if !flags.contains(&flag) {
                flags.push(flag);
            }
        }
        let bytes = raw.get().as_bytes().to_vec();
        let raw_ref = petitiond_store::blobs::reference(&bytes);
        let mut env = build_envelope(
            self.config.channel,
            self.name(),
            &m,
            raw_ref.claim(),
            Timestamp::now(),
        );
        env.attachments = attachments;
        env.flags = flags;
        let payload = Payload::Record {
            envelope: Box::new(env),
            version: m.version,
        };
        Ok(Some((payload, (!unchanged).then_some(bytes))))
    }

    /// The item's failed polls so far if it has a budget entry (marked as read now).
    pub(super) fn budget_seen(&self, ctx: &PollCtx, m: &Mapped) -> Option<u32> {
        let mut b = ctx.budget.lock().expect("budget lock");
        let e = b
            .entries
            .iter_mut()
            .find(|e| e.upstream_id == m.upstream_id && e.version == m.version)?;
        e.last_seen_at = ctx.started;
        Some(e.failed_polls)
    }

    /// Counts a failed poll for the item (once per poll); returns its failed polls.
    pub(super) fn budget_failed(&self, ctx: &PollCtx, m: &Mapped) -> u32 {
        let mut b = ctx.budget.lock().expect("budget lock");
        b.changed = true;
        let now = ctx.started;
        if let Some(e) = b
            .entries
            .iter_mut()
            .find(|e| e.upstream_id == m.upstream_id && e.version == m.version)
        {
            if e.last_failed_at < now {
                e.failed_polls += 1;
                e.last_failed_at = now;
            }
            e.last_seen_at = now;
            return e.failed_polls;
        }
        b.entries.push(AttachmentFailure {
            upstream_id: m.upstream_id.clone(),
            version: m.version.clone(),
            failed_polls: 1,
            last_failed_at: now,
            last_seen_at: now,
        });
        1
    }

    /// The item's attachments all came: its budget is done with.
    pub(super) fn budget_clear(&self, ctx: &PollCtx, m: &Mapped) {
        let mut b = ctx.budget.lock().expect("budget lock");
        let before = b.entries.len();
        b.entries
            .retain(|e| !(e.upstream_id == m.upstream_id && e.version == m.version));
        if b.entries.len() != before {
            b.changed = true;
        }
    }

    pub(super) fn count_attachment(&self, outcome: &str) {
        self.metrics
            .attachments
            .get_or_create(&SourceOutcome {
                source: self.name().to_string(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// An attachment URL as quarantine may name it (no query, no credentials).
    pub(super) fn attachment_reference(&self, url: &str) -> String {
        reqwest::Url::parse(url)
            .or_else(|_| self.url(url).map_err(|_| ()))
            .map(|u| client::reference(&u))
            .unwrap_or_else(|_| "(not a URL)".into())
    }

    /// Fetches one attachment into the blob store: stored; unavailable for good (gone, too
    /// large, a type not allowed, another origin, a redirect refused) — the item goes on,
    /// flagged; or failed for now (network, timeout, 5xx after this poll's attempts).
    pub(super) async fn attachment(
        &self,
        f: &Fetcher,
        stop: &CancellationToken,
        url: &str,
        name: Option<&str>,
    ) -> Result<Fetched, PollError> {
        let limits = &self.config.attachments;
        let Ok(parsed) = reqwest::Url::parse(url).or_else(|_| self.url(url).map_err(|_| ())) else {
            self.count_attachment("bad_url");
            return Ok(Fetched::Unavailable);
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            self.count_attachment("bad_url");
            return Ok(Fetched::Unavailable);
        }
        let req = Req {
            method: reqwest::Method::GET,
            url: parsed,
            query: Vec::new(),
            purpose: client::Purpose::Attachment,
            max_body: limits.max_bytes,
            body: None,
            headers: Vec::new(),
        };
        let allowed = &limits.allowed_types;
        let fetched = f
            .fetch(&req, stop, |r| {
                let ct = media_type(r);
                if allowed.iter().any(|a| a == &ct) {
                    Ok(ct)
                } else {
                    Err(client::Unusable::Refuse(format!("type `{ct}` not allowed")))
                }
            })
            .await;
        let (resp, media_type) = match fetched {
            Ok(v) => v,
            Err(FetchError::Permanent { reason, what, .. }) => {
                self.count_attachment(if reason == client::refusal::HTTP_4XX {
                    "refused"
                } else {
                    reason
                });
                tracing::warn!(source = %self.name(), reason, error = %what, "attachment cannot be stored; item flagged");
                return Ok(Fetched::Unavailable);
            }
            Err(FetchError::Stopped) => return Err(PollError::Fetch(FetchError::Stopped)),
            Err(e) => {
                self.count_attachment("failed");
                return Ok(Fetched::Failed(client::reference(&req.url), e.to_string()));
            }
        };
        let blobs = Arc::clone(&self.blobs);
        let body = resp.body;
        let stored = tokio::task::spawn_blocking(move || blobs.put_unsynced(&body))
            .await
            .map_err(anyhow::Error::from)?
            .map_err(anyhow::Error::from)?;
        self.count_attachment("stored");
        Ok(Fetched::Stored(Attachment {
            name: name
                .map(str::to_string)
                .or_else(|| file_name(&req.url))
                .map(Personal::new),
            media_type,
            size: stored.size,
            sha256: stored.sha256.clone(),
            dataref: self.blobs.dataref(&stored),
        }))
    }
}

/// The envelope for a mapped record (attachments and flags are the caller's).
pub fn build_envelope(
    channel: petitiond_core::envelope::Channel,
    source: &str,
    m: &Mapped,
    raw_ref: String,
    now: Timestamp,
) -> Envelope {
    let mut env = Envelope::new(
        channel,
        Upstream {
            id: m.upstream_id.clone(),
            url: m.url.clone(),
            source: source.to_string(),
            raw_ref,
            updated_at: m.updated,
            status: m.status.clone(),
            service_code: m.service_code.clone(),
            region: m.region.clone(),
            ..Default::default()
        },
        // The item reached the office when the upstream received it, not when we polled:
        // a poll delay or an outage must not move its clocks. Without a creation time, its
        // update time is the latest it can have arrived.
        m.created.or(m.updated).filter(|c| *c <= now).unwrap_or(now),
        Request {
            title: m.title.clone().map(Personal::new),
            content: Personal::new(m.content.clone()),
        },
    );
    env.upstream_created_at = m.created;
    env.petitioner = Petitioner {
        name: m.name.clone().map(Personal::new),
        id_number: m.id_number.clone().map(Personal::new),
        phone: m.phone.clone().map(Personal::new),
        address: m.address.clone().map(Personal::new),
    };
    env
}

pub(super) fn media_type(r: &client::Resp) -> String {
    r.headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "application/octet-stream".into())
}

pub(super) fn file_name(url: &reqwest::Url) -> Option<String> {
    url.path_segments()?
        .next_back()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

pub(super) fn rejected(raw: &RawValue, bad: BadRecord) -> Payload {
    Payload::Rejected {
        raw: raw.get().as_bytes().to_vec(),
        reason: bad.reason(),
        detail: bad.to_string(),
    }
}
