# shellcheck shell=bash
# `Scripts/brokers cluster …`: a three-node RabbitMQ cluster of our own on loopback, for the scale-out tests and
# benchmarks (issue 15). Sourced by Scripts/brokers (it uses its helpers: log, die, tcp_open, wait_port, pid_alive,
# wait_pid_gone, port_taken_check, RABBIT_BIN, TLS-free).
#
# Ports: MSGFLO_BROKERS_CLUSTER_PORT (default 26840) is node 1's AMQP port; node N listens on BASE + 10*(N-1), its
# Erlang distribution on that +1, rabbitmqctl's on +2..+7; the cluster's own epmd on BASE + 30. Node names
# msgflo-cN-BASE@localhost; data under .brokers/cluster/nN (a fresh cluster on each `cluster start`).
# Kept light for 2-core machines: one Erlang scheduler per node (+S 1:1), few async threads, no plugins.

CL_DIR="$BROKERS_DIR/cluster"
CL_PORTS_FILE="$CL_DIR/ports"
if [ -z "${MSGFLO_BROKERS_CLUSTER_PORT:-}" ] && [ -f "$CL_PORTS_FILE" ]; then
  MSGFLO_BROKERS_CLUSTER_PORT=$(cat "$CL_PORTS_FILE")
fi
CL_BASE="${MSGFLO_BROKERS_CLUSTER_PORT:-26840}"
CL_EPMD_PORT=$((CL_BASE + 30))
CL_NODES=(1 2 3)

cl_port() { echo $((CL_BASE + 10 * ($1 - 1))); }
cl_node() { echo "msgflo-c$1-$CL_BASE@localhost"; }
cl_dir() { echo "$CL_DIR/n$1"; }

cl_env() {   # cl_env N: the environment of node N's commands
  local n=$1 d port
  d=$(cl_dir "$n"); port=$(cl_port "$n")
  CL_ENV=(
    HOME="$CL_DIR/home"
    RABBITMQ_NODENAME="$(cl_node "$n")"
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    RABBITMQ_NODE_PORT="$port"
    RABBITMQ_DIST_PORT=$((port + 1))
    RABBITMQ_CTL_DIST_PORT_MIN=$((port + 2))
    RABBITMQ_CTL_DIST_PORT_MAX=$((port + 7))
    ERL_EPMD_PORT="$CL_EPMD_PORT"
    ERL_EPMD_ADDRESS=127.0.0.1
    RABBITMQ_MNESIA_BASE="$d/mnesia"
    RABBITMQ_LOG_BASE="$d/log"
    RABBITMQ_LOGS="$d/log/rabbit.log"
    RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
    RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
    RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
    RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
    RABBITMQ_PLUGINS_EXPAND_DIR="$d/plugins-expand"
    RABBITMQ_PID_FILE="$d/rabbitmq.pid"
    ERL_INETRC="$CL_DIR/erl_inetrc"
    ERL_CRASH_DUMP="$d/erl_crash.dump"
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +S 1:1 +SDio 1 +A 4"
    RABBITMQ_CTL_ERL_ARGS="+S 1:1"
  )
}

cl_ctl() {   # cl_ctl N ARGS…: rabbitmqctl against node N
  local n=$1; shift
  cl_env "$n"
  env "${CL_ENV[@]}" "$RABBIT_BIN/rabbitmqctl" -q -n "$(cl_node "$n")" "$@"
}

cl_queues() {   # cl_queues N ARGS…: rabbitmq-queues against node N
  local n=$1; shift
  cl_env "$n"
  env "${CL_ENV[@]}" "$RABBIT_BIN/rabbitmq-queues" -q -n "$(cl_node "$n")" "$@"
}

