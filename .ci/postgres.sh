# Sourced by .ci/run: a throwaway PostgreSQL on loopback for the tests (issue 17).
# Debian's package (installed when missing), a data folder in a temp dir, a free port, no fsync;
# stopped and removed when the calling script exits. Exports TEST_POSTGRES_URL.

pg_bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$pg_bin" ]; then
    as_root=""
    [ "$(id -u)" -eq 0 ] || as_root="sudo"
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq postgresql >/dev/null
    pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi
pg_dir="$(mktemp -d)"
# The server refuses to run as root: then it runs as the package's postgres user.
pg_as() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -ne 0 ] || chown postgres "$pg_dir"
pg_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
pg_as "$pg_bin/initdb" -D "$pg_dir/data" -U postgres -A trust -E UTF8 --no-sync >"$pg_dir/initdb.log"
pg_stop() {
    pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}
trap pg_stop EXIT
pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
    -o "-h 127.0.0.1 -p $pg_port -k $pg_dir -F -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
export TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"
# Tests that need PostgreSQL fail instead of skipping when it is missing.
export REQUIRE_POSTGRES=1
