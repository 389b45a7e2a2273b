#!/bin/sh
# Cheap stand-ins for `db:generate`, `db:push` and the restart command, with fault knobs.
#
# Copied into each test app and run by deploysafe exactly like the real commands: through the shell, with
# DATABASE_URL in the environment. They really change the database (psql, named by $PSQL). Shell, not
# Python: a Python start costs ~0.25s on a busy CI machine, and a deploy runs these three to four times.
#
#   generate  writes drizzle/<n>_reliability.sql from change.sql (nothing when there is no change)
#   push      applies change.sql unless change.check says it is applied; with --strict (deploysafe's
#             read-only dry check) it only reports whether the database matches ("No changes detected")
#   restart   runs the app's own restart.sh (the real node app)
#
# Fault knob: the file fault.<command> holds "exit" (exit 1), "hang" (sleep far past any timeout), "killed"
# (SIGKILL itself), "slow:<s>" (sleep first; the SIGKILL tests kill deploysafe meanwhile) or, for generate,
# "lint-bulk" (a large migration, so the lint step takes a while). push fails after applying its statement,
# the nastier case. Each run writes its pid to <command>.pid; a test ends the process group it led.
set -u
cmd=$1
here=$(cd "$(dirname "$0")" && pwd)
echo $$ > "$here/$cmd.pid"
knob=$(cat "$here/fault.$cmd" 2>/dev/null || true)
case "${2:-}:$knob" in --strict:*) ;; *:slow:*) sleep "${knob#slow:}" ;; esac  # a dry run (--strict) is never slow

run_sql() {
  "$PSQL" -X -q -tA -v ON_ERROR_STOP=1 -d "$DATABASE_URL" -c "$1"
}

applied() {
  [ "$(run_sql "$(cat "$here/change.check")")" = "t" ]
}

case "$cmd" in
  generate)
    mkdir -p "$here/drizzle"
    if [ -f "$here/change.sql" ] && [ ! -f "$here/.generated" ]; then
      n=$(find "$here/drizzle" -name '*.sql' | wc -l)
      f="$here/drizzle/$(printf %04d "$n")_reliability.sql"
      { cat "$here/change.sql"; echo ";"; } > "$f"
      if [ "$knob" = "lint-bulk" ]; then
        yes 'SELECT 1;' | head -n 60000 >> "$f"
      fi
      echo 1 > "$here/.generated"
    fi
    echo generated
    ;;
  push)
    if [ "${2:-}" = "--strict" ]; then
      if [ ! -f "$here/change.sql" ] || applied; then echo "[i] No changes detected"; else echo "pending: $(cat "$here/change.sql")"; fi
      exit 0
    fi
    if [ -f "$here/change.sql" ] && ! applied; then
      run_sql "$(cat "$here/change.sql")" || exit 1
      echo "[✓] Changes applied"
    else
      echo "[i] No changes detected"
    fi
    ;;
  restart)
    case "$knob" in exit|hang|killed) ;; *) sh "$here/restart.sh" || exit $? ;; esac
    ;;
esac

case "$knob" in
  exit) echo "$cmd: injected failure"; exit 1 ;;
  hang) exec sleep 600 ;;
  killed) kill -9 $$ ;;
esac
exit 0