cl_pid() {   # node N's beam process, if alive
  local pid
  pid=$(cat "$(cl_dir "$1")/rabbitmq.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && pid_alive "$pid" && grep -q beam "/proc/$pid/comm" 2>/dev/null || return 1
  echo "$pid"
}

cl_epmd_pid() {
  local pid
  pid=$(cat "$CL_DIR/epmd.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && pid_alive "$pid" && grep -q epmd "/proc/$pid/comm" 2>/dev/null || return 1
  echo "$pid"
}

cl_write_config() {
  local n d port
  mkdir -p "$CL_DIR/home"
  if [ ! -s "$CL_DIR/home/.erlang.cookie" ]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' > "$CL_DIR/home/.erlang.cookie")
  fi
  chmod 400 "$CL_DIR/home/.erlang.cookie"
  printf '{host, {127,0,0,1}, ["localhost"]}.\n{lookup, [file, native]}.\n' > "$CL_DIR/erl_inetrc"
  for n in "${CL_NODES[@]}"; do
    d=$(cl_dir "$n"); port=$(cl_port "$n")
    mkdir -p "$d/mnesia" "$d/log" "$d/plugins-expand"
    echo '[].' > "$d/enabled_plugins"
    echo '[].' > "$d/advanced.config"
    echo '# Written by Scripts/brokers cluster.' > "$d/rabbitmq-env.conf"
    cat > "$d/rabbitmq.conf" <<CONF
# Written by Scripts/brokers cluster: node $n of the private test cluster. Edit the script, not this.
listeners.tcp.1 = 127.0.0.1:$port
loopback_users.guest = true
log.console = false
log.file.level = warning
disk_free_limit.absolute = 50MB
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = $(cl_node 1)
cluster_formation.classic_config.nodes.2 = $(cl_node 2)
cluster_formation.classic_config.nodes.3 = $(cl_node 3)
cluster_partition_handling = pause_minority
CONF
  done
}

cl_start_epmd() {
  cl_epmd_pid >/dev/null && return 0
  port_taken_check "$CL_EPMD_PORT" "the cluster's epmd"
  setsid epmd -port "$CL_EPMD_PORT" -address 127.0.0.1 </dev/null >"$CL_DIR/epmd.out" 2>&1 9>&- &
  echo $! > "$CL_DIR/epmd.pid"
  disown $! 2>/dev/null || true
  wait_port "$CL_EPMD_PORT" 10 "$!" || die "the cluster's epmd does not listen on 127.0.0.1:$CL_EPMD_PORT"
}

cl_launch() {   # cl_launch N: start node N's server in the background (returns at once)
  local n=$1 d port
  d=$(cl_dir "$n"); port=$(cl_port "$n")
  cl_pid "$n" >/dev/null && return 0
  port_taken_check "$port" "cluster node $n AMQP"
  port_taken_check $((port + 1)) "cluster node $n distribution"
  rm -f "$d/rabbitmq.pid"
  cl_env "$n"
  (cd "$d" && exec setsid env "${CL_ENV[@]}" "$RABBIT_BIN/rabbitmq-server" </dev/null >"$d/server.out" 2>&1 9>&-) &
  disown $! 2>/dev/null || true
}

cl_wait_node() {   # cl_wait_node N: until node N accepts AMQP connections
  local n=$1 port
  port=$(cl_port "$n")
  if ! wait_port "$port" "$TIMEOUT"; then
    tail_log "$(cl_dir "$n")/server.out"; tail_log "$(cl_dir "$n")/log/rabbit.log"
    die "cluster node $n ($(cl_node "$n")) does not accept connections on 127.0.0.1:$port within $TIMEOUT s"
  fi
}

cl_url() {   # the cluster's URL with every node's address
  local n hosts=()
  for n in "${CL_NODES[@]}"; do hosts+=("127.0.0.1:$(cl_port "$n")"); done
  local IFS=,
  echo "amqp://guest:guest@${hosts[*]}/"
}

cl_write_env() {
  {
    echo "MSGFLO_TEST_CLUSTER_AMQP_URL=$(cl_url)"
    local n
    for n in "${CL_NODES[@]}"; do echo "MSGFLO_TEST_CLUSTER_NODE${n}_URL=amqp://guest:guest@127.0.0.1:$(cl_port "$n")/"; done
    echo "MSGFLO_TEST_BROKERS=$REPO_ROOT/Scripts/brokers"
  } > "$CL_DIR/env"
}

cl_running_count() {   # how many nodes the cluster lists as running (asked of node N)
  { cl_ctl "$1" eval 'length(rabbit_mnesia:cluster_nodes(running)).' 2>/dev/null || true; } | tr -dc '0-9'
}

cmd_cluster_start() {
  ensure_installed
  lock
  local t0 n all_down=1
  t0=$(now_s)
  for n in "${CL_NODES[@]}"; do cl_pid "$n" >/dev/null && all_down=0; done
  if [ "$all_down" = 1 ]; then
    rm -rf "$CL_DIR/n1" "$CL_DIR/n2" "$CL_DIR/n3"   # a fresh cluster: no leftover membership or queues
  fi
  mkdir -p "$CL_DIR"
  echo "$CL_BASE" > "$CL_PORTS_FILE"
  cl_write_config
  cl_start_epmd
  # Node 1 first (the others join it), then 2 and 3 together.
  cl_launch 1
  cl_wait_node 1
  cl_launch 2
  cl_launch 3
  cl_wait_node 2
  cl_wait_node 3
  local deadline=$(($(date +%s) + TIMEOUT)) count=0
  while :; do
    count=$(cl_running_count 1)
    [ "${count:-0}" = 3 ] && break
    [ "$(date +%s)" -lt "$deadline" ] || die "the cluster has ${count:-?} of 3 nodes running after $TIMEOUT s"
    sleep 1
  done
  # The discovery queue `fbp` is a classic queue (msgflo's participants declare it so): mirrored on every node, it
  # outlives the death of the node it was declared on (docs/scale-out.md).
  cl_ctl 1 set_policy --apply-to queues msgflo-fbp '^fbp$' '{"ha-mode":"all","ha-sync-mode":"automatic"}' >/dev/null ||
    die "cannot set the policy that mirrors 'fbp'"
  cl_write_env
  log "cluster of 3 nodes ready ($(elapsed_since "$t0") s): $(cl_url | sed 's#//[^@]*@#//***@#')"
  echo "env    $CL_DIR/env"
}

cmd_cluster_stop() {
  lock
  local n pid
  for n in "${CL_NODES[@]}"; do
    if pid=$(cl_pid "$n"); then
      # kill -9 is what the tests do anyway, and a stop of a cluster member waits for the others.
      kill -KILL "$pid" 2>/dev/null || true
      wait_pid_gone "$pid" 10 || die "cluster node $n ($pid) does not go away"
    fi
  done
  if pid=$(cl_epmd_pid); then
    kill "$pid" 2>/dev/null || true
    wait_pid_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
  fi
  # What the beams started (erl_child_setup, inet_gethost) goes with them; anything left under our folder is ours.
  local left
  left=$(ps -eo pid=,args= | awk -v dir="$CL_DIR/" 'index($0, dir) && $2 != "awk" { print $1 }')
  for pid in $left; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$CL_DIR/epmd.pid" "$CL_DIR/env" "$CL_PORTS_FILE"
  log "cluster stopped"
}

cmd_cluster_status() {
  local n pid ok=0
  for n in "${CL_NODES[@]}"; do
    if pid=$(cl_pid "$n"); then
      if tcp_open "$(cl_port "$n")"; then echo "node $n: running ($(cl_node "$n"), pid $pid), accepting on 127.0.0.1:$(cl_port "$n")"
      else echo "node $n: alive ($(cl_node "$n"), pid $pid), not accepting on $(cl_port "$n")"; ok=1; fi
    else echo "node $n: down ($(cl_node "$n"), port $(cl_port "$n"))"; ok=1; fi
  done
  [ -f "$CL_DIR/env" ] && { echo "env file $CL_DIR/env:"; sed 's/^/  /; s#//[^@]*@#//***@#' "$CL_DIR/env"; }
  return $ok
}

cl_which() {
  case "${1:-}" in
    1|2|3) echo "$1" ;;
    *) die "expected a node number 1, 2 or 3, got '${1:-}'" ;;
  esac
}

