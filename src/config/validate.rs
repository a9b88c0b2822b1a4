//! Stage two's walk over a whole config file: each section checked in turn by a named step
//! (daemon, admin, kafka, departments, routing, channels, sla, ...), in the order their errors
//! were always pushed, and the validated [`Config`] built from the results. The sections the
//! components own are checked by their functions (`petitiond_channels::config`,
//! `routing::config`, `sla::config`, `alerts::config`, `status::config`, `report::config`,
//! `admin::config`); what crosses sections is checked here.

use super::*;
use crate::admin::config::{admin, admin_listen};
use crate::alerts::config::email;
use crate::report::config::reports;
use crate::routing::config::{completeness, repeat, rules_files};
use crate::sla::config::sla;
use crate::status::config::replies;
use petitiond_channels::config::{http_sources, mailbox, writeback_clocks};

/// Checks every section in turn (the order in which errors are pushed, which orders the
/// errors of one line) and builds the [`Config`] when the sections that must be valid are.
pub(super) fn validate(v: &mut Validator<'_>, raw: RawConfig) -> Option<Config> {
    let d = &raw.daemon;
    let log_format = daemon(v, d);
    let admin_listen = admin_listen(v, &raw.admin);
    let admin = admin(v, &raw.admin, admin_listen);
    let kafka = kafka(v, &raw.kafka);
    let (ids, departments) = departments(v, &raw.departments, &kafka.dead_letter_topic);
    status_topics_distinct(v, &raw, &departments);
    let intake_desk = department_references(v, &raw, &ids);
    let completeness = completeness(v, &raw.routing.completeness);
    let repeat = repeat(v, &raw.routing.repeat);

    let mailbox = match &raw.channels.mailbox {
        Some(m) if m.enabled => mailbox(v, m),
        _ => None,
    };
    let mut http_sources = http_sources(v, &raw.channels);

    let sla = sla(v, &raw.sla, &kafka.dead_letter_topic);
    if let Some(sla) = &sla {
        writeback_clocks(v, &raw.channels, &mut http_sources, &sla.clocks);
    }
    let rules = rules_files(v, &raw.routing);
    if let Some(r) = &rules {
        load_rules(v, r, &departments, sla.as_ref());
    }
    let replies = replies(v, &raw.replies);
    let email = raw
        .alerts
        .email
        .as_ref()
        .filter(|e| e.enabled)
        .map(|e| email(v, e));

    let cluster = crate::cluster::check(v, &raw.cluster);
    let data_dir = v.path(&raw.daemon.data_dir);
    let reports = raw
        .reports
        .as_ref()
        .filter(|r| r.enabled)
        .and_then(|r| reports(v, r, &data_dir, &raw.sla.alerts_topic, email.is_some()));
    let resolve_data = |p: &str| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            data_dir.join(p)
        }
    };
    Some(Config {
        source: v.base_dir().to_path_buf(),
        shutdown_deadline: Duration::from_secs(d.shutdown_deadline_secs),
        log_format,
        log_filter: d.log_filter.clone(),
        admin_listen,
        admin,
        store: StoreConfig {
            path: resolve_data(&raw.store.path),
            busy_timeout: Duration::from_millis(raw.store.busy_timeout_ms),
            backend: store_backend(v, &raw.store),
        },
        blobs_dir: resolve_data(&raw.blobs.dir),
        data_dir: data_dir.clone(),
        allow_shared_data_dir: d.allow_shared_data_dir,
        kafka,
        departments,
        routing: RoutingConfig {
            default_lead: raw.routing.default_lead.clone(),
            rules,
            reload_interval: Duration::from_millis(raw.routing.reload_interval_ms.max(100)),
            intake_desk,
            completeness,
            repeat,
        },
        mailbox,
        http_sources,
        sla: sla?,
        email,
        replies: replies?,
        reports,
        cluster,
    })
}

/// `[store]`: the backend, and for PostgreSQL its URL (a secret), pool and timeout.
fn store_backend(v: &mut Validator<'_>, s: &raw::RawStore) -> StoreBackend {
    match s.backend.as_str() {
        "sqlite" => {
            if s.url.is_some() {
                v.err(
                    "store.url",
                    "only read with `backend = \"postgres\"`: set the backend, or remove `url`",
                );
            }
            StoreBackend::Sqlite
        }
        "postgres" => {
            v.positive("store.pool_size", s.pool_size);
            v.positive("store.connect_timeout_secs", s.connect_timeout_secs);
            let Some(r) = &s.url else {
                v.err(
                    "store.backend",
                    "`postgres` needs `url`: e.g. `url = { env = \"PETITIOND_STORE_URL\" }` \
                     (or `file`, or `credential`), holding postgres://user:password@host:port/db",
                );
                return StoreBackend::Sqlite;
            };
            let Some(url) = v.secret("store.url", r) else {
                return StoreBackend::Sqlite;
            };
            if let Err(e) = crate::store::PgStore::check_url(url.expose()) {
                v.err("store.url", format!("not a PostgreSQL connection URL: {e}"));
            }
            StoreBackend::Postgres {
                url,
                pool_size: usize::try_from(s.pool_size).unwrap_or(usize::MAX),
                connect_timeout: Duration::from_secs(s.connect_timeout_secs),
            }
        }
        other => {
            v.err(
                "store.backend",
                format!("`{other}` is not one of sqlite, postgres"),
            );
            StoreBackend::Sqlite
        }
    }
}

