#!/usr/bin/env bash
# Builds the Debian package and checks it:
#   1. `dpkg-deb -c` lists the binary, the unit, the sysusers.d and tmpfiles.d
#      files, the config (a conffile), the scripts and the README;
#   2. as root on a Debian machine without jobhook installed: `dpkg -i`
#      creates the user, installs a config the user can read and `jobhook
#      check` accepts; `dpkg -r` keeps config and spool; `dpkg -P` removes
#      them.
# Installs cargo-deb from crates.io if it is missing (a few minutes).
#
#   packaging/deb/check.sh              # release build, as `cargo deb` does
#   PROFILE=dev packaging/deb/check.sh  # reuse the test build (CI)
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v cargo-deb >/dev/null; then
  cargo install cargo-deb --version 3.8.0 --locked
fi
profile=${PROFILE:-release}
rm -rf target/debian
cargo deb --profile "$profile" --output target/debian/
deb=$(ls target/debian/jobhook_*.deb)

fail() { echo "packaging/deb/check.sh: $*" >&2; exit 1; }

listing=$(dpkg-deb -c "$deb")
for path in \
  ./usr/bin/jobhook \
  ./usr/lib/systemd/system/jobhook.service \
  ./usr/lib/sysusers.d/jobhook.conf \
  ./usr/lib/tmpfiles.d/jobhook.conf \
  ./etc/jobhook/handlers.toml \
  ./etc/jobhook/scripts/_history.lua \
  ./etc/jobhook/scripts/chat_message.lua \
  ./etc/jobhook/scripts/enrich.lua \
  ./etc/jobhook/scripts/route_failures.lua \
  ./usr/share/doc/jobhook/README.md; do
  grep -qE " $path\$" <<<"$listing" || fail "$path is not in the package:
$listing"
done
dpkg-deb --info "$deb" conffiles | grep -qx /etc/jobhook/handlers.toml \
  || fail "/etc/jobhook/handlers.toml is not a conffile"
echo "$deb holds what it should"

if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null; then
  echo "SKIPPED: installing the package needs root and dpkg"
  exit 0
fi
if dpkg-query -W -f='${Status}' jobhook 2>/dev/null | grep -q installed; then
  echo "SKIPPED: a jobhook package is installed here already; not touching it"
  exit 0
fi
trap 'dpkg -P jobhook >/dev/null 2>&1 || true' EXIT

dpkg -i "$deb"
getent passwd jobhook >/dev/null || fail "dpkg -i did not create the user jobhook"
owner=$(stat -c '%U:%G %a' /etc/jobhook/handlers.toml)
[ "$owner" = "root:jobhook 640" ] || fail "/etc/jobhook/handlers.toml is $owner"
# The service's user can read and check the config it will run on.
runuser -u jobhook -- /usr/bin/jobhook check -c /etc/jobhook/handlers.toml \
  || fail "the installed config does not pass jobhook check"

mkdir -p /var/lib/jobhook/spool && touch /var/lib/jobhook/spool/kept
dpkg -r jobhook
[ ! -e /usr/bin/jobhook ] || fail "dpkg -r left /usr/bin/jobhook"
[ -f /etc/jobhook/handlers.toml ] || fail "dpkg -r removed the config"
[ -f /var/lib/jobhook/spool/kept ] || fail "dpkg -r removed the spool"

dpkg -P jobhook
[ ! -e /etc/jobhook/handlers.toml ] || fail "dpkg -P left the config"
[ ! -e /var/lib/jobhook ] || fail "dpkg -P left the spool"
echo "the package installs, keeps config and spool on remove, and purges"
