#!/bin/sh
# Restart the app: stop the old process (if any), start a new one that reads .env, wait until it listens.
# Used as [platform] restart by the end-to-end tests and the demo.
set -eu
cd "$(dirname "$0")"
if [ -f app.pid ]; then
  old=$(cat app.pid)
  kill "$old" 2>/dev/null || true
  i=0
  while kill -0 "$old" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  kill -9 "$old" 2>/dev/null || true
  rm -f app.pid
fi
PID_FILE=app.pid nohup node server.mjs >>app.log 2>&1 </dev/null &
i=0
while [ ! -s app.pid ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
if [ ! -s app.pid ]; then echo "the app did not start; see app.log" >&2; exit 1; fi
