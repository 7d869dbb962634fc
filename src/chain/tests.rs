use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Span;

use super::Pipeline;
use super::run::group_size;
use super::stage::{Attempt, Call};
use crate::event::{Event, Phase};

/// The pipeline of `hooks_and_handlers`, with `scripts` written into the
/// scripts folder of a temporary directory.
fn pipeline(dir: &Path, hooks_and_handlers: &str, scripts: &[(&str, &str)]) -> Pipeline {
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    for (name, text) in scripts {
        std::fs::write(dir.join("scripts").join(name), text).unwrap();
    }
    let loaded = crate::setup::parse(hooks_and_handlers, &dir.join("handlers.toml"));
    let config = loaded
        .config
        .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics));
    Pipeline::build(&config).unwrap().0
}

fn event(id: &str) -> Event {
    Event::from_line(
        format!(r#"{{"Id":"{id}"}}"#).as_bytes(),
        jiff::Timestamp::now(),
    )
    .unwrap()
}

#[test]
fn a_call_stuck_in_c_fails_only_its_event_and_the_rest_of_its_batch_runs() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(
        dir.path(),
        "[hooks]\nOnFinish = [\"s\"]\n\
         [handlers.s]\nlibrary = \"LuaHandler\"\nlua_script = \"s.lua\"\ntimeout = \"300ms\"\nretries = 0\n",
        &[(
            "s.lua",
            // A pattern no Lua hook can interrupt: one C call for ages.
            "function handle(e)\n\
               if e.Id == 'stuck' then string.find(string.rep('a', 2e6), '.-.-.-.-.-.-.-.-.-b') end\n\
               e.Seen = true\n\
               return e\n\
             end",
        )],
    );
    let stage = &pipeline.chain(Phase::OnFinish)[0];
    let events = [event("a"), event("stuck"), event("c")];
    let span = Span::none();
    let calls: Vec<Call> = events
        .iter()
        .map(|event| Call {
            event,
            prior: 0,
            replayed: false,
            span: &span,
        })
        .collect();
    // Built above off the runtime, as the daemon builds pipelines.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let attempts = runtime.block_on(stage.attempt_many(&calls, &CancellationToken::new()));
    let seen = |attempt: &Attempt| match attempt {
        Attempt::Delivered(Some(event)) => event.id().to_owned(),
        other => panic!("not delivered: {other:?}"),
    };
    assert_eq!(seen(&attempts[0]), "a");
    match &attempts[1] {
        Attempt::Failed { error, .. } => {
            assert!(error.message.contains("timed out after 300ms"), "{error}")
        }
        other => panic!("the stuck call was not given up: {other:?}"),
    }
    // Handed over with the stuck call, run by a fresh state.
    assert_eq!(seen(&attempts[2]), "c");
    let Attempt::Delivered(Some(changed)) = &attempts[2] else {
        unreachable!()
    };
    assert!(String::from_utf8_lossy(changed.json()).contains(r#""Seen":true"#));
}

#[test]
fn a_group_is_what_the_chain_handles_in_its_budget_and_one_until_measured() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(
        dir.path(),
        "[hooks]\nOnFinish = [\"a\", \"b\"]\n\
         [handlers.a]\nlibrary = \"TextFileHandler\"\nfile_path = \"a.log\"\n\
         [handlers.b]\nlibrary = \"TextFileHandler\"\nfile_path = \"b.log\"\n",
        &[],
    );
    let chain = pipeline.chain(Phase::OnFinish);
    assert_eq!(group_size(chain, 64), 1, "nothing measured yet");
    chain[0].measure(10, Duration::from_micros(100));
    assert_eq!(group_size(chain, 64), 1, "one stage not measured yet");
    chain[1].measure(10, Duration::from_micros(100));
    // 20 µs per event through the chain: 100 fit in 2 ms; 64 are waiting.
    assert_eq!(group_size(chain, 64), 64);
    assert_eq!(group_size(chain, 7), 7);
    // A slow stage: each event takes 20 ms.
    for _ in 0..20 {
        chain[1].measure(1, Duration::from_millis(20));
    }
    assert_eq!(group_size(chain, 64), 1);
}
