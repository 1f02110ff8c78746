#!/usr/bin/env bash
# Install (Debian's package) and start PostgreSQL on 127.0.0.1:5432, trusting loopback, with a
# database `test`. Idempotent: `make postgres` and `.ci/run` both call it.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! ls /etc/postgresql/*/main/pg_hba.conf >/dev/null 2>&1; then
  echo "postgres: installing Debian's postgresql" >&2
  $SUDO apt-get install -y -qq postgresql >/dev/null 2>&1 || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq postgresql >/dev/null; }
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
hba=/etc/postgresql/$version/main/pg_hba.conf
if ! grep -q "alertbutler: trust loopback" "$hba"; then
  # first match wins in pg_hba.conf: put the loopback trust lines on top
  $SUDO sh -c "{ echo '# alertbutler: trust loopback (development and CI only)';
                 echo 'host all all 127.0.0.1/32 trust';
                 echo 'host all all ::1/128 trust';
                 cat '$hba'; } > '$hba.new' && mv '$hba.new' '$hba'"
  $SUDO chown postgres:postgres "$hba"
  if pg_isready -h 127.0.0.1 -p 5432 -q; then
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
fi
conf=/etc/postgresql/$version/main/conf.d/alertbutler.conf
if ! grep -q "max_connections = 300" "$conf" 2>/dev/null; then
  # one session per prompt worker (189 for LSSTCam) plus the services: the default 100 is
  # too few for bench/registry.py's 189 writers (docs/butler.md)
  $SUDO sh -c "echo '# alertbutler: room for 189 workers and the services' > '$conf';
               echo 'max_connections = 300' >> '$conf'"
  $SUDO chown postgres:postgres "$conf"
  if pg_isready -h 127.0.0.1 -p 5432 -q; then
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
  fi
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
fi
pg_isready -h 127.0.0.1 -p 5432 -q || { echo "postgres: the server did not start" >&2; exit 1; }
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" \
    | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE test"
fi
echo "postgres: PostgreSQL $version on 127.0.0.1:5432 (user postgres, database test)" >&2
