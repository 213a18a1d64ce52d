#!/usr/bin/env bash
# Starts, stops and resets the embedded local AWS endpoint (moto server).
# Usage: endpoint.sh up|down|reset   (PORT, VENV and LOCAL come from the Makefile;
# ENDPOINT_FLAGS, e.g. --log-requests, are passed to endpoint.py)
set -euo pipefail
PORT=${PORT:-4566}
VENV=${VENV:-.venv}
LOCAL=${LOCAL:-.local}
PIDFILE="$LOCAL/moto.pid"
LOGFILE="$LOCAL/moto.log"
URL="http://127.0.0.1:$PORT"

ready() { curl -fsS -o /dev/null "$URL/moto-api/" 2>/dev/null; }
running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-}" in
up)
  mkdir -p "$LOCAL"
  if running && ready; then echo "endpoint already up at $URL (pid $(cat "$PIDFILE"))"; exit 0; fi
  if ready; then echo "port $PORT is served by a process this project did not start; stop it or set PORT" >&2; exit 1; fi
  nohup "$VENV/bin/python" "$(dirname "$0")/endpoint.py" -H 127.0.0.1 -p "$PORT" ${ENDPOINT_FLAGS:-} >"$LOGFILE" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do
    if ready; then echo "endpoint up at $URL (pid $(cat "$PIDFILE"), log $LOGFILE)"; exit 0; fi
    running || { echo "endpoint exited; see $LOGFILE" >&2; tail -20 "$LOGFILE" >&2; exit 1; }
    sleep 0.2
  done
  echo "endpoint not ready after 20s; see $LOGFILE" >&2; exit 1 ;;
down)
  if running; then
    pid=$(cat "$PIDFILE"); kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "endpoint stopped (pid $pid)"
  else
    echo "endpoint not running"
  fi
  rm -f "$PIDFILE" ;;
reset)
  running || { echo "endpoint not running" >&2; exit 1; }
  curl -fsS -X POST "$URL/moto-api/reset" >/dev/null
  echo "endpoint state emptied" ;;
*) echo "usage: $0 up|down|reset" >&2; exit 2 ;;
esac
