#!/bin/sh
# Container entrypoint: bring the database schema up to date, then hand over to the daemon (or any other
# flockwatch command given as arguments, e.g. `check-config` or `status`).
set -eu

if [ "$#" -eq 0 ]; then
    set -- run
fi

if [ "$1" = "run" ]; then
    flockwatch db upgrade
fi

exec flockwatch "$@"
