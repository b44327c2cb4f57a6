#!/bin/bash
# Catch-up of a late-joining node (issue 15): N memories on node a (imported before it
# starts), node b starts fresh on the same mosquitto; prints the time until b merged all N,
# both RSS, and the log size. Needs mosquitto and a release build. N=5000 by default.
set -e
N=${N:-5000}
B=${B:-$(dirname "$0")/../target/release/smollama}
D=$(mktemp -d); trap "rm -rf $D" EXIT
MP=$((20000 + RANDOM % 20000))
printf "listener $MP 127.0.0.1\nallow_anonymous true\n" > $D/mosq.conf
mosquitto -c $D/mosq.conf > $D/mosq.log 2>&1 & MQ=$!
printf '[[source]]\nname = "system"\nkind = "system"\nevery = "10s"\nmetrics = ["uptime"]\n[[sink]]\nname = "store"\nkind = "store"\nfrom = ["system"]\n' > $D/pipe.toml
for n in a b; do
  P=$((40000 + RANDOM % 20000))
  mkdir -p $D/$n
  printf "[node]\nname = \"$n\"\ndata_dir = \"$D/$n/data\"\n[http]\nbind = \"127.0.0.1:$P\"\ntoken = \"tok-0123456789abcdef\"\n[gpio]\nbackend = \"mock\"\n[pipeline]\nfiles = [\"$D/pipe.toml\"]\n[mqtt]\nbroker = \"127.0.0.1\"\nport = $MP\n[ollama]\nport = 1\n" > $D/$n/smollama.toml
  echo $P > $D/$n/port
done
python3 -c "
import json
for i in range($N):
    print(json.dumps({'kind':'memory','fact':f'Fact number {i} about the site, {i*7919 % 10007}','confidence':0.7,'times_confirmed':1,'active':True,'node':'a'}))
" > $D/m.jsonl
$B --config $D/a/smollama.toml memory import $D/m.jsonl 2>&1 | tail -1
$B --config $D/a/smollama.toml run > $D/a/log 2>&1 & PA=$!
sleep 2
t0=$(date +%s.%N)
$B --config $D/b/smollama.toml run > $D/b/log 2>&1 & PB=$!
PBP=$(cat $D/b/port)
while true; do
  m=$(curl -s http://127.0.0.1:$PBP/api/status | python3 -c "import json,sys; print(json.load(sys.stdin)['sync']['merged'])" 2>/dev/null || echo 0)
  [ "$m" -ge "$N" ] && break
  sleep 0.1
done
t1=$(date +%s.%N)
echo "N=$N merged on b in $(python3 -c "print(round($t1-$t0,2))") s (from b's start)"
echo "b RSS: $(grep VmRSS /proc/$PB/status)  HWM: $(grep VmHWM /proc/$PB/status)"
echo "a RSS: $(grep VmRSS /proc/$PA/status)"
curl -s http://127.0.0.1:$PBP/api/status | python3 -c "import json,sys; s=json.load(sys.stdin)['sync']; print({k: s[k] for k in ['log_entries','log_bytes','merged','catchup_sent','lamport_clock']})"
kill $PA $PB $MQ
wait 2>/dev/null || true
