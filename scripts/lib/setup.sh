# Shared set-up steps for scripts/serve and scripts/test. Sourced, not run.
# Everything here is idempotent: a second run on a set-up machine does almost nothing.

RF_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$RF_ROOT/.venv"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $*"; fi
}

# ensure_debs CHECK:PACKAGE ... installs each Debian package whose CHECK is missing.
# CHECK is a command name, or an absolute path (glob allowed).
ensure_debs() {
  local missing=() pair cmd pkg
  for pair in "$@"; do
    cmd="${pair%%:*}"; pkg="${pair#*:}"
    if [ "${cmd#/}" != "$cmd" ]; then compgen -G "$cmd" >/dev/null && continue
    else command -v "$cmd" >/dev/null 2>&1 && continue; fi
    missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "please install: ${missing[*]} (no apt-get on this machine)"
  say "installing system packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
  local py
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$py"; return 0
    fi
  done
  die "Ringfence needs Python 3.11 or newer (apt-get install python3 python3-venv)"
}

# ensure_venv [EXTRAS] creates .venv and installs Ringfence into it when pyproject changed.
ensure_venv() {
  local extras="${1:-}" spec="." stamp="$VENV/.ringfence-installed"
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment in .venv"
    "$(pick_python)" -m venv "$VENV" || die "could not create .venv (apt-get install python3-venv)"
  fi
  local want; want="$(cat "$RF_ROOT/pyproject.toml" | sha256sum | cut -c1-16)-$extras"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "installing Ringfence and its dependencies into .venv"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    (cd "$RF_ROOT" && "$VENV/bin/python" -m pip install -q -e "$spec" 2>&1 | grep -v '^WARNING: Location' >&2) || true
    "$VENV/bin/python" -c 'import ringfence' 2>/dev/null || die "pip install failed"
    echo "$want" > "$stamp"
  fi
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_throwaway_postgres: a private PostgreSQL for this run, removed on exit.
# Exports RINGFENCE_TEST_DATABASE_URL.
start_throwaway_postgres() {
  local bindir port
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -x "$bindir/initdb" ] || die "PostgreSQL server binaries not found (apt-get install postgresql)"
  RF_PG_DIR="$(mktemp -d /tmp/ringfence-pg.XXXXXX)"
  port="$(free_port)"
  local run=()
  if [ "$(id -u)" = 0 ]; then
    # PostgreSQL refuses to run as root; use the account the Debian package creates.
    chown postgres: "$RF_PG_DIR"; run=(runuser -u postgres --)
  fi
  say "starting a throwaway PostgreSQL on 127.0.0.1:$port"
  "${run[@]}" "$bindir/initdb" -D "$RF_PG_DIR/data" -U postgres --auth=trust -E UTF8 >"$RF_PG_DIR/initdb.log" 2>&1 \
    || { cat "$RF_PG_DIR/initdb.log" >&2; die "initdb failed"; }
  "${run[@]}" "$bindir/pg_ctl" -D "$RF_PG_DIR/data" -l "$RF_PG_DIR/server.log" -w -t 60 \
    -o "-p $port -k $RF_PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c full_page_writes=off" \
    start >/dev/null || { cat "$RF_PG_DIR/server.log" >&2; die "PostgreSQL did not start"; }
  RF_PG_STOP=("${run[@]}" "$bindir/pg_ctl" -D "$RF_PG_DIR/data" -m immediate stop)
  export RINGFENCE_TEST_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:$port/postgres"
}

stop_throwaway_postgres() {
  if [ -n "${RF_PG_DIR:-}" ]; then
    "${RF_PG_STOP[@]}" >/dev/null 2>&1 || true
    rm -rf "$RF_PG_DIR"
    RF_PG_DIR=""
  fi
}

# start_throwaway_redis: a private Redis for this run (no persistence), removed on exit.
# Exports RINGFENCE_TEST_REDIS_URL.
start_throwaway_redis() {
  command -v redis-server >/dev/null || die "redis-server not found (apt-get install redis-server)"
  RF_REDIS_DIR="$(mktemp -d /tmp/ringfence-redis.XXXXXX)"
  local port; port="$(free_port)"
  say "starting a throwaway Redis on 127.0.0.1:$port"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$RF_REDIS_DIR" --save "" --appendonly no \
    --daemonize yes --pidfile "$RF_REDIS_DIR/redis.pid" --logfile "$RF_REDIS_DIR/redis.log" \
    || die "Redis did not start"
  local _
  for _ in $(seq 100); do
    redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 \
    || { cat "$RF_REDIS_DIR/redis.log" >&2; die "Redis did not answer"; }
  export RINGFENCE_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
}

stop_throwaway_redis() {
  if [ -n "${RF_REDIS_DIR:-}" ]; then
    if [ -f "$RF_REDIS_DIR/redis.pid" ]; then kill "$(cat "$RF_REDIS_DIR/redis.pid")" 2>/dev/null || true; fi
    local _
    for _ in $(seq 50); do
      [ -f "$RF_REDIS_DIR/redis.pid" ] && kill -0 "$(cat "$RF_REDIS_DIR/redis.pid")" 2>/dev/null || break
      sleep 0.1
    done
    rm -rf "$RF_REDIS_DIR"
    RF_REDIS_DIR=""
  fi
}
