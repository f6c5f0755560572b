# shellcheck shell=bash
# Helpers shared by the scripts in Scripts/. Source it; it defines functions and REPO_ROOT, and runs nothing else.

# The repository root: the folder above Scripts/, wherever the caller stands.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export REPO_ROOT

log() { printf '[%s] %s\n' "${MSGFLO_SCRIPT_NAME:-scripts}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${MSGFLO_SCRIPT_NAME:-scripts}" "$*" >&2; exit 1; }

# Seconds since the epoch with milliseconds, for timings printed by the scripts.
now_s() { date +%s.%N; }
elapsed_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }'; }

# True when something accepts TCP connections on 127.0.0.1:$1 (bash's /dev/tcp, no extra tools needed).
tcp_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The folder that holds the shared benchmark sources, docs and conformance cases: $MSGFLO_SHARED_DIR, else
# <repo>/../shared, else (in a clone made elsewhere, e.g. in a temporary folder) ../shared beside the repository it
# was cloned from, when that is a local path.
shared_dir() {
  local d="${MSGFLO_SHARED_DIR:-$REPO_ROOT/../shared}" origin
  if [ -z "${MSGFLO_SHARED_DIR:-}" ] && [ ! -d "$d" ]; then
    origin=$(git -C "$REPO_ROOT" remote get-url origin 2>/dev/null || true)
    if [ -n "$origin" ] && [ -d "$origin/../shared" ]; then d="$origin/../shared"; fi
  fi
  [ -d "$d" ] || die "shared folder not found at $d (set MSGFLO_SHARED_DIR)"
  (cd "$d" && pwd)
}
