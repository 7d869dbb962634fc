//! The whole path on real files: the repository's commented `handlers.toml`
//! (with its scripts) copied into a temp dir, changed, validated, written
//! and loaded again.

use std::path::{Path, PathBuf};

use super::secrets::REDACTED;
use super::*;
use crate::event::Phase;
use crate::setup;

/// A copy of the repository's `handlers.toml` and scripts.
fn fixture() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    for entry in std::fs::read_dir(repo.join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(
            &path,
            dir.path().join("scripts").join(path.file_name().unwrap()),
        )
        .unwrap();
    }
    let file = dir.path().join("handlers.toml");
    std::fs::copy(repo.join("handlers.toml"), &file).unwrap();
    (dir, file)
}

/// The config in `file` and its pipeline, as the daemon holds them.
fn load(file: &Path) -> (setup::Config, Pipeline) {
    let loaded = setup::load(file);
    let config = loaded
        .config
        .unwrap_or_else(|| panic!("{:#?}", loaded.diagnostics));
    let (pipeline, _) = Pipeline::build(&config).unwrap();
    (config, pipeline)
}

fn live_of(loaded: &(setup::Config, Pipeline)) -> Live<'_> {
    Live {
        config: &loaded.0,
        pipeline: &loaded.1,
    }
}

fn registration(json: &str) -> Registration {
    Registration::from_json(serde_json::from_str(json).unwrap()).unwrap()
}

/// The lines only `before` has and the lines only `after` has (a longest
/// common subsequence of lines is kept).
fn diff<'a>(before: &'a str, after: &'a str) -> (Vec<&'a str>, Vec<&'a str>) {
    let (old, new): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    let mut common = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            common[i][j] = if old[i] == new[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            (i, j) = (i + 1, j + 1);
        } else if j < new.len() && (i == old.len() || common[i][j + 1] >= common[i + 1][j]) {
            added.push(new[j]);
            j += 1;
        } else {
            removed.push(old[i]);
            i += 1;
        }
    }
    (removed, added)
}

#[test]
fn a_registration_joins_its_chains_at_the_end_and_changes_only_its_lines() {
    let (_dir, file) = fixture();
    let before = std::fs::read_to_string(&file).unwrap();
    let loaded = load(&file);
    let live = live_of(&loaded);
    let candidate = live
        .register(&registration(
            r#"{"Name": "ticket", "DisplayName": "Tickets", "ClassName": "HttpHandler",
                "SupportedEvents": ["OnError", "OnQueueEvent"], "JobTypes": ["WinCert"],
                "URL": "https://itsm.example.com/{JobId}",
                "Settings": {"headers": {"X-Source": "jobhook"}, "Retries": 2}}"#,
        ))
        .unwrap();
    live.commit(&candidate).unwrap();
    let after = std::fs::read_to_string(&file).unwrap();
    assert_eq!(after, candidate);
    let (removed, added) = diff(&before, &after);
    assert_eq!(
        removed,
        [
            r#"OnError = ["enrich", "audit", "summary", "failures", "itsm", "route_failures", "chat"]"#,
            r#"OnQueueEvent = ["audit"]"#,
        ]
    );
    assert_eq!(
        added,
        [
            r#"OnError = ["enrich", "audit", "summary", "failures", "itsm", "route_failures", "chat", "ticket"]"#,
            r#"OnQueueEvent = ["audit", "ticket"]"#,
            "[handlers.ticket]",
            r#"library = "HttpHandler""#,
            r#"display_name = "Tickets""#,
            r#"job_types = ["WinCert"]"#,
            r#"url = "https://itsm.example.com/{JobId}""#,
            r#"headers = { X-Source = "jobhook" }"#,
            "retries = 2",
            "",
        ]
    );
    // After the last handler section, before `[api]`'s comments.
    let section = after.find("[handlers.ticket]").unwrap();
    assert!(after.find("[handlers.chat]").unwrap() < section);
    assert!(section < after.find("# The API client scripts call").unwrap());

    let loaded = load(&file);
    for phase in [Phase::OnError, Phase::OnQueueEvent] {
        let last = loaded
            .1
            .chain(phase)
            .last()
            .map(|stage| stage.name.as_str());
        assert_eq!(last, Some("ticket"), "{phase}");
    }
    let live = live_of(&loaded);
    let shown = live.show("ticket").unwrap();
    assert_eq!(
        serde_json::to_value(&shown).unwrap(),
        serde_json::json!({
            "Id": "ticket", "Name": "ticket", "DisplayName": "Tickets",
            "ClassName": "HttpHandler", "Enabled": true,
            "SupportedEvents": ["OnError", "OnQueueEvent"], "JobTypes": ["WinCert"],
            "DropIn": false,
            "Settings": {
                "url": "https://itsm.example.com/{JobId}",
                "headers": {"X-Source": REDACTED},
                "retries": 2
            }
        })
    );
}