/// `[daemon]`: the shutdown deadline, the log format and filter.
fn daemon(v: &mut Validator<'_>, d: &raw::RawDaemon) -> LogFormat {
    v.positive("daemon.shutdown_deadline_secs", d.shutdown_deadline_secs);
    let log_format = match d.log_format.as_str() {
        "auto" => LogFormat::Auto,
        "json" => LogFormat::Json,
        "pretty" => LogFormat::Pretty,
        other => {
            v.err(
                "daemon.log_format",
                format!("`{other}` is not one of auto, json, pretty"),
            );
            LogFormat::Auto
        }
    };
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&d.log_filter) {
        v.err("daemon.log_filter", format!("not a valid filter: {e}"));
    }
    log_format
}

/// `[kafka]`: brokers, sizes and timeouts, the properties petitiond owns or that look like
/// secrets, the secret properties, and SASL without TLS.
fn kafka(v: &mut Validator<'_>, k: &raw::RawKafka) -> KafkaConfig {
    if k.brokers.trim().is_empty() {
        v.err("kafka.brokers", "must list at least one host:port");
    }
    if k.partitions < 1 {
        v.err("kafka.partitions", "must be at least 1");
    }
    if k.replication_factor < 1 {
        v.err("kafka.replication_factor", "must be at least 1");
    }
    v.positive("kafka.request_timeout_secs", k.request_timeout_secs);
    v.positive("kafka.relay_batch", k.relay_batch as u64);
    v.positive("kafka.retry_backoff_ms", k.retry_backoff_ms);
    v.positive(
        "kafka.recovery_scan_max_records",
        k.recovery_scan_max_records,
    );
    v.topic_name("kafka.dead_letter_topic", &k.dead_letter_topic);
    kafka_properties(v, k);
    let secret_properties = kafka_secret_properties(v, k);
    KafkaConfig {
        brokers: k.brokers.clone(),
        client_id: k.client_id.clone(),
        create_topics: k.create_topics,
        partitions: k.partitions,
        replication_factor: k.replication_factor,
        delivery_timeout: (k.delivery_timeout_secs > 0)
            .then(|| Duration::from_secs(k.delivery_timeout_secs)),
        request_timeout: Duration::from_secs(k.request_timeout_secs),
        relay_batch: k.relay_batch,
        retry_backoff: Duration::from_millis(k.retry_backoff_ms),
        recovery_scan_max_records: k.recovery_scan_max_records,
        recovery_time_margin: Duration::from_secs(k.recovery_time_margin_secs),
        dead_letter_topic: k.dead_letter_topic.clone(),
        properties: k.properties.clone(),
        secret_properties,
    }
}

/// `[kafka.properties]`: neither a key petitiond sets itself nor one that looks secret.
fn kafka_properties(v: &mut Validator<'_>, k: &raw::RawKafka) {
    // Keys the daemon sets itself for its guarantees; an operator must not turn them off.
    const OWNED: [&str; 9] = [
        "bootstrap.servers",
        "acks",
        "enable.idempotence",
        "message.timeout.ms",
        "delivery.timeout.ms",
        // Consumers: petitiond commits after the work is durable and never skips records.
        "group.id",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "auto.offset.reset",
    ];
    for key in k.properties.keys() {
        let path = format!("kafka.properties.{}", toml_file::quote_key(key));
        if OWNED.contains(&key.as_str()) {
            v.err(&path, "is set by petitiond itself (acks=all, idempotence, timeouts, consumer offsets); use the kafka.* and sla.* keys");
        } else if ["password", "secret", "key.pem", "token"]
            .iter()
            .any(|s| key.contains(s))
        {
            v.err(&path, "looks like a secret: move it to [kafka.secret_properties] with `env`, `file` or `credential`");
        }
    }
}

/// `[kafka.secret_properties]` resolved; a SASL secret needs TLS unless plaintext
/// authentication is allowed.
fn kafka_secret_properties(v: &mut Validator<'_>, k: &raw::RawKafka) -> BTreeMap<String, Secret> {
    let mut secret_properties = BTreeMap::new();
    for (key, r) in &k.secret_properties {
        if let Some(s) = v.secret(
            &format!("kafka.secret_properties.{}", toml_file::quote_key(key)),
            r,
        ) {
            secret_properties.insert(key.clone(), s);
        }
    }
    let tls = k
        .properties
        .get("security.protocol")
        .is_some_and(|p| p.eq_ignore_ascii_case("sasl_ssl") || p.eq_ignore_ascii_case("ssl"));
    // sasl.password, sasl.oauthbearer.client.secret...: sent to the broker. Only for a
    // secret that resolved: a key whose reference is wrong already has its error.
    for key in secret_properties.keys() {
        if key.starts_with("sasl.") && !tls && !k.allow_plaintext_auth {
            v.err(
                &format!("kafka.secret_properties.{}", toml_file::quote_key(key)),
                format!("with security.protocol other than SASL_SSL {PLAINTEXT_AUTH} in [kafka]"),
            );
        }
    }
    secret_properties
}

