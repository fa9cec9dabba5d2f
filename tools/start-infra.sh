#!/usr/bin/env bash
# Start the local servers Agora needs, each only if it is not answering:
#   tools/start-infra.sh [postgres] [redis] [nats]     (no argument: all three)
# The one place that knows these commands: .ci/run calls it, and `make up`
# and the tests name it when a server is down.
set -euo pipefail

answers() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for() { # name port
  for _ in $(seq 1 60); do
    answers "$2" && return 0
    sleep 0.5
  done
  echo "$1 did not come up on 127.0.0.1:$2" >&2
  return 1
}

start_postgres() {
  answers 5432 && return 0
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  wait_for PostgreSQL 5432
}

start_redis() {
  answers 6379 && return 0
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis 6379
}

start_nats() {
  answers 4222 && return 0
  echo "starting NATS"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_for NATS 4222
}

servers=("$@")
[ ${#servers[@]} -eq 0 ] && servers=(postgres redis nats)
for server in "${servers[@]}"; do
  case "$server" in
    postgres) start_postgres ;;
    redis) start_redis ;;
    nats) start_nats ;;
    *) echo "unknown server: $server (postgres, redis or nats)" >&2; exit 2 ;;
  esac
done
