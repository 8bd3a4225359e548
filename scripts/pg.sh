#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the test suite, made from the installed server binaries.
#
# Usage:
#   eval "$(scripts/pg.sh start)"   start one; prints `export` lines for the variables below
#   scripts/pg.sh stop DIR          stop the cluster kept in DIR and delete DIR
#   scripts/pg.sh url DIR           print its URL
#   scripts/pg.sh run CMD [ARG...]  start one, run CMD with the variables set, then remove it
#   scripts/pg.sh ensure            find the server binaries, installing them if needed
#
# Variables `start` exports:
#   BATON_TEST_PG_URL       postgres://postgres@127.0.0.1:PORT/postgres (trust auth, no password)
#   BATON_TEST_PG_DIR       the temp dir holding everything (data, socket, log)
#   BATON_TEST_PG_DATA      its data dir, for `pg_ctl -D`
#   BATON_TEST_PG_BIN       the folder of initdb, pg_ctl and postgres
#   BATON_TEST_PG_CTL_USER  the system user pg_ctl must run as (`postgres` when we are root)
#
# The cluster listens on a free port of 127.0.0.1 and on a unix socket inside its temp dir,
# and runs without fsync: it is thrown away, and nothing in it must survive a power cut.
# BATON_PG_FSYNC=on keeps PostgreSQL's durable defaults (for measurements).
# initdb refuses to run as root, so as root the cluster belongs to the `postgres` system user.
# Without server binaries (in PATH or /usr/lib/postgresql/*/bin) it installs the Debian
# package `postgresql` when root, else stops with the command to run. BATON_PG_NO_INSTALL=1
# never installs.
set -euo pipefail

say() { printf 'pg.sh: %s\n' "$*" >&2; }
die() {
  say "$*"
  exit 1
}

is_root() { [ "$(id -u)" = 0 ]; }

# The folder holding initdb, pg_ctl and postgres, or nothing.
find_bindir() {
  local initdb dir
  if initdb=$(command -v initdb 2>/dev/null); then
    dir=$(dirname "$(readlink -f "$initdb")")
    if [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return 0
    fi
  fi
  # Debian keeps the server binaries out of PATH; take the newest major version.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return 0
    fi
  done
}

# Finds the server binaries, installing the Debian package when allowed; prints their folder.
ensure_bindir() {
  local dir
  dir=$(find_bindir)
  if [ -n "$dir" ]; then
    echo "$dir"
    return 0
  fi
  if [ "${BATON_PG_NO_INSTALL:-}" != 1 ] && is_root && command -v apt-get >/dev/null 2>&1; then
    say "no PostgreSQL server binaries found; installing the Debian package postgresql"
    export DEBIAN_FRONTEND=noninteractive
    # A clean machine has no package lists yet; refreshing them first is always safe.
    apt-get update -qq >&2
    apt-get install -y -qq postgresql </dev/null >&2
    dir=$(find_bindir)
    [ -n "$dir" ] || die "installed postgresql but still found no initdb in PATH or /usr/lib/postgresql/*/bin"
    echo "$dir"
    return 0
  fi
  die "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in PATH or /usr/lib/postgresql/*/bin; install them with: sudo apt-get install -y postgresql"
}

# Runs a command as the cluster's owner: the `postgres` user when we are root, else ourselves.
as_owner() {
  if ! is_root; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  else
    su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
  fi
}

owner() {
  if is_root; then echo postgres; else id -un; fi
}

# A temp dir the cluster's owner can write to.
make_dir() {
  local dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/baton-pg.XXXXXX")
  if is_root; then
    chown postgres: "$dir"
    # TMPDIR may sit under a folder only root can enter: fall back to /tmp.
    if ! as_owner test -w "$dir"; then
      rm -rf "$dir"
      dir=$(mktemp -d /tmp/baton-pg.XXXXXX)
      chown postgres: "$dir"
    fi
  fi
  chmod 700 "$dir"
  echo "$dir"
}

# Whether something accepts connections on this port of 127.0.0.1.
port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local bindir dir port url tries=0 sync=off
  bindir=$(ensure_bindir)
  if is_root && ! id postgres >/dev/null 2>&1; then
    die "initdb refuses to run as root and there is no postgres user; create it with: useradd --system --user-group postgres"
  fi
  [ "${BATON_PG_FSYNC:-off}" = on ] && sync=on
  dir=$(make_dir)
  if ! as_owner "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-locale \
    --no-sync >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    rm -rf "$dir"
    die "initdb failed"
  fi
  # Settings live in a file of their own, so that a retry on another port rewrites it, and a
  # `pg_ctl restart` (which a test does) keeps them.
  as_owner sh -c "echo \"include = 'baton.conf'\" >> '$dir/data/postgresql.conf'"
  while :; do
    tries=$((tries + 1))
    port=$((20000 + RANDOM % 40000))
    port_busy "$port" && continue
    as_owner sh -c "cat > '$dir/data/baton.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
# Every test makes databases and connection pools of its own, many at a time.
max_connections = 500
fsync = $sync
synchronous_commit = $sync
full_page_writes = $sync
EOF
    if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
      break
    fi
    # Another process may have taken the port since we looked: try another one.
    if [ "$tries" -lt 5 ] && grep -q "could not bind\|Address already in use" "$dir/server.log" 2>/dev/null; then
      continue
    fi
    cat "$dir/server.log" >&2 2>/dev/null || true
    rm -rf "$dir"
    die "the PostgreSQL server did not start"
  done
  url="postgres://postgres@127.0.0.1:$port/postgres"
  {
    echo "export BATON_TEST_PG_URL=$(printf '%q' "$url")"
    echo "export BATON_TEST_PG_DIR=$(printf '%q' "$dir")"
    echo "export BATON_TEST_PG_DATA=$(printf '%q' "$dir/data")"
    echo "export BATON_TEST_PG_BIN=$(printf '%q' "$bindir")"
    echo "export BATON_TEST_PG_CTL_USER=$(printf '%q' "$(owner)")"
  } >"$dir/env"
  echo "$url" >"$dir/url"
  say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') at $url (data in $dir/data)"
  cat "$dir/env"
}

stop() {
  local dir=${1:?usage: pg.sh stop DIR} bindir
  [ -d "$dir" ] || return 0
  # Refuse folders that are not ours: this deletes what it is given.
  [ -f "$dir/env" ] || [ -f "$dir/initdb.log" ] || die "$dir holds no cluster made by pg.sh"
  bindir=$(find_bindir)
  if [ -n "$bindir" ] && [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

run() {
  [ $# -gt 0 ] || die "usage: pg.sh run CMD [ARG...]"
  local env
  env=$(start)
  eval "$env"
  trap 'stop "$BATON_TEST_PG_DIR"' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  "$@"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  url) cat "${2:?usage: pg.sh url DIR}/url" ;;
  run)
    shift
    run "$@"
    ;;
  ensure) ensure_bindir >/dev/null ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
