#!/usr/bin/env bash
# Builds the release binary in several profile and feature configurations and prints a
# Markdown table: size in bytes and, on request, idle RSS and start-up time
# (benches/footprint.py) and graph throughput (cargo bench --bench graph). It is how the
# "Release profile and binary size" figures in docs/benchmarks.md were made.
#
# Each row changes one thing from the profile in Cargo.toml (through CARGO_PROFILE_*
# environment variables, so Cargo.toml is never edited) or builds other features.
# Slow: a release build per row (about a minute each on 2 cores once dependencies are
# cached, more the first time), so it is not part of ./scripts/test.
#
# Usage: scripts/release-sizes.sh [--footprint SECONDS] [--bench] [ROW...]
#   --footprint S   run benches/footprint.py --seconds S on each row's binary
#   --bench         run cargo bench --bench graph for each profile row (not feature rows:
#                   the graph code is the same in every feature set)
#   ROW...          only these rows (names as printed); default: all
# Binaries are kept in $CARGO_TARGET_DIR/release-sizes/ (default target/release-sizes/).
set -euo pipefail
cd "$(dirname "$0")/.."

footprint=""
bench=0
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --footprint) shift; footprint="${1:?--footprint needs seconds}" ;;
    --bench) bench=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    *) only+=("$1") ;;
  esac
  shift
done

target="${CARGO_TARGET_DIR:-target}"
out="$target/release-sizes"
mkdir -p "$out"

# name | profile overrides (space-separated KEY=VALUE for CARGO_PROFILE_RELEASE_KEY) | cargo flags
rows=(
  "chosen||"
  "opt-level=s|OPT_LEVEL=s|"
  "opt-level=3|OPT_LEVEL=3|"
  "opt-level=2|OPT_LEVEL=2|"
  "lto=thin|LTO=thin|"
  "lto=off|LTO=off|"
  "codegen-units=16|CODEGEN_UNITS=16|"
  "panic=unwind|PANIC=unwind|"
  "strip=none|STRIP=none|"
  "cargo-defaults|OPT_LEVEL=3 LTO=false CODEGEN_UNITS=16 PANIC=unwind STRIP=none|"
  "features=rpi,mqtt||--no-default-features --features rpi,mqtt"
  "features=mqtt||--no-default-features --features mqtt"
  "features=rpi||--no-default-features --features rpi"
  "features=none||--no-default-features"
)

wanted() {
  [ ${#only[@]} -eq 0 ] && return 0
  local o
  for o in "${only[@]}"; do [ "$o" = "$1" ] && return 0; done
  return 1
}

# The environment for one row: release and bench profiles alike (bench inherits from
# release, but say it for both so nothing depends on that).
profile_env() {
  local kv
  for kv in $1; do
    printf 'CARGO_PROFILE_RELEASE_%s\n' "$kv"
    printf 'CARGO_PROFILE_BENCH_%s\n' "$kv"
  done
}

echo "| row | cargo flags / profile change | binary bytes | RSS KiB idle (anon, file) | start → healthy ms | graph in memory readings/s | graph durable readings/s |"
echo "|---|---|---|---|---|---|---|"
for row in "${rows[@]}"; do
  IFS='|' read -r name overrides flags <<<"$row"
  wanted "$name" || continue
  mapfile -t envs < <(profile_env "$overrides")
  read -r -a cargo_flags <<<"$flags"
  env "${envs[@]}" cargo build --release --quiet "${cargo_flags[@]}" >&2
  cp "$target/release/smollama" "$out/$name"
  size=$(stat -c %s "$out/$name")

  rss="-" start="-"
  if [ -n "$footprint" ]; then
    fp=$(python3 benches/footprint.py --binary "$out/$name" --seconds "$footprint")
    rss=$(awk '/^rss_kib:/ {print $2, $3, $4, $5, $6}' <<<"$fp")
    start=$(awk '/^start_to_healthy_ms:/ {print $2}' <<<"$fp")
  fi

  mem="-" durable="-"
  if [ "$bench" = 1 ] && [ -z "$flags" ]; then
    b=$(env "${envs[@]}" cargo bench --quiet --bench graph 2>/dev/null)
    mem=$(sed -n 's|^graph_in_memory.*: \([0-9]*\) readings/s.*|\1|p' <<<"$b")
    durable=$(sed -n 's|^graph_durable.*: \([0-9]*\) readings/s.*|\1|p' <<<"$b")
  fi
  echo "| $name | ${flags:-${overrides:-Cargo.toml [profile.release]}} | $size | $rss | $start | $mem | $durable |"
done

# Leave target/release/smollama as Cargo.toml builds it (cached, so quick).
cargo build --release --quiet >&2
