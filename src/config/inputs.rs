//! Each task's own sections, cut from the whole [`Config`]: the components declare what they
//! read (`SlaInputs`, `StatusInputs`, `IntakeInputs`, `ReportInputs`, `RouterInputs`, the
//! board's `BoardConfig`, `AlertSections`) and never import `config`; this module, above
//! them, builds those inputs once from the composed config.

use super::Config;
use crate::admin::board::{BoardConfig, REFRESH_SECS};
use crate::alerts::AlertSections;
use crate::intake::IntakeInputs;
use crate::report::schedule::ReportInputs;
use crate::routing::RouterInputs;
use crate::sla::SlaInputs;
use crate::status::StatusInputs;
use petitiond_channels::mailbox::parse::Limits;

impl RouterInputs {
    pub fn from_config(cfg: &Config) -> RouterInputs {
        RouterInputs {
            routing: cfg.routing.clone(),
            departments: cfg.departments.clone(),
            clocks: cfg.sla.clocks.clone(),
        }
    }
}

impl ReportInputs {
    pub fn from_config(cfg: &Config) -> ReportInputs {
        ReportInputs {
            reports: cfg.reports.clone(),
            sla: cfg.sla.clone(),
            departments: cfg.departments.clone(),
            mail: cfg.email.is_some(),
        }
    }
}

impl StatusInputs {
    pub fn from_config(cfg: &Config) -> StatusInputs {
        StatusInputs {
            clocks: SlaInputs::from_config(cfg),
            replies: cfg.replies.clone(),
            kafka: cfg.kafka.clone(),
        }
    }
}

impl IntakeInputs {
    pub fn from_config(cfg: &Config) -> IntakeInputs {
        IntakeInputs {
            clocks: SlaInputs::from_config(cfg),
            completeness: cfg.routing.completeness.clone(),
            mail_limits: Limits::of(cfg.mailbox.as_ref()),
        }
    }
}

impl SlaInputs {
    pub fn from_config(cfg: &Config) -> SlaInputs {
        SlaInputs {
            sla: cfg.sla.clone(),
            departments: cfg.departments.clone(),
            http_sources: cfg.http_sources.clone(),
            mail: cfg.email.is_some(),
            // Half the session timeout: a timer another instance started is known here well
            // before a takeover could have moved anything.
            resync: cfg.cluster.as_ref().map(|c| c.session_timeout / 2),
        }
    }
}

impl BoardConfig {
    pub fn from_config(cfg: &Config) -> BoardConfig {
        BoardConfig {
            tz: cfg.sla.calendar.time_zone().clone(),
            clock_ids: cfg.sla.clocks.iter().map(|c| c.id.clone()).collect(),
            departments: cfg
                .departments
                .iter()
                .map(|d| (d.id.clone(), d.name.clone()))
                .collect(),
            refresh_secs: REFRESH_SECS,
            calendar: Some(cfg.sla.calendar.clone()),
        }
    }
}

impl<'a> AlertSections<'a> {
    /// The sections of a whole config (tests).
    pub fn of(cfg: &'a Config) -> Self {
        AlertSections {
            alerts_topic: &cfg.sla.alerts_topic,
            supervisors: &cfg.sla.supervisors,
            calendar: &cfg.sla.calendar,
            departments: &cfg.departments,
            mail: cfg.email.is_some(),
        }
    }
}
