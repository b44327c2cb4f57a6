#!/usr/bin/env bash
# start.sh: run smollama on a workstation with what it talks to. Starts a local MQTT
# broker (mosquitto, as this user, with a temp config; not the system service) and Ollama
# (`ollama serve`, if installed) when they are not already running, waits for them, runs
# `smollama status`, then the agent in the foreground. On exit (the agent stopping,
# Ctrl-C, SIGTERM) it stops the agent and only what it started itself.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: start.sh [options] [--] [ARGS...]

Starts what smollama needs on this machine, then `smollama run ARGS...` in the
foreground. ARGS (anything that is not an option below, or all after --) go to smollama,
e.g. --config FILE or --log-level debug.

MQTT: without a [mqtt] broker in the config (the default), or with a local one, a broker
is made sure of on 127.0.0.1 and the agent is pointed at it (SMOLLAMA_MQTT_BROKER and
SMOLLAMA_MQTT_PORT). A remote broker is left to itself.
Ollama: the configured one ([ollama] host/port, default localhost:11434) is started with
`ollama serve` when it is local, not answering, and the ollama binary is installed.

Options:
  --bin FILE        the smollama binary (default: smollama on PATH, else
                    target/release, target/debug or bin/ beside this script)
  --mqtt-port PORT  the local broker's port (default: [mqtt] port, else 1883)
  --no-mqtt         no broker: run without MQTT (unless the config names one)
  --no-ollama       do not start Ollama
  --wait SECONDS    how long to wait for each to listen (default: 10 broker, 30 Ollama)
  --dry-run         print what it would start and run, start nothing
  -h, --help        this help

Exits with the agent's exit status.
USAGE
}

DRY=0 BIN="" MQTT_PORT="" NO_MQTT=0 NO_OLLAMA=0 WAIT=""
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) shift; BIN="${1:?--bin needs a file}" ;;
    --mqtt-port) shift; MQTT_PORT="${1:?--mqtt-port needs a port}" ;;
    --no-mqtt) NO_MQTT=1 ;;
    --no-ollama) NO_OLLAMA=1 ;;
    --wait) shift; WAIT="${1:?--wait needs seconds}" ;;
    --dry-run) DRY=1 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; ARGS+=("$@"); break ;;
    *) ARGS+=("$1") ;;
  esac
  shift
done
# `start.sh run --log-level debug` means the same as without `run`.
if [ "${#ARGS[@]}" -gt 0 ] && [ "${ARGS[0]}" = run ]; then ARGS=("${ARGS[@]:1}"); fi
case "$MQTT_PORT$WAIT" in *[!0-9]*) echo "--mqtt-port and --wait take numbers" >&2; exit 2 ;; esac

HERE="$(cd "$(dirname "$0")" && pwd)"
say() { printf '%s\n' "$*"; }
die() { printf '%s\n' "$*" >&2; exit 1; }

# The binary.
if [ -z "$BIN" ]; then
  for b in "$(command -v smollama || true)" "$HERE/target/release/smollama" \
    "$HERE/target/debug/smollama" "$HERE/bin/smollama"; do
    if [ -n "$b" ] && [ -x "$b" ]; then BIN="$b"; break; fi
  done
  [ -n "$BIN" ] || die "no smollama binary: not on PATH, none in $HERE/target/{release,debug} (cargo build --release), or pass --bin FILE"
fi
[ -x "$BIN" ] || die "not an executable: $BIN"

# The config smollama will read (the same lookup it does), for the MQTT and Ollama
# settings; the environment overrides it, as in smollama.
CONFIG=""
GLOBAL=()
for ((i = 0; i < ${#ARGS[@]}; i++)); do
  case "${ARGS[i]}" in
    --config|--log-level) GLOBAL+=("${ARGS[i]}" "${ARGS[i + 1]:-}")
      [ "${ARGS[i]}" = --config ] && CONFIG="${ARGS[i + 1]:-}"; i=$((i + 1)) ;;
    --config=*) GLOBAL+=("${ARGS[i]}"); CONFIG="${ARGS[i]#--config=}" ;;
    --log-level=*) GLOBAL+=("${ARGS[i]}") ;;
  esac
