#!/usr/bin/env bash
# stage.sh NAME COMMAND [ARG...]: runs COMMAND and prints how long the stage took (CI's log reads
# these lines to see where its time goes); exits with COMMAND's status.
name=$1
shift
start=$(date +%s)
echo "== stage '$name' started at $(date -u +%T)"
"$@"
rc=$?
echo "== stage '$name' took $(($(date +%s) - start)) s (exit $rc)"
exit $rc
