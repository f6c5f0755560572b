# shellcheck shell=bash
# Building blocks for the relay benchmarks (Scripts/bench-relay-*): private brokers, the C reference relays and
# driver from ../shared/bench, and a relay/driver pair per transport. Source it, then for example:
#
#   . Scripts/lib/bench.sh
#   bench_setup                          # brokers up (stopped again at exit if we started them), C programs built
#   run_c_relay mqtt                     # the C floor relay in the background (pid in BENCH_RELAY_PID)
#   run_driver mqtt                      # push BENCH_N_MQTT messages of BENCH_SIZE bytes through it; rate in BENCH_RATE
#   stop_relay
#   start_relay mqtt my-relay-command …  # any other relay: a command that consumes BENCH_IN and sends to BENCH_OUT
#   run_driver mqtt; stop_relay
#   bench_ratio "$swift_rate" "$c_rate"  # prints 0.97
#
# Settings (environment): BENCH_N_MQTT (200000 messages), BENCH_N_AMQP (100000: the C AMQP relay does ~5-10k/s on
# 2 cores and the driver gives up after 60 s), BENCH_N (sets both), BENCH_SIZE (100 bytes), BENCH_SETTLE (seconds a
# relay gets to connect and subscribe before the driver starts, 1). Queue names per transport: bench_in / bench_out.

# shellcheck source=Scripts/lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

BENCH_N_MQTT="${BENCH_N_MQTT:-${BENCH_N:-200000}}"
BENCH_N_AMQP="${BENCH_N_AMQP:-${BENCH_N:-100000}}"
BENCH_SIZE="${BENCH_SIZE:-100}"
BENCH_SETTLE="${BENCH_SETTLE:-1}"
BENCH_BUILD_DIR="${BENCH_BUILD_DIR:-$REPO_ROOT/.build-bench}"
BENCH_RELAY_PID=""
# shellcheck disable=SC2034  # set by run_driver, read by the scripts that source this file
BENCH_RATE=""
BENCH_STARTED_BROKERS=0

# The in and out queue names a relay uses on each transport, the same for every relay so that they agree with the
# driver: MQTT topics bench/in and bench/out; AMQP queue+exchange bench.in and exchange bench.out (the driver binds
# bench.out to its queue bench.out.sink).
bench_in()  { case "$1" in mqtt) echo bench/in ;;  amqp) echo bench.in ;;  *) die "unknown transport $1" ;; esac; }
bench_out() { case "$1" in mqtt) echo bench/out ;; amqp) echo bench.out ;; *) die "unknown transport $1" ;; esac; }