/// `[[departments]]`: at least one, unique ids, valid topics; returns the ids and the
/// departments with their status topics.
fn departments(
    v: &mut Validator<'_>,
    raw: &[raw::RawDepartment],
    dead_letter_topic: &str,
) -> (HashSet<String>, Vec<Department>) {
    let mut ids = HashSet::new();
    let mut departments = Vec::new();
    if raw.is_empty() {
        v.err(
            "departments",
            "at least one [[departments]] entry is required",
        );
    }
    for (i, dep) in raw.iter().enumerate() {
        if dep.id.trim().is_empty() {
            v.err(&format!("departments[{i}].id"), "must not be empty");
        } else if !ids.insert(dep.id.clone()) {
            v.err(
                &format!("departments[{i}].id"),
                format!("duplicate department id `{}`", dep.id),
            );
        }
        v.topic_name(&format!("departments[{i}].topic"), &dep.topic);
        if dep.topic == dead_letter_topic {
            v.err(
                &format!("departments[{i}].topic"),
                "must differ from kafka.dead_letter_topic",
            );
        }
        for (j, m) in dep.alert_emails.iter().enumerate() {
            v.email_address(&format!("departments[{i}].alert_emails[{j}]"), m);
        }
        let status_topic = dep
            .status_topic
            .clone()
            .unwrap_or_else(|| format!("{}.status", dep.topic));
        v.topic_name(&format!("departments[{i}].status_topic"), &status_topic);
        departments.push(Department {
            id: dep.id.clone(),
            name: dep.name.clone(),
            topic: dep.topic.clone(),
            status_topic,
            alert_emails: dep.alert_emails.clone(),
        });
    }
    (ids, departments)
}

/// Every status topic is one department's (or the shared one): a topic read as two
/// sources, or also written by petitiond, would blur who sent an event.
fn status_topics_distinct(v: &mut Validator<'_>, raw: &RawConfig, departments: &[Department]) {
    let mut seen: HashSet<&str> = [
        raw.kafka.dead_letter_topic.as_str(),
        raw.sla.alerts_topic.as_str(),
        raw.sla.status_topic.as_str(),
    ]
    .into_iter()
    .chain(departments.iter().map(|d| d.topic.as_str()))
    .collect();
    for (i, d) in departments.iter().enumerate() {
        if !seen.insert(d.status_topic.as_str()) {
            let key = if raw.departments[i].status_topic.is_some() {
                format!("departments[{i}].status_topic")
            } else {
                format!("departments[{i}].topic")
            };
            v.err(
                &key,
                format!(
                    "status topic `{}` is also another topic of this config (each department's status topic must be its own)",
                    d.status_topic
                ),
            );
        }
    }
}

/// Department ids named outside `[[departments]]` (shared status departments, the default
/// lead, the intake desk) must be defined there; returns the intake desk.
fn department_references(v: &mut Validator<'_>, raw: &RawConfig, ids: &HashSet<String>) -> String {
    for (j, id) in raw.sla.shared_status_departments.iter().enumerate() {
        if !ids.contains(id) {
            v.err(
                &format!("sla.shared_status_departments[{j}]"),
                format!("department `{id}` is not defined in [[departments]]"),
            );
        }
    }
    if !ids.contains(&raw.routing.default_lead) {
        v.err(
            "routing.default_lead",
            format!(
                "department `{}` is not defined in [[departments]]",
                raw.routing.default_lead
            ),
        );
    }
    let intake_desk = raw
        .routing
        .intake_desk
        .clone()
        .unwrap_or_else(|| raw.routing.default_lead.clone());
    if raw.routing.intake_desk.is_some() && !ids.contains(&intake_desk) {
        v.err(
            "routing.intake_desk",
            format!("department `{intake_desk}` is not defined in [[departments]]"),
        );
    }
    intake_desk
}

/// The rules are part of the configuration: `check` reports their errors too. Clock ids in
/// `sla_overrides` are checked only against an SLA section that is itself valid (its
/// errors are reported on their own).
fn load_rules(
    v: &mut Validator<'_>,
    r: &RulesFiles,
    departments: &[Department],
    sla: Option<&SlaConfig>,
) {
    let loaded = match sla {
        Some(sla) => petitiond_core::routing::load_rules(r, departments, &sla.clocks).map(|_| ()),
        None => petitiond_core::routing::rules::RuleSet::load(
            &r.rules_file,
            &r.dictionaries_dir,
            departments,
        )
        .map(|_| ()),
    };
    if let Err(d) = loaded {
        v.extend(d.errors);
    }
}
