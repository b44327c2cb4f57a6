#!/usr/bin/env bash
# install.sh: install smollama on Debian, Ubuntu or Raspberry Pi OS, from a .deb, a
# release tarball, or the source tree (cargo). The service (user, unit, journald cap) is
# setup-pi.sh's job; this script points at it at the end.
#
# Idempotent: a second run changes nothing that is already right, and an existing config
# is never overwritten. --dry-run prints every step as "would ..." and changes nothing.
# --root DIR lays the files down under DIR instead of / (for tests; no apt there).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: install.sh [options]

Installs the smollama binary and a default config, and optionally the mosquitto broker.
What it installs from, first found:
  1. a .deb: --deb FILE, or smollama_*.deb beside this script (apt-get install ./FILE)
  2. a release tarball: --tarball FILE, or smollama-*.tar.gz beside this script
     (made by scripts/release-tarball.sh), or the unpacked tarball this script is in
  3. the source tree this script is in: scripts/build-release (needs Rust 1.95+; the
     static musl build on x86_64 with its target and musl-tools, else glibc's)

Options:
  --deb FILE          install this .deb
  --tarball FILE      install from this release tarball
  --prefix DIR        the binary goes to DIR/bin (default /usr, where the unit and the
                      .deb expect it; ignored for a .deb)
  --config-dir DIR    where smollama.toml goes (default /etc/smollama); an existing one
                      is kept
  --with-mosquitto    also install the mosquitto MQTT broker (apt)
  --no-mosquitto      do not, and do not ask
  --yes               do not ask anything (mosquitto only with --with-mosquitto)
  --dry-run           print every step as "would ...", change nothing
  --root DIR          install under DIR instead of / (no apt; for tests and images)
  -h, --help          this help

Without --yes and with a terminal, it asks whether to install mosquitto.
USAGE
}

DRY=0 YES=0 ROOT="" PREFIX="/usr" CONF_DIR="/etc/smollama" DEB="" TARBALL="" MOSQ=""
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) shift; DEB="${1:?--deb needs a file}" ;;
    --tarball) shift; TARBALL="${1:?--tarball needs a file}" ;;
    --prefix) shift; PREFIX="${1:?--prefix needs a directory}" ;;
    --config-dir) shift; CONF_DIR="${1:?--config-dir needs a directory}" ;;
    --with-mosquitto) MOSQ=1 ;;
    --no-mosquitto) MOSQ=0 ;;
    --yes) YES=1 ;;
    --dry-run) DRY=1 ;;
    --root) shift; ROOT="${1:?--root needs a directory}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -n "$DEB" ] && [ -n "$TARBALL" ]; then
  echo "--deb and --tarball: choose one" >&2
  exit 2
fi

HERE="$(cd "$(dirname "$0")" && pwd)"
LIVE=1
[ -n "$ROOT" ] && LIVE=0
BIN_DEST="$ROOT$PREFIX/bin/smollama"
CONF_DEST="$ROOT$CONF_DIR/smollama.toml"
CHANGED=0
PKG=0
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

say() { printf '%s\n' "$*"; }
die() { printf '%s\n' "$*" >&2; exit 1; }
run() {
  if [ "$DRY" = 1 ]; then say "would run: $*"; else "$@"; fi
}
# Put SRC at DEST with MODE unless it is already identical.
install_file() {
  local src="$1" dest="$2" mode="$3"
  if [ -f "$dest" ] && [ -f "$src" ] && cmp -s "$src" "$dest"; then
    say "unchanged: $dest"
  elif [ "$DRY" = 1 ]; then
    say "would install: $dest (from ${FROM:-$src})"
  else
    mkdir -p "$(dirname "$dest")"
    install -m "$mode" "$src" "$dest"
    say "installed: $dest"
    CHANGED=$((CHANGED + 1))
  fi
}
debian_like() {
  [ -r /etc/os-release ] && grep -Eqi '^(ID|ID_LIKE)=.*(debian|ubuntu|raspbian)' /etc/os-release
}
need_apt() {
  if ! debian_like || ! command -v apt-get >/dev/null 2>&1; then
    die "$1 needs apt (Debian, Ubuntu or Raspberry Pi OS); this system has none"
  fi
}
# Whether DIR, or its nearest existing parent, is writable by us.
writable() {
  local d="$1"
  while [ ! -e "$d" ]; do d="$(dirname "$d")"; done
  [ -w "$d" ]
}
installed_pkg() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

