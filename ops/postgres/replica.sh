#!/bin/sh
# A PostgreSQL streaming read replica (ops/compose/scale-out.yml): on its first start it copies the
# primary with pg_basebackup, which also writes standby.signal and primary_conninfo (-R); every start
# then runs the server as a hot standby that follows the primary's WAL. Read-only: psql analysts (and
# any reader) connect here; every writer stays on the primary.
# Runs as root (the image's way) to read the password secret, then as postgres.
set -eu
PRIMARY_HOST="${PRIMARY_HOST:-postgres}"
PGPASSWORD="$(cat "${POSTGRES_PASSWORD_FILE:-/run/secrets/postgres_password}")"
export PGPASSWORD  # also read by the standby's WAL receiver (libpq) when it reconnects
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    until gosu postgres pg_isready --host="$PRIMARY_HOST" --username=qf --dbname=qf --quiet; do sleep 1; done
    gosu postgres pg_basebackup --host="$PRIMARY_HOST" --username=qf --pgdata="$PGDATA" \
        --wal-method=stream --write-recovery-conf --checkpoint=fast --progress
fi
# hot_standby_feedback: a long analyst query is not cancelled by the primary's vacuum (the primary
# keeps the rows it reads a little longer instead).
exec gosu postgres postgres -c hot_standby=on -c hot_standby_feedback=on
