#!/usr/bin/env bash
# Fallback when ../shared/recipes is absent: install (Debian) and start PostgreSQL on loopback,
# create the test role and database, print the SQLAlchemy URL on the last line.
set -euo pipefail
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
read -r ver name _ < <(pg_lsclusters --no-header | head -n 1)
pg_ctlcluster "$ver" "$name" start >/dev/null 2>&1 || true
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='ftguard'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE ftguard LOGIN PASSWORD 'ftguard' CREATEDB;\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='ftguard_test'\"" | grep -q 1 ||
  su postgres -c "createdb -O ftguard ftguard_test"
echo "postgresql+psycopg://ftguard:ftguard@127.0.0.1:5432/ftguard_test"
