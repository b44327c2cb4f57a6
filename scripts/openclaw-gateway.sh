#!/usr/bin/env bash
# A real OpenClaw gateway for the tests (tests/openclaw.rs), headless on 127.0.0.1.
# Node 24 comes from the `node` npm package (Debian ships none) and `openclaw` from npm;
# both go into a cache directory that is reused when present (~1 min and ~650 MB the
# first time). Nothing leaves loopback: no Bonjour, no channels, no update check.
#
# Usage:
#   scripts/openclaw-gateway.sh install
#       install into the cache (OPENCLAW_CACHE, default /var/cache/smollama-ci/openclaw)
#       and print the cache directory
#   scripts/openclaw-gateway.sh run PORT TOKEN STATE_DIR
#       install if needed, then run the gateway in the foreground on 127.0.0.1:PORT with
#       shared token TOKEN and its state (openclaw.json, pairing) under STATE_DIR; it
#       prints "openclaw-gateway: ready on 127.0.0.1:PORT" once the port accepts;
#       with OPENCLAW_GATEWAY_LAN=1 it binds all interfaces (--bind lan) and may announce
#       its mDNS beacon (OPENCLAW_DISABLE_BONJOUR=0: this is a container, where the
#       gateway would stay silent), for tests/openclaw_discovery.rs in a network namespace
#   scripts/openclaw-gateway.sh cli STATE_DIR ARGS...
#       the openclaw CLI against that state directory (e.g. `nodes pending`)
set -euo pipefail

CACHE="${OPENCLAW_CACHE:-/var/cache/smollama-ci/openclaw}"
NODE_VERSION="${OPENCLAW_NODE_VERSION:-24}"
OPENCLAW_VERSION="${OPENCLAW_VERSION:-2026.9.6}"

node_bin() { echo "$CACHE/node/node_modules/node/bin/node"; }
openclaw_mjs() { echo "$CACHE/gateway/node_modules/openclaw/openclaw.mjs"; }

install() {
  # A marker written last: a half-finished install (killed, disk full) is redone.
  if [ -f "$CACHE/.installed-$OPENCLAW_VERSION" ] && [ -x "$(node_bin)" ] && [ -f "$(openclaw_mjs)" ]; then
    return 0
  fi
  command -v npm >/dev/null 2>&1 || { echo "openclaw-gateway: npm is needed to install Node 24 and openclaw" >&2; exit 1; }
  mkdir -p "$CACHE/node" "$CACHE/gateway"
  # A lock: two test binaries may start the install at once.
  exec 9>"$CACHE/.lock"
  flock 9
  if [ -f "$CACHE/.installed-$OPENCLAW_VERSION" ] && [ -x "$(node_bin)" ] && [ -f "$(openclaw_mjs)" ]; then
    return 0
  fi
  echo "openclaw-gateway: installing node@$NODE_VERSION and openclaw@$OPENCLAW_VERSION into $CACHE" >&2
  (cd "$CACHE/node" && [ -f package.json ] || echo '{"private":true}' >"$CACHE/node/package.json")
  (cd "$CACHE/node" && npm install --no-audit --no-fund --loglevel=error "node@$NODE_VERSION" >&2)
  "$(node_bin)" --version >/dev/null
  [ -f "$CACHE/gateway/package.json" ] || echo '{"private":true}' >"$CACHE/gateway/package.json"
  # openclaw's engines need Node 24: run npm under it (npm's own node is whatever is first on PATH).
  (cd "$CACHE/gateway" && PATH="$(dirname "$(node_bin)"):$PATH" \
    npm install --no-audit --no-fund --loglevel=error "openclaw@$OPENCLAW_VERSION" >&2)
  [ -f "$(openclaw_mjs)" ]
  touch "$CACHE/.installed-$OPENCLAW_VERSION"
  flock -u 9
}

gateway_env() {
  local state="$1"
  export PATH="$(dirname "$(node_bin)"):$PATH"
  export HOME="$state"
  export OPENCLAW_STATE_DIR="$state/.openclaw"
  export OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_NO_AUTO_UPDATE=1 OPENCLAW_OFFLINE=1 OPENCLAW_SKIP_CHANNELS=1
  mkdir -p "$OPENCLAW_STATE_DIR"
}

case "${1:-}" in
  install)
    install
    echo "$CACHE"
    ;;
  run)
    [ $# -eq 4 ] || { echo "usage: $0 run PORT TOKEN STATE_DIR" >&2; exit 2; }
    port="$2" token="$3" state="$4"
    install
    gateway_env "$state"
    # The ready line comes from a watcher so that the gateway itself stays this process's
    # child and dies with it (the tests kill this script's process group).
    (
      for _ in $(seq 1 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
          echo "openclaw-gateway: ready on 127.0.0.1:$port"
          exit 0
        fi
        sleep 0.1
      done
      echo "openclaw-gateway: not listening on 127.0.0.1:$port after 60 s" >&2
    ) &
    bind=loopback
    if [ "${OPENCLAW_GATEWAY_LAN:-}" = 1 ]; then bind=lan; export OPENCLAW_DISABLE_BONJOUR=0; fi
    exec "$(node_bin)" "$(openclaw_mjs)" gateway run --allow-unconfigured --bind "$bind" \
      --port "$port" --auth token --token "$token"
    ;;
  cli)
    [ $# -ge 2 ] || { echo "usage: $0 cli STATE_DIR ARGS..." >&2; exit 2; }
    state="$2"
    shift 2
    install
    gateway_env "$state"
    exec "$(node_bin)" "$(openclaw_mjs)" "$@"
    ;;
  *)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
