#!/usr/bin/env bash
# setup-pi.sh: take a fresh Raspberry Pi OS to a running smollama service.
#
# Idempotent: a second run changes nothing that is already right. Every destructive step
# asks first unless --yes. --dry-run prints every action without doing it. --root DIR
# lays the files down under DIR instead of / (for tests; implies --force and skips
# anything that needs a live system: users, systemctl, modprobe).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: setup-pi.sh [options] [BINARY_OR_DEB]

Installs smollama as a systemd service: the binary, a system user, the default config
(an edited one is kept), a journald size cap, and the unit; enables in config.txt
the I2C, SPI, 1-wire and DHT interfaces the configured pipeline uses (and only those);
starts the service and waits for it to report ready.

BINARY_OR_DEB   a smollama binary, a release .tar.gz holding one, or a .deb.
                Default: build with cargo when it is present.

Options:
  --dry-run     print every action, change nothing
  --yes         do not ask before replacing or removing anything
  --force       run even when this is not a Raspberry Pi
  --uninstall   stop and remove the service, unit and binary (keeps config and data)
  --root DIR    install under DIR instead of / (no users, no systemctl)
  -h, --help    this help
USAGE
}

DRY=0 YES=0 FORCE=0 UNINSTALL=0 ROOT="" SRC=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --yes) YES=1 ;;
    --force) FORCE=1 ;;
    --uninstall) UNINSTALL=1 ;;
    --root) shift; ROOT="${1:?--root needs a directory}"; FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    *) SRC="$1" ;;
  esac
  shift
done

HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$ROOT/usr/bin/smollama"
CONF_DIR="$ROOT/etc/smollama"
UNIT="$ROOT/etc/systemd/system/smollama.service"
JOURNALD="$ROOT/etc/systemd/journald.conf.d/smollama.conf"
LIVE=1
[ -n "$ROOT" ] && LIVE=0
# Installed from the .deb: the package owns the binary and its unit
# (/usr/lib/systemd/system), so this script neither copies nor deletes them.
PKG=0
if [ "$LIVE" = 1 ] && dpkg-query -W -f='${Status}' smollama 2>/dev/null | grep -q "ok installed"; then
  PKG=1
fi

say() { printf '%s\n' "$*"; }
run() {
  if [ "$DRY" = 1 ]; then say "would run: $*"; else "$@"; fi
}
# Report a step that changed something: "created: X", or under --dry-run "would create: X".
did() {
  local past="$1" verb="$2"; shift 2
  if [ "$DRY" = 1 ]; then say "would $verb: $*"; else say "$past: $*"; fi
}
ask() {
  [ "$YES" = 1 ] && return 0
  [ "$DRY" = 1 ] && return 0
  local reply
  read -r -p "$1 [y/N] " reply || true
  [ "$reply" = y ] || [ "$reply" = Y ]
}
# Put SRC at DEST with MODE unless it is already identical.
install_file() {
  local src="$1" dest="$2" mode="$3"
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    say "unchanged: $dest"
    return
  fi
  run mkdir -p "$(dirname "$dest")"
  run install -m "$mode" "$src" "$dest"
  say "installed: $dest"
}

if [ "$FORCE" = 0 ]; then
  if ! grep -qi "raspberry pi" /proc/device-tree/model 2>/dev/null; then
    echo "this does not look like a Raspberry Pi (use --force to install anyway)" >&2
    exit 1
  fi
fi
if [ "$LIVE" = 1 ] && [ "$DRY" = 0 ] && [ "$(id -u)" != 0 ]; then
  echo "run as root (sudo $0 ...), or try --dry-run first" >&2
  exit 1
fi

