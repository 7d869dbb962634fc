//! The Lua sandbox's edges, as a hostile script or a careless symlink tries
//! them: `[api]` credentials stay with `[api]`'s host, and no file outside
//! `scripts_dir` is loaded or quoted. (Issue 15, items 5 and 6.)

#![cfg(unix)] // Drives the Unix socket and symlinks.

mod util;

use serde_json::Value;
use util::http::{HttpServer, Reply};
use util::*;

/// A Lua handler running `script.lua`, then a file recording the event.
const CHAIN: &str = "[hooks]\nOnFinish = [\"script\", \"record\"]\n\
[handlers.script]\nlibrary = \"LuaHandler\"\nlua_script = \"script.lua\"\nretries = 0\n\
[handlers.record]\nlibrary = \"TextFileHandler\"\nfile_path = \"out/events.log\"\n";

const TOKEN: &str = "TOKEN-7f3a9c-never-shown";

#[test]
fn the_api_client_never_takes_its_credentials_to_another_host() {
    let api = HttpServer::start();
    let elsewhere = HttpServer::start();
    api.script([Reply::status(200)]);
    let other = elsewhere.url("/x").replace("http://", "");
    let script = format!(
        r#"
        function handle(event)
          event.tries = {{}}
          for _, path in ipairs({{ "\\\\{other}", "//{other}", "https:{other}", "http:{other}",
                                  "../../outside", "%2e%2e/%2e%2e/outside" }}) do
            local ok, err = pcall(client.get, client, path)
            table.insert(event.tries, ok and "sent" or tostring(err))
          end
          local status = client:get("inside/ok")
          event.inside = status
          return event
        end
    "#
    );
    let config = format!(
        "{CHAIN}[api]\nbase_url = \"{}\"\nbasic_user = \"svc\"\nbasic_password = \"secret\"\n",
        api.url("/KeyfactorAPI/")
    );
    let daemon = Daemon::start_with(&config, &[("scripts/script.lua", &script)]);
    daemon.send(&[r#"{"Id":"escape"}"#]);
    let line = &wait_for_lines(&daemon.path("out/events.log"), 1)[0];
    let event: Value = serde_json::from_str(line).unwrap();
    let tries: Vec<&str> = event["tries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|outcome| outcome.as_str().unwrap())
        .collect();
    // `//host` and `http:host` join as paths under the base (same scheme):
    // they are sent, to the API host. The others would leave it.
    for (index, outcome) in tries.iter().enumerate() {
        if [1, 3].contains(&index) {
            assert_eq!(*outcome, "sent", "{event}");
        } else {
            assert!(outcome.contains("leads outside [api] base_url"), "{event}");
        }
    }
    assert_eq!(event["inside"], 200);
    assert!(
        elsewhere.requests().is_empty(),
        "the other host was reached"
    );
    let requests = api.requests();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert!(
            request.target.starts_with("/KeyfactorAPI/"),
            "{}",
            request.target
        );
    }
}

/// `scripts/_leak.lua` and `scripts/leak.lua` link to a token outside.
fn with_leaking_links(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("secret")).unwrap();
    std::fs::write(dir.join("secret/api.token"), format!("{TOKEN}\n")).unwrap();
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    for link in ["scripts/_leak.lua", "scripts/leak.lua"] {
        std::os::unix::fs::symlink("../secret/api.token", dir.join(link)).unwrap();
    }
}

const REQUIRER: &str = "function handle(event)\n\
  local ok, err = pcall(require, '_leak')\n\
  event.required = ok\n\
  event.error = tostring(err)\n\
  return event\n\
end";

#[test]
fn a_drop_in_linking_out_of_scripts_dir_fails_check_without_showing_the_file() {
    let (dir, config) = config_dir(CHAIN);
    write_files(dir.path(), &[("scripts/script.lua", REQUIRER)]);
    with_leaking_links(dir.path());
    let output = jobhook(&["check", "-c", config.to_str().unwrap()], None);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{printed}");
    assert!(
        printed.contains("leak.lua leads outside scripts_dir"),
        "{printed}"
    );
    assert!(!printed.contains("TOKEN"), "{printed}");
}

#[test]
fn require_of_a_link_out_of_scripts_dir_is_refused_without_showing_the_file() {
    let daemon = Daemon::start_with(CHAIN, &[("scripts/script.lua", REQUIRER)]);
    std::fs::create_dir_all(daemon.path("secret")).unwrap();
    std::fs::write(daemon.path("secret/api.token"), format!("{TOKEN}\n")).unwrap();
    std::os::unix::fs::symlink("../secret/api.token", daemon.path("scripts/_leak.lua")).unwrap();
    daemon.send(&[r#"{"Id":"leak"}"#]);
    let line = &wait_for_lines(&daemon.path("out/events.log"), 1)[0];
    let event: Value = serde_json::from_str(line).unwrap();
    assert_eq!(event["required"], false, "{event}");
    assert!(
        event["error"]
            .as_str()
            .unwrap()
            .contains("leads outside scripts_dir"),
        "{event}"
    );
    assert!(!line.contains("TOKEN") && !daemon.log().contains("TOKEN"));
}