# The private broker of a transport: its URL, host and port (from .brokers/env, written by Scripts/brokers start).
bench_url() {
  case "$1" in
    mqtt) echo "$MSGFLO_TEST_MQTT_URL" ;;
    amqp) echo "$MSGFLO_TEST_AMQP_URL" ;;
    *) die "unknown transport $1" ;;
  esac
}
bench_host() { local u; u=$(bench_url "$1"); u=${u#*://}; u=${u#*@}; u=${u%%/*}; echo "${u%:*}"; }
bench_port() { local u; u=$(bench_url "$1"); u=${u#*://}; u=${u#*@}; u=${u%%/*}; echo "${u##*:}"; }

bench_cleanup() {
  stop_relay
  if [ "$BENCH_STARTED_BROKERS" = 1 ]; then
    "$REPO_ROOT/Scripts/brokers" stop >/dev/null 2>&1 || true
  fi
}

# Brokers up (started here, and stopped at exit, unless they already ran), their URLs exported, C programs built.
bench_setup() {
  if ! "$REPO_ROOT/Scripts/brokers" status >/dev/null 2>&1; then
    "$REPO_ROOT/Scripts/brokers" start >/dev/null
    BENCH_STARTED_BROKERS=1
  fi
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  set -a
  # shellcheck source=/dev/null
  . "$REPO_ROOT/.brokers/env"
  set +a
  bench_build_c
}

# Builds ../shared/bench/{mqtt,amqp}_bench.c into $BENCH_BUILD_DIR (only when the source is newer).
bench_build_c() {
  local src; src=$(shared_dir)/bench
  mkdir -p "$BENCH_BUILD_DIR"
  local name lib
  for name in mqtt amqp; do
    case $name in mqtt) lib=-lmosquitto ;; amqp) lib=-lrabbitmq ;; esac
    if [ ! -x "$BENCH_BUILD_DIR/${name}_bench" ] || [ "$src/${name}_bench.c" -nt "$BENCH_BUILD_DIR/${name}_bench" ]; then
      cc -O2 -o "$BENCH_BUILD_DIR/${name}_bench" "$src/${name}_bench.c" $lib ||
        die "could not build $src/${name}_bench.c"
    fi
  done
}

# start_relay TRANSPORT COMMAND [ARGS…]: runs a relay in the background, gives it BENCH_SETTLE seconds to connect and
# subscribe, and fails if it died meanwhile. Its output goes to $BENCH_BUILD_DIR/relay.log.
start_relay() {
  local transport=$1; shift
  stop_relay
  "$@" </dev/null >"$BENCH_BUILD_DIR/relay.log" 2>&1 &
  BENCH_RELAY_PID=$!
  sleep "$BENCH_SETTLE"
  if ! kill -0 "$BENCH_RELAY_PID" 2>/dev/null; then
    cat "$BENCH_BUILD_DIR/relay.log" >&2
    BENCH_RELAY_PID=""
    die "the $transport relay ($*) exited early"
  fi
}

stop_relay() {
  [ -n "$BENCH_RELAY_PID" ] || return 0
  kill "$BENCH_RELAY_PID" 2>/dev/null || true
  wait "$BENCH_RELAY_PID" 2>/dev/null || true
  BENCH_RELAY_PID=""
}

# run_c_relay TRANSPORT: the C reference relay of ../shared/bench (raw libmosquitto / librabbitmq).
run_c_relay() {
  local t=$1
  start_relay "$t" "$BENCH_BUILD_DIR/${t}_bench" relay "$(bench_host "$t")" "$(bench_port "$t")" "$(bench_in "$t")" "$(bench_out "$t")"
}

# run_py_relay TRANSPORT: the msgflo Python SDK relay (../shared/bench/py_relay.py) from .venv. MQTT only: the SDK's
# AMQP library (haigha) does not run on Python 3.
run_py_relay() {
  local t=$1
  [ "$t" = mqtt ] || die "the msgflo Python relay runs on MQTT only (haigha is Python 2 only)"
  [ -x "$REPO_ROOT/.venv/bin/python" ] || die "no .venv: run Scripts/bootstrap"
  start_relay "$t" env MSGFLO_BROKER="$(bench_url "$t")" "$REPO_ROOT/.venv/bin/python" "$(shared_dir)/bench/py_relay.py" \
    benchrelay "$(bench_in "$t")" "$(bench_out "$t")"
}

# bench_n TRANSPORT: how many messages a run pushes on that transport.
bench_n() { case "$1" in mqtt) echo "$BENCH_N_MQTT" ;; amqp) echo "$BENCH_N_AMQP" ;; *) die "unknown transport $1" ;; esac; }

# relay_cpu_ticks: CPU time (user + system, in clock ticks) the running relay has used so far.
relay_cpu_ticks() {
  if [ -z "$BENCH_RELAY_PID" ] || [ ! -r "/proc/$BENCH_RELAY_PID/stat" ]; then echo 0; return; fi
  # Fields 14 and 15 (utime, stime), counted after the command name, which may hold spaces.
  sed 's/^.*) //' "/proc/$BENCH_RELAY_PID/stat" | awk '{ print $12 + $13 }'
}

# run_driver TRANSPORT [N] [SIZE]: pushes N messages through whatever relay runs; prints the driver's lines and sets
# BENCH_RATE (messages per second) and BENCH_CPU_US (the relay's CPU time per message, in microseconds: steadier
# than the rate on a busy machine). Returns non-zero if not all messages came back within the driver's 60 s.
run_driver() {
  local t=$1 n=${2:-$(bench_n "$1")} size=${3:-$BENCH_SIZE} out rc=0 c0 c1
  c0=$(relay_cpu_ticks)
  out=$("$BENCH_BUILD_DIR/${t}_bench" drive "$(bench_host "$t")" "$(bench_port "$t")" "$(bench_in "$t")" "$(bench_out "$t")" "$n" "$size") || rc=$?
  c1=$(relay_cpu_ticks)
  echo "$out"
  # shellcheck disable=SC2034  # read by the scripts that source this file
  BENCH_RATE=$(echo "$out" | sed -n 's/^msgs_per_s=//p')
  # Per message that came back (when the driver gave up at 60 s, fewer than N did: dividing by N would make a slow
  # run look cheap).
  local got; got=$(echo "$out" | sed -n 's/.*received=\([0-9]*\).*/\1/p' | head -1)
  [ -n "$got" ] && [ "$got" -gt 0 ] || got=$n
  # shellcheck disable=SC2034
  BENCH_CPU_US=$(awk -v a="$c0" -v b="$c1" -v n="$got" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", (b - a) * 1e6 / hz / n }')
  echo "relay_cpu_us_per_msg=$BENCH_CPU_US"
  return $rc
}

# bench_median V…: the median of the numbers given.
bench_median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# bench_ratio A B: A/B with two decimals.
bench_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f\n", a / b; else print "n/a" }'; }
