//! systemd's notify protocol, spoken to the real binary as systemd speaks
//! it: a datagram socket named in `NOTIFY_SOCKET`, and `WATCHDOG_USEC`.

#![cfg(target_os = "linux")] // systemd's protocol; fsfreeze.

mod util;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use util::disk::{Disk, Kind};
use util::{AUDIT, Daemon, eventually, sample};

/// One second: the daemon pings every half second.
const WATCHDOG_USEC: &str = "1000000";

/// What systemd was told, each datagram with when it came.
struct Systemd {
    socket: PathBuf,
    heard: Arc<Mutex<Vec<(Instant, String)>>>,
    _dir: tempfile::TempDir,
}

impl Systemd {
    fn listen() -> Systemd {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&socket).unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let log = heard.clone();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 4096];
            while let Ok(size) = receiver.recv(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..size]).into_owned();
                log.lock().unwrap().push((Instant::now(), text));
            }
        });
        Systemd {
            socket,
            heard,
            _dir: dir,
        }
    }

    fn start(&self, config: &str, extra_env: &[(&str, &str)]) -> Daemon {
        let socket = self.socket.to_str().unwrap();
        let mut env = vec![("NOTIFY_SOCKET", socket), ("WATCHDOG_USEC", WATCHDOG_USEC)];
        env.extend_from_slice(extra_env);
        Daemon::start_in(&[], &env, config, &[])
    }

    /// The messages other than watchdog pings, in order.
    fn states(&self) -> Vec<String> {
        self.heard
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, text)| text != "WATCHDOG=1\n")
            .map(|(_, text)| text.clone())
            .collect()
    }

    /// When each watchdog ping came.
    fn pings(&self) -> Vec<Instant> {
        self.heard
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, text)| text == "WATCHDOG=1\n")
            .map(|(at, _)| *at)
            .collect()
    }

    /// Waits until `count` states have come, and returns them all.
    fn wait_for_states(&self, count: usize) -> Vec<String> {
        eventually(&format!("{count} notifications"), || {
            self.states().len() >= count
        });
        self.states()
    }
}

#[test]
fn ready_reloading_and_stopping_are_told_and_the_watchdog_is_fed() {
    let systemd = Systemd::listen();
    // `format = "json"` is there for the edit below to change.
    let mut daemon = systemd.start(&format!("{AUDIT}format = \"json\"\n"), &[]);
    let states = systemd.wait_for_states(1);
    assert!(states[0].starts_with("READY=1\n"), "{states:?}");
    assert!(states[0].contains("STATUS=accepting events"), "{states:?}");

    // The pace: every half of WATCHDOG_USEC.
    let first = Instant::now();
    eventually("five watchdog pings", || {
        systemd.pings().iter().filter(|at| **at > first).count() >= 5
    });
    let pings: Vec<Instant> = systemd
        .pings()
        .into_iter()
        .filter(|at| *at > first)
        .collect();
    let gaps: Vec<Duration> = pings.windows(2).map(|pair| pair[1] - pair[0]).collect();
    // Each ping within WATCHDOG_USEC of the last (else systemd would restart
    // the daemon), about half of it apart.
    assert!(
        gaps.iter().all(|gap| *gap < Duration::from_secs(1)),
        "{gaps:?}"
    );
    let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
    assert!(
        mean > Duration::from_millis(400) && mean < Duration::from_millis(750),
        "{gaps:?}"
    );

    // An edit of the config, then SIGHUP: each RELOADING=1 (with the
    // monotonic time) then READY=1.
    let written = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(&daemon.config, written.replace("json", "text")).unwrap();
    let states = systemd.wait_for_states(3);
    assert!(states[1].starts_with("RELOADING=1\n"), "{states:?}");
    assert!(states[1].contains("MONOTONIC_USEC="), "{states:?}");
    assert!(states[2].starts_with("READY=1\n"), "{states:?}");
    assert!(states[2].contains("config reloaded"), "{states:?}");
    daemon.signal("HUP");
    let states = systemd.wait_for_states(5);
    assert!(states[3].starts_with("RELOADING=1\n"), "{states:?}");
    assert!(states[4].starts_with("READY=1\n"), "{states:?}");

    // A broken edit: still READY=1 (the previous config serves), and the
    // status says why.
    std::fs::write(&daemon.config, written.replace("[hooks]", "[hooks")).unwrap();
    let states = systemd.wait_for_states(7);
    assert!(states[5].starts_with("RELOADING=1\n"), "{states:?}");
    assert!(states[6].starts_with("READY=1\n"), "{states:?}");
    assert!(states[6].contains("the last reload failed"), "{states:?}");

    assert!(daemon.stop().success(), "{}", daemon.log());
    let states = systemd.states();
    assert_eq!(states.len(), 8, "{states:?}");
    assert!(states[7].starts_with("STOPPING=1\n"), "{states:?}");
}

/// `fsfreeze`: writes to the file system block until it is thawed. Thaws
/// on drop (before anything that waits for the daemon to exit: a process
/// blocked in a frozen file system cannot even be killed).
struct Frozen(PathBuf);

impl Frozen {
    fn freeze(path: &Path) -> Frozen {
        let status = Command::new("fsfreeze")
            .arg("--freeze")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "fsfreeze --freeze {}", path.display());
        Frozen(path.to_owned())
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = Command::new("fsfreeze")
            .arg("--unfreeze")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn the_watchdog_goes_quiet_while_the_spool_is_stuck_on_its_disk() {
    let Some(disk) = Disk::mount(Kind::Ext4, "32m") else {
        return;
    };
    let spool = disk.path().join("spool");
    let config = format!(
        "[daemon]\nspool_dir = {:?}\n{AUDIT}",
        spool.to_str().unwrap()
    );
    let systemd = Systemd::listen();
    let mut daemon = systemd.start(&config, &[]);
    systemd.wait_for_states(1);
    let since = Instant::now();
    eventually("pings", || systemd.pings().iter().any(|at| *at > since));

    // The spool thread blocks in its next commit, as on a hung disk.
    let frozen = Frozen::freeze(disk.path());
    let mut client = daemon.connect();
    client.write_lines(&[&sample("inventory.json")]);
    // The spool's limit is 3 s of silence: a ping may come up to then.
    std::thread::sleep(Duration::from_millis(4200));
    let quiet_from = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let during: Vec<Instant> = systemd
        .pings()
        .into_iter()
        .filter(|at| *at > quiet_from)
        .collect();
    assert!(
        during.is_empty(),
        "{} pings while the spool was stuck",
        during.len()
    );
    let status = systemd.states().last().cloned().unwrap_or_default();
    assert!(status.contains("spool thread has been stuck"), "{status:?}");

    // Thawed: the event is acked and the pings resume.
    drop(frozen);
    let reply = client.read_reply();
    assert!(util::reply_ok(&reply), "{reply:?}");
    let thawed = Instant::now();
    eventually("pings after the thaw", || {
        systemd.pings().iter().any(|at| *at > thawed)
    });
    assert!(daemon.stop().success(), "{}", daemon.log());
}
