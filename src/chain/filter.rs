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

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub fn matches(&self, event: &Event) -> bool {
        // Read only when a filter is set: for an event a script changed it
        // means parsing the event.
        let routing = || event.routing();
        self.enabled
            && self.job_types.as_ref().is_none_or(|types| {
                let routing = routing();
                let [id, name] = [&routing.job_type_id, &routing.job_type];
                types.iter().any(|wanted| {
                    [id, name]
                        .into_iter()
                        .flatten()
                        .any(|have| have.eq_ignore_ascii_case(wanted))
                })
            })
            && self.results.as_ref().is_none_or(|results| {
                routing()
                    .job_result
                    .is_some_and(|result| results.contains(&result))
            })
            && self.event_types.as_ref().is_none_or(|types| {
                let event_type = routing().event_type.as_deref().unwrap_or_default();
                types
                    .iter()
                    .any(|wanted| wanted.eq_ignore_ascii_case(event_type))
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
        assert!(filter("").matches(&event("{}")));
        assert!(!filter("enabled = false").matches(&event("{}")));
    }

    #[test]
    fn job_types_match_name_or_guid_in_any_case() {
        let f = filter(r#"job_types = "49B3A17D-CADA-4EC8-84C6-7719BF5BEEF3, wincertmanagement""#);
        assert!(f.matches(&event(
            r#"{"JobTypeId":"49b3a17d-cada-4ec8-84c6-7719bf5beef3"}"#
        )));
        assert!(f.matches(&event(r#"{"JobType":"WinCertManagement"}"#)));
        assert!(!f.matches(&event(r#"{"JobType":"WinCertInventory"}"#)));
        assert!(!f.matches(&event("{}")));
    }

    #[test]
    fn results_and_event_types() {
        let f = filter(
            r#"results = ["Failure", "warning"]
event_types = ["orchestratorjob"]"#,
        );
        assert!(f.matches(&event(r#"{"JobResult":"Failure"}"#)));
        assert!(f.matches(&event(r#"{"JobResult":"Warning"}"#)));
        assert!(!f.matches(&event(r#"{"JobResult":"Success"}"#)));
        assert!(!f.matches(&event("{}")));
        assert!(!f.matches(&event(
            r#"{"JobResult":"Failure","EventType":"CertificateExpiration"}"#
        )));
    }
}
