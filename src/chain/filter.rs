//! Which events a handler takes: `enabled`, `job_types`, `results`, `event_types`.

use crate::config::CommonSettings;
use crate::event::{Event, JobResult};

/// An absent filter matches every event.
#[derive(Debug, Clone)]
pub struct Filter {
    enabled: bool,
    job_types: Option<Vec<String>>,
    results: Option<Vec<JobResult>>,
    event_types: Option<Vec<String>>,
}

impl Filter {
    pub fn from_settings(settings: &CommonSettings) -> Filter {
        Filter {
            enabled: settings.enabled,
            job_types: settings.job_types.as_ref().map(|list| list.0.clone()),
            results: settings.results.as_ref().map(|list| list.0.clone()),
            event_types: settings.event_types.as_ref().map(|list| list.0.clone()),
        }
    }

    /// Whether the handler takes events at all (`enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The `JobType`s or `JobTypeId`s taken; `None`: all.
    pub fn job_types(&self) -> Option<&[String]> {
        self.job_types.as_deref()
    }

    /// Why the handler does not take `event`; `None` when it does.
    pub fn mismatch(&self, event: &Event) -> Option<Mismatch> {
        if !self.enabled {
            return Some(Mismatch::Disabled);
        }
        // Read only when a filter is set: for an event a script changed it
        // means parsing the event.
        let routing = || event.routing();
        let job_type = |types: &Vec<String>| {
            let routing = routing();
            let [id, name] = [&routing.job_type_id, &routing.job_type];
            types.iter().any(|wanted| {
                [id, name]
                    .into_iter()
                    .flatten()
                    .any(|have| have.eq_ignore_ascii_case(wanted))
            })
        };
        let result = |results: &Vec<JobResult>| {
            routing()
                .job_result
                .is_some_and(|result| results.contains(&result))
        };
        let event_type = |types: &Vec<String>| {
            let event_type = routing().event_type.as_deref().unwrap_or_default();
            types
                .iter()
                .any(|wanted| wanted.eq_ignore_ascii_case(event_type))
        };
        if !self.job_types.as_ref().is_none_or(job_type) {
            Some(Mismatch::JobTypes)
        } else if !self.results.as_ref().is_none_or(result) {
            Some(Mismatch::Results)
        } else if !self.event_types.as_ref().is_none_or(event_type) {
            Some(Mismatch::EventTypes)
        } else {
            None
        }
    }
}

/// Why a handler does not take an event, as a log line tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Disabled,
    JobTypes,
    Results,
    EventTypes,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mismatch::Disabled => "it is disabled (enabled = false)",
            Mismatch::JobTypes => "its job_types do not include the event's JobType or JobTypeId",
            Mismatch::Results => "its results do not include the event's JobResult",
            Mismatch::EventTypes => "its event_types do not include the event's EventType",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(toml: &str) -> Filter {
        let settings: CommonSettings = toml::from_str(toml).unwrap();
        Filter::from_settings(&settings)
    }

    fn event(json: &str) -> Event {
        Event::from_line(json.as_bytes(), jiff::Timestamp::now()).unwrap()
    }

    #[test]
    fn no_filters_match_everything() {
        assert_eq!(filter("").mismatch(&event("{}")), None);
        assert_eq!(
            filter("enabled = false").mismatch(&event("{}")),
            Some(Mismatch::Disabled)
        );
    }

    #[test]
    fn job_types_match_name_or_guid_in_any_case() {
        let f = filter(r#"job_types = "49B3A17D-CADA-4EC8-84C6-7719BF5BEEF3, wincertmanagement""#);
        let mismatch = |json: &str| f.mismatch(&event(json));
        assert_eq!(
            mismatch(r#"{"JobTypeId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3"}"#),
            None
        );
        assert_eq!(mismatch(r#"{"JobType":"WinCertManagement"}"#), None);
        let inventory = mismatch(r#"{"JobType":"WinCertInventory"}"#);
        assert_eq!(inventory, Some(Mismatch::JobTypes));
        assert_eq!(mismatch("{}"), Some(Mismatch::JobTypes));
    }

    #[test]
    fn results_and_event_types() {
        let f = filter(
            r#"results = ["Failure", "warning"]
event_types = ["orchestratorjob"]"#,
        );
        let mismatch = |json: &str| f.mismatch(&event(json));
        assert_eq!(mismatch(r#"{"JobResult":"Failure"}"#), None);
        assert_eq!(mismatch(r#"{"JobResult":"Warning"}"#), None);
        let success = mismatch(r#"{"JobResult":"Success"}"#);
        assert_eq!(success, Some(Mismatch::Results));
        assert_eq!(mismatch("{}"), Some(Mismatch::Results));
        assert_eq!(
            mismatch(r#"{"JobResult":"Failure","EventType":"CertificateExpiration"}"#),
            Some(Mismatch::EventTypes)
        );
    }
}
