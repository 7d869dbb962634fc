//! Hot reload through the real daemon: the config edited in place, replaced
//! by rename, broken and fixed, scripts changed and dropped in, SIGHUP — and
//! every acked event handled exactly once by each handler throughout.

#![cfg(unix)] // Drives the Unix socket and signals.

mod util;

use std::time::{Duration, Instant};

use util::*;

fn file_handler(name: &str) -> String {
    format!("[handlers.{name}]\nlibrary = \"TextFileHandler\"\nfile_path = \"out/{name}.log\"\n")
}

fn config(chain: &[&str], extra: &str) -> String {
    let names: Vec<String> = chain.iter().map(|name| format!("\"{name}\"")).collect();
    let mut text = format!("[hooks]\nOnFinish = [{}]\n{extra}\n", names.join(", "));
    for name in chain {
        if !extra.contains(&format!("[handlers.{name}]")) {
            text.push_str(&file_handler(name));
        }
    }
    text
}

/// Writes the config the way an editor saving in place does.
fn write_in_place(daemon: &Daemon, text: &str) {
    std::fs::write(&daemon.config, with_socket(text)).unwrap();
}

/// Writes the config the way Ansible does: a new file renamed over the old.
fn write_by_rename(daemon: &Daemon, text: &str) {
    let temporary = daemon.path(".handlers.toml.tmp");
    std::fs::write(&temporary, with_socket(text)).unwrap();
    std::fs::rename(&temporary, &daemon.config).unwrap();
}

fn with_socket(text: &str) -> String {
    format!("[daemon]\nsocket = \"run/jobhook.sock\"\n{text}")
}

/// Sends numbered events until `done` holds (the new config is serving),
/// returning the ids sent.
fn send_until(daemon: &Daemon, label: &str, mut done: impl FnMut() -> bool) -> Vec<String> {
    let started = Instant::now();
    let mut sent = Vec::new();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{label}: the new config never served:\n{}",
            daemon.log()
        );
        let id = format!("{label}-{}", sent.len());
        let replies = daemon.send(&[&format!(r#"{{"Id":"{id}"}}"#)]);
        assert!(reply_ok(&replies[0]), "{replies:?}");
        sent.push(id);
        std::thread::sleep(Duration::from_millis(30));
    }
    sent
}

/// Every id was handled exactly once by the handler writing `file`.
fn exactly_once(daemon: &Daemon, file: &str, sent: &[String]) {
    let path = daemon.path(file);
    eventually(&format!("every event in {file}"), || {
        let seen = ids_in(&path);
        sent.iter().all(|id| seen.contains_key(id))
    });
    let seen = ids_in(&path);
    for id in sent {
        assert_eq!(seen[id], 1, "{id} handled {} times by {file}", seen[id]);
    }
}

/// A `done` for [`send_until`] that holds after `n` events.
fn times(n: usize) -> impl FnMut() -> bool {
    let mut left = n;
    move || {
        let done = left == 0;
        left = left.saturating_sub(1);
        done
    }
}

#[test]
fn a_handler_added_in_place_then_removed_by_rename_serves_without_loss_or_doubles() {
    let daemon = Daemon::start(&config(&["a"], ""));
    let mut sent = send_until(&daemon, "before", times(3));

    write_in_place(&daemon, &config(&["a", "b"], ""));
    let b_log = daemon.path("out/b.log");
    sent.extend(send_until(&daemon, "adding", || !lines(&b_log).is_empty()));
    let added = send_until(&daemon, "added", times(3));
    exactly_once(&daemon, "out/b.log", &added);
    sent.extend(added);

    write_by_rename(&daemon, &config(&["a"], ""));
    eventually("the second reload", || {
        daemon.log().matches("config reloaded").count() >= 2
    });
    let b_before = lines(&b_log).len();
    sent.extend(send_until(&daemon, "removed", times(3)));
    exactly_once(&daemon, "out/a.log", &sent);
    assert_eq!(lines(&b_log).len(), b_before, "b still handles events");
}

#[test]
fn a_changed_filter_applies_to_later_events() {
    let daemon = Daemon::start(&config(&["a"], ""));
    write_in_place(
        &daemon,
        &config(
            &["a"],
            "[handlers.a]\nlibrary = \"TextFileHandler\"\nfile_path = \"out/a.log\"\nresults = [\"Failure\"]\n",
        ),
    );
    eventually("the reload", || daemon.log().contains("config reloaded"));
    daemon.send(&[
        r#"{"Id":"success","JobResult":"Success","Phase":"OnFinish"}"#,
        r#"{"Id":"failure","JobResult":"Failure","Phase":"OnFinish"}"#,
    ]);
    let handled = wait_for_lines(&daemon.path("out/a.log"), 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&daemon.path("out/a.log")).len(), 1, "{handled:?}");
    assert!(handled[0].contains("\"failure\""));
}

#[test]
fn a_broken_config_keeps_the_old_chain_serving_until_it_is_fixed() {
    let daemon = Daemon::start(&config(&["a"], ""));
    write_in_place(&daemon, &(config(&["a", "b"], "") + "oops = [\n"));
    eventually("the error is logged with its position", || {
        let log = daemon.log();
        log.contains("config reload failed; still running the previous config")
            && log.contains("handlers.toml:")
    });
    let broken_line = daemon
        .log()
        .lines()
        .find(|line| line.contains("handlers.toml:") && line.contains("ERROR"))
        .unwrap()
        .to_owned();
    assert!(
        broken_line.contains(&format!("{}:", daemon.config.display())),
        "{broken_line}"
    );
    let during = send_until(&daemon, "broken", || true);
    exactly_once(&daemon, "out/a.log", &during);
    assert!(lines(&daemon.path("out/b.log")).is_empty());

    write_in_place(&daemon, &config(&["a", "b"], ""));
    let b_log = daemon.path("out/b.log");
    let fixed = send_until(&daemon, "fixed", || !lines(&b_log).is_empty());
    exactly_once(&daemon, "out/a.log", &fixed);
    assert!(
        daemon.log().contains("now resolved"),
        "the recovery is not reported:\n{}",
        daemon.log()
    );
}