if [ "$UNINSTALL" = 1 ]; then
  ask "Stop and remove the smollama service and binary? (config and data are kept)" || exit 1
  if [ "$LIVE" = 1 ]; then
    run systemctl disable --now smollama.service || true
  fi
  if [ "$PKG" = 1 ]; then
    # dpkg -r keeps the conffile (the config); data stays too (only a purge removes it).
    run dpkg -r smollama
  fi
  for f in "$UNIT" "$BIN" "$JOURNALD"; do
    if [ -e "$f" ]; then run rm -f "$f"; did removed remove "$f"; fi
  done
  [ "$LIVE" = 1 ] && run systemctl daemon-reload
  if [ "$DRY" = 1 ]; then
    say "dry run: nothing removed; /etc/smollama and /var/lib/smollama would be kept"
  else
    say "smollama removed; /etc/smollama and /var/lib/smollama are kept"
  fi
  exit 0
fi

# 1. The binary.
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
case "$SRC" in
  "")
    if [ -x "$HERE/target/release/smollama" ]; then
      SRC="$HERE/target/release/smollama"
    elif command -v cargo >/dev/null 2>&1 && [ -f "$HERE/Cargo.toml" ]; then
      say "building smollama with cargo (release)"
      run cargo build --release --manifest-path "$HERE/Cargo.toml"
      SRC="$HERE/target/release/smollama"
    else
      echo "no binary given and no cargo to build one: pass a binary, release tarball or .deb" >&2
      exit 2
    fi
    ;;
  *.deb)
    if [ "$LIVE" = 1 ]; then
      run dpkg -i "$SRC"
      SRC="/usr/bin/smollama"
      PKG=1
    else
      run dpkg-deb -x "$SRC" "$TMP/deb"
      SRC="$TMP/deb/usr/bin/smollama"
    fi
    ;;
  *.tar.gz|*.tgz)
    run tar -xzf "$SRC" -C "$TMP"
    SRC="$(find "$TMP" -name smollama -type f | head -n 1)"
    ;;
esac
if [ "$DRY" = 0 ] && [ ! -f "$SRC" ]; then
  echo "no smollama binary at $SRC" >&2
  exit 2
fi
if [ "$SRC" != "$BIN" ]; then
  if [ "$DRY" = 1 ]; then say "would install $SRC as $BIN"; else install_file "$SRC" "$BIN" 0755; fi
fi

# 2. The system user, in the groups that own GPIO, I2C and SPI.
if [ "$LIVE" = 1 ]; then
  if id smollama >/dev/null 2>&1; then
    say "unchanged: user smollama"
  else
    run useradd --system --home-dir /var/lib/smollama --no-create-home --shell /usr/sbin/nologin smollama
    did created create "user smollama"
  fi
  for g in gpio i2c spi; do
    if getent group "$g" >/dev/null 2>&1; then run usermod -aG "$g" smollama; fi
  done
else
  say "skipped under --root: user smollama (a system user in groups gpio i2c spi on a live system)"
fi

# 3. The config: the default one, never over an edited one.
if [ -f "$CONF_DIR/smollama.toml" ]; then
  say "kept: $CONF_DIR/smollama.toml (already there)"
else
  if [ "$DRY" = 1 ]; then say "would install $HERE/config/smollama.toml as $CONF_DIR/smollama.toml"; else install_file "$HERE/config/smollama.toml" "$CONF_DIR/smollama.toml" 0640; fi
fi
# The service runs as smollama and must read it (0640: it may hold the token and password).
if [ "$LIVE" = 1 ] && [ -f "$CONF_DIR/smollama.toml" ] && [ "$(stat -c %G "$CONF_DIR/smollama.toml")" != smollama ]; then
  run chgrp smollama "$CONF_DIR/smollama.toml"
  did changed change "$CONF_DIR/smollama.toml group smollama (the service reads it)"
fi

# 4. I2C, SPI, 1-wire and DHT: only what the configured pipeline uses, as the binary
#    reports it (`smollama pipeline needs`), written to config.txt the way raspi-config
#    does (dtparam lines, overlays, the i2c-dev module). A change needs a reboot.
BOOT_CONFIG=""
for c in "$ROOT/boot/firmware/config.txt" "$ROOT/boot/config.txt"; do
  if [ -f "$c" ]; then BOOT_CONFIG="$c"; break; fi