#[test]
fn enable_disable_and_remove_change_only_their_lines() {
    let (_dir, file) = fixture();
    let edit = |change: &dyn Fn(Live<'_>) -> Result<String, RegistrationError>| {
        let before = std::fs::read_to_string(&file).unwrap();
        let loaded = load(&file);
        let live = live_of(&loaded);
        let candidate = change(live).unwrap();
        live.commit(&candidate).unwrap();
        let after = std::fs::read_to_string(&file).unwrap();
        let (removed, added) = diff(&before, &after);
        let owned = |lines: Vec<&str>| lines.into_iter().map(str::to_owned).collect::<Vec<_>>();
        (owned(removed), owned(added))
    };

    let (removed, added) = edit(&|live| live.set_enabled("itsm", true));
    assert_eq!(
        (removed, added),
        (
            vec!["enabled = false".to_owned()],
            vec!["enabled = true".to_owned()]
        )
    );

    // No `enabled` yet: it becomes the section's last key.
    let (removed, added) = edit(&|live| live.set_enabled("summary", false));
    assert!(removed.is_empty());
    assert_eq!(added, ["enabled = false"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("by={Username}\"\nenabled = false\n\n# Failed jobs only"));

    let (removed, added) = edit(&|live| live.remove("summary"));
    assert_eq!(
        removed,
        [
            r#"OnFinish = ["enrich", "audit", "summary", "chat"]"#,
            r#"OnError = ["enrich", "audit", "summary", "failures", "itsm", "route_failures", "chat"]"#,
            "# One readable line per finished job, in one file per day.",
            "[handlers.summary]",
            r#"library = "TextFileHandler""#,
            r#"file_path = "var/log/summary-{date}.log""#,
            r#"format = "text""#,
            r#"template = "{ReceivedAt} {JobResult} {JobType} {OperationType} job={JobId} cert={CertificateId} by={Username}""#,
            "enabled = false",
            "",
        ]
    );
    assert_eq!(
        added,
        [
            r#"OnFinish = ["enrich", "audit", "chat"]"#,
            r#"OnError = ["enrich", "audit", "failures", "itsm", "route_failures", "chat"]"#,
        ]
    );

    // The first entry of a chain goes without leaving a space behind.
    let (removed, added) = edit(&|live| live.remove("enrich"));
    assert!(removed.contains(&"[handlers.enrich]".to_owned()));
    assert_eq!(
        added,
        [
            r#"OnFinish = ["audit", "chat"]"#,
            r#"OnError = ["audit", "failures", "itsm", "route_failures", "chat"]"#,
        ]
    );
}

#[test]
fn an_invalid_registration_reports_every_problem_and_writes_nothing() {
    let (_dir, file) = fixture();
    let before = std::fs::read(&file).unwrap();
    let loaded = load(&file);
    let live = live_of(&loaded);
    let problems = |json: &str| {
        let candidate = live.register(&registration(json)).unwrap();
        match live.commit(&candidate) {
            Err(err @ RegistrationError::Invalid { .. }) => {
                assert_eq!(err.status(), 422);
                let RegistrationError::Invalid { problems } = err else {
                    unreachable!()
                };
                problems
            }
            other => panic!("{other:?}"),
        }
    };
    let at = format!("{}:", file.display());
    // An unknown key and an unknown phase: both reported, at their lines.
    let both = problems(
        r#"{"Name": "x", "ClassName": "TextFileHandler", "FilePath": "x.log",
            "colour": "red", "SupportedEvents": ["OnFinsh"]}"#,
    );
    assert_eq!(both.len(), 2, "{both:#?}");
    assert!(
        both.iter().all(|problem| problem.starts_with(&at)),
        "{both:#?}"
    );
    assert!(both.iter().any(|problem| problem.contains("OnFinsh")));
    assert!(both.iter().any(|problem| problem.contains("colour")));
    let missing =
        problems(r#"{"Name": "x", "ClassName": "HttpHandler", "SupportedEvents": ["OnStart"]}"#);
    assert!(
        missing.iter().any(|problem| problem.contains("url")),
        "{missing:#?}"
    );
    let unknown =
        problems(r#"{"Name": "x", "ClassName": "HtpHandler", "SupportedEvents": ["OnStart"]}"#);
    assert!(
        unknown
            .iter()
            .any(|problem| problem.contains("did you mean `HttpHandler`")),
        "{unknown:#?}"
    );
    // Built, not only parsed: a script that does not compile.
    std::fs::write(
        file.with_file_name("scripts/broken.lua"),
        "function handle(event",
    )
    .unwrap();
    let script = problems(
        r#"{"Name": "x", "ClassName": "LuaHandler", "LuaScript": "broken.lua", "SupportedEvents": ["OnStart"]}"#,
    );
    assert!(
        script.iter().any(|problem| problem.contains("broken.lua")),
        "{script:#?}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn an_edit_made_since_the_read_is_not_lost() {
    let (_dir, file) = fixture();
    let loaded = load(&file);
    let live = live_of(&loaded);
    let candidate = live.set_enabled("itsm", true).unwrap();
    let edited = format!("{}# an operator's note\n", loaded.0.text);
    std::fs::write(&file, &edited).unwrap();
    let err = live.commit(&candidate).unwrap_err();
    assert!(matches!(err, RegistrationError::Changed { .. }), "{err:?}");
    assert_eq!(err.status(), 409);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), edited);
}

#[test]
fn names_that_exist_or_do_not_and_drop_ins() {
    let (dir, file) = fixture();
    std::fs::write(
        dir.path().join("scripts/notify.lua"),
        "return { on = {'OnFinish'}, job_types = {'A'}, enabled = false, \
         handle = function(event) end }",
    )
    .unwrap();
    let loaded = load(&file);
    let live = live_of(&loaded);
    let status = |result: Result<String, RegistrationError>| result.unwrap_err().status();
    assert_eq!(
        status(live.register(&registration(
            r#"{"Name": "audit", "ClassName": "TextFileHandler"}"#
        ))),
        409
    );
    assert_eq!(
        status(live.register(&registration(
            r#"{"Name": "notify.lua", "ClassName": "LuaHandler"}"#
        ))),
        409
    );
    assert_eq!(status(live.set_enabled("nothing", true)), 404);
    assert_eq!(status(live.remove("nothing")), 404);
    assert!(matches!(
        live.remove("notify.lua"),
        Err(RegistrationError::DropIn { .. })
    ));
    assert!(matches!(
        live.set_enabled("notify.lua", true),
        Err(RegistrationError::DropIn { .. })
    ));
    assert_eq!(live.show("nothing").unwrap_err().status(), 404);
    let drop_in = live.show("notify.lua").unwrap();
    assert!(drop_in.drop_in && !drop_in.enabled);
    assert_eq!(drop_in.class_name, "LuaHandler");
    assert_eq!(drop_in.supported_events, ["OnFinish"]);
    assert_eq!(drop_in.job_types, Some(vec!["A".to_owned()]));
    let names: Vec<String> = live.list().into_iter().map(|object| object.name).collect();
    assert_eq!(
        names,
        [
            "enrich",
            "audit",
            "summary",
            "failures",
            "itsm",
            "route_failures",
            "chat",
            "notify.lua"
        ]
    );
}

mod shown_and_written;