cmd_cluster_kill() {   # kill -9 of node N: what a crashed machine looks like to its clients
  local n pid
  n=$(cl_which "${1:-}")
  lock
  pid=$(cl_pid "$n") || die "cluster node $n is not running"
  kill -KILL "$pid"
  wait_pid_gone "$pid" 10 || die "cluster node $n ($pid) does not go away"
  log "cluster node $n ($(cl_node "$n"), pid $pid) killed"
}

cmd_cluster_revive() {   # node N again, with its data: it rejoins the cluster
  local n
  n=$(cl_which "${1:-}")
  ensure_installed
  lock
  cl_pid "$n" >/dev/null && { log "cluster node $n already runs"; return 0; }
  cl_start_epmd
  cl_launch "$n"
  cl_wait_node "$n"
  # A revived node is a member again of the quorum queues it was a member of; the ones declared while it was down
  # get a member on it here.
  cl_queues "$n" grow "$(cl_node "$n")" all >/dev/null 2>&1 || log "cluster node $n: rabbitmq-queues grow failed (left as it is)"
  log "cluster node $n ($(cl_node "$n")) back on 127.0.0.1:$(cl_port "$n")"
}

cmd_cluster() {
  case "${1:-}" in
    start) cmd_cluster_start ;;
    stop) cmd_cluster_stop ;;
    status) cmd_cluster_status ;;
    kill) cmd_cluster_kill "${2:-}" ;;
    revive) cmd_cluster_revive "${2:-}" ;;
    env) [ -f "$CL_DIR/env" ] || die "no $CL_DIR/env: Scripts/brokers cluster start"; cat "$CL_DIR/env" ;;
    *) die "usage: Scripts/brokers cluster start|stop|status|kill N|revive N|env" ;;
  esac
}