# apt and dpkg need root; files only need their directories to be writable (a --prefix
# and --config-dir under $HOME work without root).
need_root() {
  if [ "$DRY" = 0 ] && [ "$(id -u)" != 0 ]; then
    die "$1 needs root: sudo $0 ... (try --dry-run first)"
  fi
}
need_writable() {
  if [ "$DRY" = 0 ] && ! writable "$(dirname "$1")"; then
    die "cannot write $1: run as root (sudo $0 ...), or choose a --prefix and --config-dir you can write"
  fi
}

# 1. Where smollama comes from.
if [ -z "$DEB" ] && [ -z "$TARBALL" ]; then
  DEB="$(find "$HERE" -maxdepth 1 -name 'smollama_*.deb' | sort -V | tail -n 1)"
  [ -z "$DEB" ] && TARBALL="$(find "$HERE" -maxdepth 1 -name 'smollama-*.tar.gz' | sort -V | tail -n 1)"
fi
SRC_BIN="" SRC_CONF="" FROM=""
if [ -n "$DEB" ]; then
  [ -f "$DEB" ] || die "no such .deb: $DEB"
  if [ "$LIVE" = 1 ]; then
    need_apt "installing a .deb"
    need_root "installing a .deb"
    want="$(dpkg-deb -f "$DEB" Version)"
    have=""
    installed_pkg smollama && have="$(dpkg-query -W -f='${Version}' smollama)"
    if [ "$have" = "$want" ]; then
      say "unchanged: smollama $have (package)"
    else
      # apt-get wants a path with a slash to take it for a file.
      run apt-get install -y "$(cd "$(dirname "$DEB")" && pwd)/$(basename "$DEB")"
      if [ "$DRY" = 1 ]; then say "would install: smollama $want (package)"; else
        say "installed: smollama $want (package)"; CHANGED=$((CHANGED + 1)); fi
    fi
    [ "$PREFIX" != /usr ] && say "note: --prefix does not apply to the .deb (it installs /usr/bin/smollama)"
    PKG=1
    BIN_DEST="/usr/bin/smollama"
    SRC_CONF="/etc/smollama/smollama.toml"
  else
    # Unpacked, not installed: the package's files are copied one by one below, so an
    # existing config under --root is not overwritten.
    dpkg-deb -x "$DEB" "$TMP/pkg"
    FROM="$DEB"
    SRC_BIN="$TMP/pkg/usr/bin/smollama"
    SRC_CONF="$TMP/pkg/etc/smollama/smollama.toml"
  fi
elif [ -n "$TARBALL" ]; then
  [ -f "$TARBALL" ] || die "no such tarball: $TARBALL"
  # Unpacking into a temp dir changes nothing; it lets a dry run compare files too.
  mkdir -p "$TMP/pkg"
  tar -xzf "$TARBALL" -C "$TMP/pkg"
  FROM="$TARBALL"
  SRC_BIN="$(find "$TMP/pkg" -path '*/bin/smollama' -type f | head -n 1)"
  SRC_CONF="$(find "$TMP/pkg" -path '*/config/smollama.toml' -type f | head -n 1)"
  [ -n "$SRC_BIN" ] || die "$TARBALL has no bin/smollama (make one with scripts/release-tarball.sh)"
elif [ -x "$HERE/bin/smollama" ]; then
  # This script is in an unpacked release tarball.
  SRC_BIN="$HERE/bin/smollama"
  SRC_CONF="$HERE/config/smollama.toml"
elif [ -f "$HERE/Cargo.toml" ] && command -v cargo >/dev/null 2>&1; then
  # The static musl binary on x86_64, else the glibc one (the script says why).
  say "building smollama with scripts/build-release"
  if [ "$DRY" = 1 ]; then
    say "would run: $HERE/scripts/build-release"
    SRC_BIN="$HERE/target/release/smollama"
  else
    SRC_BIN="$("$HERE/scripts/build-release")"
  fi
  SRC_CONF="$HERE/config/smollama.toml"
