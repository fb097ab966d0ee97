#!/usr/bin/env bash
# .ci/units.sh: checks contrib/wsd.service and contrib/wsd.socket with
# `systemd-analyze verify`, installing Debian's systemd package when the tool is
# missing and apt-get can; the units are verified against this tree's release
# binary (a temporary copy with its path). If systemd cannot be installed, says so:
# tests/contrib_units.rs parses the units in every `cargo test` regardless.
# It must never enable, start or reload a unit on this machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
WSD=${WSD_BIN:-"$ROOT/target/release/wsd"}

if ! command -v systemd-analyze >/dev/null; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    timeout 600 apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends systemd >/dev/null || true
  fi
fi
if ! command -v systemd-analyze >/dev/null; then
  echo "units: systemd-analyze is not installable here; tests/contrib_units.rs checked the units"
  exit 0
fi

DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
sed "s|/usr/local/bin/wsd|$WSD|g" contrib/wsd.service >"$DIR/wsd.service"
cp contrib/wsd.socket "$DIR/wsd.socket"
(cd "$DIR" && systemd-analyze verify ./wsd.socket ./wsd.service)
echo "units: systemd-analyze verify passed for contrib/wsd.service and contrib/wsd.socket"
