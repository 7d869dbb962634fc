//! What the API shows of a handler, and the file a change leaves.

use super::*;

#[test]
fn no_secret_is_ever_shown() {
    let (dir, file) = fixture();
    std::fs::write(dir.path().join("proxy.pass"), "proxy-secret-text\n").unwrap();
    std::fs::write(
        dir.path().join("url.txt"),
        "https://x.example/?token=url-secret-text\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace(
            "# basic_user = \"svc-jobhook\"\n",
            "BasicUser = \"svc-jobhook\"\n\
         BasicPassword = \"basic-secret-text\"\n\
         proxy_host = \"proxy.corp.example\"\n\
         proxy_username = \"svc\"\n\
         proxy_password = { file = \"proxy.pass\" }\n\
         signing_secret = \"whsec-secret-text\"\n\
         ntlm_password = \"ntlm-secret-text\"\n",
        )
        .replace(
            "headers = { \"X-Source\" = \"jobhook\" }",
            "headers = { \"Authorization\" = \"Bearer header-secret-text\" }",
        );
    let text = format!(
        "{text}\n[handlers.hook]\nlibrary = \"HttpHandler\"\nurl = \"https://hook.example/\"\n\
         bearer_token = \"bearer-secret-text\"\n"
    );
    std::fs::write(&file, &text).unwrap();
    let loaded = load(&file);
    let live = live_of(&loaded);
    let shown = serde_json::to_string(&live.list()).unwrap();
    for secret in ["secret-text", "proxy.pass", "url.txt"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let itsm = live.show("itsm").unwrap();
    assert_eq!(
        itsm.settings["basic_user"], "svc-jobhook",
        "aliases shown as snake_case"
    );
    for key in [
        "basic_password",
        "proxy_password",
        "signing_secret",
        "ntlm_password",
    ] {
        assert_eq!(itsm.settings[key], REDACTED, "{key}");
    }
    assert_eq!(
        live.show("hook").unwrap().settings["bearer_token"],
        REDACTED
    );
    assert_eq!(
        itsm.settings["url"],
        "https://itsm.example.com/api/events/{JobId}"
    );

    // A URL read from a file is a secret too.
    let text = text.replace(
        "url = \"https://itsm.example.com/api/events/{JobId}\"",
        "url = { file = \"url.txt\" }",
    );
    std::fs::write(&file, &text).unwrap();
    let loaded = load(&file);
    let live = live_of(&loaded);
    let itsm = live.show("itsm").unwrap();
    assert_eq!(itsm.settings["url"], REDACTED);
    let shown = serde_json::to_string(&live.list()).unwrap();
    assert!(!shown.contains("url.txt") && !shown.contains("secret-text"));
}

#[cfg(unix)]
#[test]
fn the_written_file_keeps_its_mode_and_links() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, real) = fixture();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("link.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let loaded = load(&link);
    let live = live_of(&loaded);
    let candidate = live.set_enabled("itsm", true).unwrap();
    live.commit(&candidate).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read_to_string(&real).unwrap(), candidate);
    let mode = std::fs::metadata(&real).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