#[test]
fn a_changed_script_and_a_dropped_in_script_take_effect() {
    let chain = "[hooks]\nOnFinish = [\"tag\", \"a\"]\n\
                 [handlers.tag]\nlibrary = \"LuaHandler\"\nlua_script = \"tag.lua\"\n"
        .to_owned()
        + &file_handler("a");
    let daemon = Daemon::start_with(
        &chain,
        &[(
            "scripts/tag.lua",
            "function handle(e) e.Version = 1 return e end",
        )],
    );
    daemon.send(&[r#"{"Id":"v1"}"#]);
    assert!(wait_for_lines(&daemon.path("out/a.log"), 1)[0].contains("\"Version\":1"));

    std::fs::write(
        daemon.path("scripts/tag.lua"),
        "function handle(e) e.Version = 2 return e end",
    )
    .unwrap();
    let a_log = daemon.path("out/a.log");
    send_until(&daemon, "v2", || {
        lines(&a_log)
            .iter()
            .any(|line| line.contains("\"Version\":2"))
    });

    std::fs::write(
        daemon.path("scripts/seen.lua"),
        "return { on = { 'OnFinish' }, handle = function(e) log.info('drop-in saw ' .. e.Id) end }",
    )
    .unwrap();
    send_until(&daemon, "dropped", || {
        daemon.log().contains("drop-in saw dropped-")
    });
}

#[test]
fn sighup_reloads_and_a_changed_restart_only_key_is_reported() {
    let mut daemon = Daemon::start(&config(&["a"], ""));
    daemon.signal("HUP");
    eventually("the SIGHUP reload", || {
        let log = daemon.log();
        log.contains("SIGHUP received") && log.contains("config reloaded")
    });
    std::fs::write(
        &daemon.config,
        with_socket(&config(&["a"], "")).replace(
            "[hooks]",
            "workers = 7\nfsync = \"never\"\n[hooks]\nqueue_filling_threshold = 0.5",
        ),
    )
    .unwrap();
    eventually("the restart-only keys are reported", || {
        let log = daemon.log();
        log.contains("[daemon] workers changed")
            && log.contains("[daemon] fsync changed")
            && log.contains("[hooks] queue_filling_threshold changed")
    });
    let sent = send_until(&daemon, "after", || true);
    exactly_once(&daemon, "out/a.log", &sent);
    assert!(daemon.stop().success());
}

/// `cargo test --test reload -- --ignored soak`: 200 rewrites while 4
/// clients send; nothing lost, nothing doubled, memory flat.
#[test]
#[ignore]
fn soak_two_hundred_rewrites_under_load() {
    let daemon = Daemon::start(&config(&["a"], ""));
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
        status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap()
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let socket = daemon.socket.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut sent = Vec::new();
                let mut connection = Client::connect(&socket);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let id = format!("c{client}-{}", sent.len());
                    connection.write_lines(&[&format!(r#"{{"Id":"{id}"}}"#)]);
                    assert!(reply_ok(&connection.read_reply()));
                    sent.push(id);
                }
                sent
            })
        })
        .collect();
    let warm = rss();
    for round in 0..200 {
        let chain: &[&str] = if round % 2 == 0 { &["a", "b"] } else { &["a"] };
        if round % 3 == 0 {
            write_by_rename(&daemon, &config(chain, ""));
        } else {
            write_in_place(&daemon, &config(chain, ""));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    exactly_once(&daemon, "out/a.log", &sent);
    let b = ids_in(&daemon.path("out/b.log"));
    assert!(
        b.values().all(|&count| count == 1),
        "b handled an event twice"
    );
    let after = rss();
    eprintln!(
        "{} events, RSS {warm} KiB → {after} KiB, {} reloads",
        sent.len(),
        daemon.log().matches("config reloaded").count()
    );
    assert!(
        after < warm * 2 + 20_000,
        "memory grew: {warm} KiB → {after} KiB"
    );
}

#[test]
fn a_configmap_style_symlink_swap_is_picked_up() {
    // Kubernetes mounts handlers.toml -> ..data/handlers.toml, ..data -> a
    // timestamped folder, and updates by swapping the ..data link.
    let daemon = Daemon::start(&config(&["a"], ""));
    let version = |name: &str, text: &str| {
        let folder = daemon.path(name);
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("handlers.toml"), with_socket(text)).unwrap();
    };
    let swap_to = |name: &str| {
        let link = daemon.path("..data_tmp");
        std::os::unix::fs::symlink(name, &link).unwrap();
        std::fs::rename(&link, daemon.path("..data")).unwrap();
    };
    version("..v1", &config(&["a"], ""));
    swap_to("..v1");
    std::fs::remove_file(&daemon.config).unwrap();
    std::os::unix::fs::symlink("..data/handlers.toml", &daemon.config).unwrap();

    version("..v2", &config(&["a", "b"], ""));
    swap_to("..v2");
    let b_log = daemon.path("out/b.log");
    let sent = send_until(&daemon, "swapped", || !lines(&b_log).is_empty());
    exactly_once(&daemon, "out/a.log", &sent);
}
