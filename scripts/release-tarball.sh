#!/usr/bin/env bash
# release-tarball.sh: pack a release tarball that install.sh and setup-pi.sh install from.
#
# Layout (one top-level directory, so it unpacks cleanly; the same paths as the
# repository, so the scripts inside find their files when run from the unpacked copy):
#   smollama-<version>-<arch>/bin/smollama
#   smollama-<version>-<arch>/config/smollama.toml       the default config
#   smollama-<version>-<arch>/systemd/smollama.service   the unit
#   smollama-<version>-<arch>/install.sh, start.sh, setup-pi.sh, README.md, docs/raspberry-pi.md
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/release-tarball.sh [options]

Builds smollama (cargo build --release, or for --target) and packs it with its config,
unit and scripts into smollama-<version>-<arch>.tar.gz. Prints the tarball's path.

Options:
  --bin FILE       pack this binary instead of building one
  --target TRIPLE  build for this Rust target (e.g. aarch64-unknown-linux-gnu; the
                   toolchain and linker must be set up: docs/raspberry-pi.md)
  --arch NAME      architecture in the file name (default: from --target, else uname -m)
  --out DIR        where to write it (default: target/dist)
  -h, --help       this help
USAGE
}

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="" TARGET="" ARCH="" OUT="$ROOT/target/dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) shift; BIN="${1:?--bin needs a file}" ;;
    --target) shift; TARGET="${1:?--target needs a triple}" ;;
    --arch) shift; ARCH="${1:?--arch needs a name}" ;;
    --out) shift; OUT="${1:?--out needs a directory}" ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
[ -n "$VERSION" ] || { echo "no version in $ROOT/Cargo.toml" >&2; exit 1; }
if [ -z "$BIN" ]; then
  if [ -n "$TARGET" ]; then
    cargo build --release --manifest-path "$ROOT/Cargo.toml" --target "$TARGET" >&2
    BIN="$ROOT/target/$TARGET/release/smollama"
  else
    cargo build --release --manifest-path "$ROOT/Cargo.toml" >&2
    BIN="$ROOT/target/release/smollama"
  fi
fi
[ -f "$BIN" ] || { echo "no binary at $BIN" >&2; exit 1; }
if [ -z "$ARCH" ]; then
  if [ -n "$TARGET" ]; then ARCH="${TARGET%%-*}"; else ARCH="$(uname -m)"; fi
fi

NAME="smollama-$VERSION-$ARCH"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
D="$STAGE/$NAME"
mkdir -p "$D/bin" "$D/config" "$D/systemd" "$D/docs"
install -m 0755 "$BIN" "$D/bin/smollama"
install -m 0644 "$ROOT/config/smollama.toml" "$D/config/smollama.toml"
install -m 0644 "$ROOT/systemd/smollama.service" "$D/systemd/smollama.service"
for s in install.sh start.sh setup-pi.sh; do install -m 0755 "$ROOT/$s" "$D/$s"; done
install -m 0644 "$ROOT/README.md" "$D/README.md"
install -m 0644 "$ROOT/docs/raspberry-pi.md" "$D/docs/raspberry-pi.md"

mkdir -p "$OUT"
TARBALL="$(cd "$OUT" && pwd)/$NAME.tar.gz"
# Owned by root, in name order: the builder's user name does not end up in it.
tar --owner=0 --group=0 --numeric-owner --sort=name -C "$STAGE" -cf - "$NAME" | gzip -n > "$TARBALL"
echo "$TARBALL"