done
NEEDS=""
NEEDS_BIN="$BIN"
[ "$DRY" = 1 ] && NEEDS_BIN="$SRC"
if [ -x "$NEEDS_BIN" ] && [ -f "$CONF_DIR/smollama.toml" ]; then
  if ! NEEDS="$("$NEEDS_BIN" --config "$CONF_DIR/smollama.toml" pipeline needs 2>"$TMP/needs.err")"; then
    say "warning: cannot tell what the pipeline needs ($(head -c 300 "$TMP/needs.err")); enabling no bus"
    NEEDS=""
  fi
fi
REBOOT=0
# Add LINE to config.txt unless it is there already.
boot_line() {
  local line="$1"
  if [ -z "$BOOT_CONFIG" ]; then
    say "warning: the pipeline needs '$line' but there is no /boot/firmware/config.txt here; add it yourself"
    return
  fi
  if grep -qxF "$line" "$BOOT_CONFIG"; then
    say "unchanged: $line in $BOOT_CONFIG"
    return
  fi
  if [ "$DRY" = 0 ]; then printf '%s\n' "$line" >> "$BOOT_CONFIG"; fi
  did added add "$line to $BOOT_CONFIG"
  REBOOT=1
}
if [ -z "$NEEDS" ]; then
  say "unchanged: no I2C, SPI, 1-wire or DHT in the pipeline, so none enabled"
fi
for need in $NEEDS; do
  case "$need" in
    i2c)
      boot_line "dtparam=i2c_arm=on"
      MODULES="$ROOT/etc/modules"
      if [ -f "$MODULES" ] && grep -qx "i2c-dev" "$MODULES"; then
        say "unchanged: i2c-dev in $MODULES"
      else
        if [ "$DRY" = 0 ]; then mkdir -p "$(dirname "$MODULES")"; printf 'i2c-dev\n' >> "$MODULES"; fi
        did added add "i2c-dev to $MODULES"
        [ "$LIVE" = 1 ] && run modprobe i2c-dev
      fi
      ;;
    spi) boot_line "dtparam=spi=on" ;;
    dtoverlay=*) boot_line "$need" ;;
    *) say "warning: unknown need '$need' from smollama pipeline needs; skipped" ;;
  esac
done
if [ "$REBOOT" = 1 ]; then
  say "reboot for the new config.txt lines to take effect (sudo reboot)"
fi

# 5. A journald cap for small SD cards.
printf '[Journal]\nSystemMaxUse=64M\nMaxRetentionSec=30day\n' > "$TMP/journald.conf"
if [ "$DRY" = 1 ]; then say "would install the journald cap as $JOURNALD"; else install_file "$TMP/journald.conf" "$JOURNALD" 0644; fi

# 6. The unit; enable and start it, then wait for READY (systemctl start waits for
#    Type=notify services to report ready).
if [ "$PKG" = 1 ]; then
  say "unit: the package's (/usr/lib/systemd/system/smollama.service)"
elif [ "$DRY" = 1 ]; then
  say "would install $HERE/systemd/smollama.service as $UNIT"
else
  install_file "$HERE/systemd/smollama.service" "$UNIT" 0644
fi
if [ "$LIVE" = 1 ]; then
  run systemctl restart systemd-journald
  run systemctl daemon-reload
  run systemctl enable smollama.service
  run systemctl restart smollama.service
  if [ "$DRY" = 0 ]; then
    systemctl is-active --quiet smollama.service && say "smollama is running: $(systemctl show -p StatusText --value smollama.service)"
    addr="$(hostname -I 2>/dev/null | awk '{print $1}')"
    say "health: http://127.0.0.1:8080/api/health (bound to localhost; see [http] bind in /etc/smollama/smollama.toml), node address ${addr:-unknown}"
  fi
fi
if [ "$DRY" = 1 ]; then say "dry run: nothing changed"; else say "done"; fi