elif [ -x "$HERE/target/release/smollama" ]; then
  SRC_BIN="$HERE/target/release/smollama"
  SRC_CONF="$HERE/config/smollama.toml"
else
  die "nothing to install from: no .deb or release tarball beside this script (or --deb FILE /
--tarball FILE; scripts/release-tarball.sh makes one), and no cargo to build with.
To build from source, install Rust 1.95 or newer (https://rustup.rs:
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
and a C compiler: sudo apt-get install build-essential), then run this again."
fi

# 2. The binary (a live .deb installed its own).
if [ "$PKG" = 0 ]; then
  if [ "$DRY" = 0 ] && [ ! -f "$SRC_BIN" ]; then die "no smollama binary at $SRC_BIN"; fi
  need_writable "$BIN_DEST"
  [ -f "$CONF_DEST" ] || need_writable "$CONF_DEST"
  install_file "$SRC_BIN" "$BIN_DEST" 0755
fi

# 3. The config: the default one, never over an existing one. 0644: as shipped it holds
#    no secret (see the summary once it does).
if [ -f "$CONF_DEST" ]; then
  say "kept: $CONF_DEST (already there)"
elif [ "$PKG" = 1 ] && [ "$CONF_DIR" = /etc/smollama ]; then
  say "config: the package's ($CONF_DEST)"
elif [ -f "$SRC_CONF" ] || [ "$DRY" = 1 ]; then
  need_writable "$CONF_DEST"
  install_file "$SRC_CONF" "$CONF_DEST" 0644
else
  die "no default config at $SRC_CONF"
fi

# 4. Mosquitto, if wanted.
if [ -z "$MOSQ" ]; then
  if [ "$YES" = 1 ] || [ ! -t 0 ]; then
    MOSQ=0
  elif [ "$DRY" = 1 ]; then
    say "would ask whether to install mosquitto (--with-mosquitto / --no-mosquitto decide)"
    MOSQ=0
  else
    read -r -p "Install the mosquitto MQTT broker too? [y/N] " reply || true
    case "$reply" in y|Y|yes) MOSQ=1 ;; *) MOSQ=0 ;; esac
  fi
fi
if [ "$MOSQ" = 1 ]; then
  if [ "$LIVE" = 0 ]; then
    say "skipped under --root: mosquitto (apt-get install mosquitto on a live system)"
  elif installed_pkg mosquitto; then
    say "unchanged: mosquitto (already installed)"
  else
    need_apt "installing mosquitto"
    need_root "installing mosquitto"
    run apt-get install -y mosquitto
    if [ "$DRY" = 1 ]; then say "would install: mosquitto (package)"; else
      say "installed: mosquitto (package; its service listens on localhost:1883)"; CHANGED=$((CHANGED + 1)); fi
  fi
else
  say "skipped: mosquitto (--with-mosquitto installs it)"
fi

# 5. What now.
say ""
if [ "$DRY" = 1 ]; then
  say "dry run: nothing changed"
elif [ "$CHANGED" = 0 ]; then
  say "nothing changed: smollama is installed as asked"
else
  say "smollama is installed: $BIN_DEST, config $CONF_DEST"
fi
BIN_LIVE="${BIN_DEST#"$ROOT"}"
CONF_LIVE="${CONF_DEST#"$ROOT"}"
say "next steps:"
say "  1. edit $CONF_LIVE: [node] name, [mqtt] broker (\"localhost\" for a broker here),"
say "     [ollama] host; once it holds an [http] token or [mqtt] password: chmod 640 it"
say "  2. check it: $BIN_LIVE --config $CONF_LIVE status"
# The scripts beside this one (the source tree or an unpacked tarball), else by name.
START="$HERE/start.sh" SETUP="$HERE/setup-pi.sh"
[ -f "$START" ] || START="start.sh"
[ -f "$SETUP" ] || SETUP="setup-pi.sh"
say "  3. on a workstation: $START starts a broker and Ollama when missing, then the agent"
if [ "$PKG" = 1 ]; then
  say "  4. the package installed and started the service: systemctl status smollama"
else
  say "  4. as a service (its own user, the hardened unit, a journald cap): sudo $SETUP $BIN_LIVE"
  say "     (on a machine that is not a Pi add --force; or install systemd/smollama.service yourself)"
fi