done
[ -z "$CONFIG" ] && CONFIG="${SMOLLAMA_CONFIG:-}"
[ -z "$CONFIG" ] && [ -r /etc/smollama/smollama.toml ] && CONFIG=/etc/smollama/smollama.toml
# `key = value` of [section] in the config (simple TOML: one key per line), unquoted.
setting() {
  [ -n "$CONFIG" ] && [ -r "$CONFIG" ] || return 0
  awk -v sec="[$1]" -v key="$2" '
    { sub(/[ \t]+#.*$/, ""); sub(/^[ \t]+/, "") }
    /^\[/ { cur = $0; sub(/[ \t]*$/, "", cur); next }
    cur == sec && $0 ~ "^" key "[ \t]*=" {
      v = $0; sub(/^[^=]*=[ \t]*/, "", v); gsub(/^"|"[ \t]*$/, "", v); print v; exit
    }' "$CONFIG"
}
is_local() { case "$1" in ""|localhost|127.0.0.1|::1|"[::1]") return 0 ;; *) return 1 ;; esac; }
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/smollama-start.XXXXXX")"
STARTED=()      # "name pid" of what this script started, in start order
AGENT_PID=""
# Run by the EXIT trap (shellcheck cannot see that).
# shellcheck disable=SC2317
cleanup() {
  local code=$?
  trap - EXIT INT TERM
  if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
    kill -TERM "$AGENT_PID" 2>/dev/null || true
    stop_wait "$AGENT_PID" 20
  fi
  local i name pid
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    read -r name pid <<<"${STARTED[i]}"
    kill -TERM "$pid" 2>/dev/null || true
    stop_wait "$pid" 10
    say "stopped: $name (pid $pid, started by this script)"
  done
  rm -rf "$TMP"
  exit "$code"
}
# Wait up to SECONDS for PID to exit, then kill it.
# shellcheck disable=SC2317
stop_wait() {
  local n=$(($2 * 10))
  while kill -0 "$1" 2>/dev/null && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
  if kill -0 "$1" 2>/dev/null; then kill -KILL "$1" 2>/dev/null || true; fi
  wait "$1" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Wait until HOST:PORT listens; fail clearly if PID dies or time runs out.
wait_for() {
  local name="$1" host="$2" port="$3" secs="$4" pid="$5" log="$6"
  local n=$((secs * 10))
  until listening "$host" "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      die "$name exited before listening on $host:$port; its log ($log):
$(tail -n 20 "$log" 2>/dev/null)"
    fi
    n=$((n - 1))
    [ "$n" -gt 0 ] || die "$name did not listen on $host:$port within ${secs}s; its log ($log):
$(tail -n 20 "$log" 2>/dev/null)"
    sleep 0.1
  done
  say "ready: $name on $host:$port"
}

# 1. The MQTT broker.
BROKER="${SMOLLAMA_MQTT_BROKER:-$(setting mqtt broker)}"
PORT="${MQTT_PORT:-${SMOLLAMA_MQTT_PORT:-$(setting mqtt port)}}"
PORT="${PORT:-1883}"
if [ "$NO_MQTT" = 1 ]; then
  say "mqtt: not started (--no-mqtt)"
elif ! is_local "$BROKER"; then
  say "mqtt: the configured broker $BROKER:$PORT is not on this machine; not started"
else
  # The agent uses the broker made sure of here, whatever the config says.
  export SMOLLAMA_MQTT_BROKER=127.0.0.1 SMOLLAMA_MQTT_PORT="$PORT"
  if listening 127.0.0.1 "$PORT"; then
    say "mqtt: a broker already listens on 127.0.0.1:$PORT (left alone)"
  else
    MOSQUITTO="$(command -v mosquitto || true)"
    for m in /usr/sbin/mosquitto /usr/local/sbin/mosquitto; do
      [ -z "$MOSQUITTO" ] && [ -x "$m" ] && MOSQUITTO="$m"
    done
    if [ -z "$MOSQUITTO" ]; then
      msg="mosquitto is not installed: sudo apt-get install mosquitto (or ./install.sh --with-mosquitto), or pass --no-mqtt"
      if [ "$DRY" = 1 ]; then say "would fail: $msg"; else die "$msg"; fi
    elif [ "$DRY" = 1 ]; then
      say "would start: $MOSQUITTO on 127.0.0.1:$PORT (as $(id -un), a temp config)"
    else
      printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n' \
        "$PORT" >"$TMP/mosquitto.conf"
      "$MOSQUITTO" -c "$TMP/mosquitto.conf" </dev/null >"$TMP/mosquitto.log" 2>&1 &
      STARTED+=("mosquitto $!")
      say "started: mosquitto on 127.0.0.1:$PORT (pid $!)"
      wait_for mosquitto 127.0.0.1 "$PORT" "${WAIT:-10}" "$!" "$TMP/mosquitto.log"
    fi
  fi
fi

# 2. Ollama.
OHOST="${SMOLLAMA_OLLAMA_HOST:-$(setting ollama host)}"
OHOST="${OHOST:-localhost}"
OPORT="${SMOLLAMA_OLLAMA_PORT:-$(setting ollama port)}"
OPORT="${OPORT:-11434}"
if [ "$NO_OLLAMA" = 1 ]; then
  say "ollama: not started (--no-ollama)"
elif ! is_local "$OHOST"; then
  say "ollama: the configured server $OHOST:$OPORT is not on this machine; not started"
elif listening 127.0.0.1 "$OPORT"; then
  say "ollama: already listening on 127.0.0.1:$OPORT (left alone)"
elif ! command -v ollama >/dev/null 2>&1; then
  say "ollama: not installed (https://ollama.com/download); the agent runs, and questions wait for it"
elif [ "$DRY" = 1 ]; then
  say "would start: ollama serve on 127.0.0.1:$OPORT"
else
  OLLAMA_HOST="127.0.0.1:$OPORT" ollama serve </dev/null >"$TMP/ollama.log" 2>&1 &
  STARTED+=("ollama $!")
  say "started: ollama serve on 127.0.0.1:$OPORT (pid $!)"
  wait_for ollama 127.0.0.1 "$OPORT" "${WAIT:-30}" "$!" "$TMP/ollama.log"
fi

# 3. What smollama sees, then the agent in the foreground.
if [ "$DRY" = 1 ]; then
  say "would run: $BIN ${GLOBAL[*]} status"
  say "would run: $BIN run ${ARGS[*]}"
  exit 0
fi
"$BIN" "${GLOBAL[@]}" status || say "(smollama status failed; starting the agent anyway)"
"$BIN" run "${ARGS[@]}" &
AGENT_PID=$!
# A signal to this script goes to the agent, which drains and exits; then cleanup runs.
STOPPING=""
trap 'STOPPING=TERM; kill -TERM "$AGENT_PID" 2>/dev/null || true' TERM
trap 'STOPPING=INT; kill -TERM "$AGENT_PID" 2>/dev/null || true' INT
code=0
while kill -0 "$AGENT_PID" 2>/dev/null; do
  # Returns above 128 when a signal interrupted it; then the agent is still draining.
  wait "$AGENT_PID" && code=0 || code=$?
done
AGENT_PID=""
[ -n "$STOPPING" ] && say "agent stopped ($STOPPING)"
exit "$code"
