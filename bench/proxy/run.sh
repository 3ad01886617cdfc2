#!/usr/bin/env bash
# Proxy benchmark: the same backend container behind direct / faaso / nginx / haproxy / caddy,
# each proxy in its own container on one network, loaded by wrk at fixed concurrency on
# 127.0.0.1. Every image is made locally (no registry): the Debian packages' binaries plus
# the libraries ldd names, imported with `docker import`. Prints req/s, p99, memory, the
# ratios faaso/nginx and faaso/caddy, and faaso's route-update latency.
#
#   bench/proxy/run.sh                      # from the repository root
#   DURATION=20s CONNS=64 ROUNDS=3 bench/proxy/run.sh
#   FAASO_BIN=path/to/faaso bench/proxy/run.sh   # skip building faaso
#
# Everything it creates carries the label faaso-bench=<run id> and is removed on exit.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
UPDATES=${UPDATES:-7}
RUN=fbench-$$
NET=$RUN-net
LABEL=faaso-bench=$RUN
ROOT=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
WORK=$(mktemp -d)

log() { printf '== %s\n' "$*" >&2; }

cleanup() {
  set +e
  ids=$(docker ps -aq --filter "label=$LABEL")
  [ -n "$ids" ] && docker rm -f $ids >/dev/null
  docker network rm "$NET" >/dev/null 2>&1
  imgs=$(docker images -q --filter "label=$LABEL" | sort -u)
  [ -n "$imgs" ] && docker rmi -f $imgs >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

need_packages() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || missing+=(nginx)
  command -v haproxy >/dev/null || missing+=(haproxy)
  command -v caddy >/dev/null || missing+=(caddy)
  command -v python3 >/dev/null || missing+=(python3)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian"
    apt-get update -qq
    # policy-rc.d keeps the packages' services from starting on the host.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# newroot DIR: an empty root filesystem with /tmp, /etc/passwd and /etc/group.
newroot() {
  mkdir -p "$1/tmp" "$1/etc"
  chmod 1777 "$1/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$1/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$1/etc/group"
}

# addbin DIR FILE...: copies executables and every shared library they load.
addbin() {
  local dir=$1
  shift
  for bin in "$@"; do
    cp --parents -L "$bin" "$dir"
    ldd "$bin" 2>/dev/null | awk '/=> \// {print $3} /^[ \t]*\/[^ ]+ \(/ {print $1}' |
      while read -r lib; do cp --parents -L "$lib" "$dir"; done
  done
}

# import DIR NAME ENTRYPOINT-JSON: makes image $RUN-NAME from the root filesystem DIR.
import() {
  tar -C "$1" -c . | docker import --change "ENTRYPOINT $3" --change "LABEL faaso-bench=$RUN" - "$RUN-$2:latest" >/dev/null
  echo "$RUN-$2:latest"
}

ip_of() {
  docker inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$1"
}

wait_ok() { # URL
  for _ in $(seq 1 500); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
    sleep 0.02
  done
  log "no 200 from $1"
  return 1
}

# p99 in ms and req/s from wrk --latency output.
parse_wrk() {
  awk '
    /Requests\/sec:/ { rps = $2 }
    $1 == "99%" { v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
                  p99 = (unit == "us") ? v / 1000 : (unit == "s") ? v * 1000 : v }
    /Non-2xx/ { bad = $NF }
    END { printf "%s %.3f %s\n", rps, p99, (bad == "" ? 0 : bad) }'
}

# CPU time (clock ticks) used so far by every thread of a container's processes.
cpu_ticks() {
  local total=0
  for pid in $(docker top "$1" -eo pid | tail -n +2); do
    for stat in /proc/"$pid"/task/*/stat; do
      total=$((total + $(awk '{print $14 + $15}' "$stat" 2>/dev/null || echo 0)))
    done
  done
  echo "$total"
}

need_packages
cd "$ROOT"

log "building the test backend (static) and faaso (release)"
RUSTFLAGS='-C target-feature=+crt-static' CARGO_TARGET_DIR=target/backend \
  cargo build -q --release -p faaso-proxy --example backend --target x86_64-unknown-linux-gnu
BACKEND_BIN=target/backend/x86_64-unknown-linux-gnu/release/examples/backend
if [ -z "${FAASO_BIN:-}" ]; then
  cargo build -q --release -p faaso
  FAASO_BIN=target/release/faaso
fi

log "making images with docker import (no registry)"
r=$WORK/backend; newroot "$r"; cp "$BACKEND_BIN" "$r/backend"
IMG_BACKEND=$(import "$r" backend '["/backend"]')
r=$WORK/faaso; newroot "$r"; addbin "$r" "$(readlink -f "$FAASO_BIN")"; cp "$(readlink -f "$FAASO_BIN")" "$r/faaso"
IMG_FAASO=$(import "$r" faaso '["/faaso"]')
r=$WORK/nginx; newroot "$r"; addbin "$r" /usr/sbin/nginx; mkdir -p "$r/var/log/nginx" "$r/var/lib/nginx" "$r/etc/nginx"
IMG_NGINX=$(import "$r" nginx '["/usr/sbin/nginx", "-c", "/etc/nginx/bench.conf", "-g", "daemon off;"]')
r=$WORK/haproxy; newroot "$r"; addbin "$r" /usr/sbin/haproxy; mkdir -p "$r/etc/haproxy"
IMG_HAPROXY=$(import "$r" haproxy '["/usr/sbin/haproxy", "-f", "/etc/haproxy/bench.cfg"]')
r=$WORK/caddy; newroot "$r"; addbin "$r" /usr/bin/caddy; mkdir -p "$r/etc/caddy"
IMG_CADDY=$(import "$r" caddy '["/usr/bin/caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]')

docker network create --label "$LABEL" "$NET" >/dev/null
docker run -d --name "$RUN-backend" --network "$NET" --label "$LABEL" \
  --label "$RUN.managed=true" --label "$RUN.funko=hello" \
  -e INSTANCE=backend -p 127.0.0.1:18180:3000 "$IMG_BACKEND" >/dev/null
BACKEND_IP=$(ip_of "$RUN-backend")

cat >"$WORK/bench.conf" <<CONF
worker_processes auto;
pid /tmp/nginx.pid;
error_log /dev/stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path /tmp/body; proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fcgi; uwsgi_temp_path /tmp/uwsgi; scgi_temp_path /tmp/scgi;
  upstream hello { server $BACKEND_IP:3000; keepalive 128; }
  server {
    listen 8080;
    location /funko/hello/ {
      proxy_pass http://hello/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
CONF
cat >"$WORK/bench.cfg" <<CONF
global
  nbthread 2
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
frontend fe
  bind :8080
  http-request replace-path ^/funko/hello/?(.*) /\1
  option forwardfor
  default_backend be
backend be
  http-reuse always
  server s1 $BACKEND_IP:3000
CONF
cat >"$WORK/Caddyfile" <<CONF
{
  admin off
  auto_https off
}
:8080 {
  handle_path /funko/hello/* {
    reverse_proxy $BACKEND_IP:3000
  }
}
CONF

run_proxy() { # NAME PORT DOCKER-RUN-ARGS... (image and its arguments last)
  local name=$1 port=$2
  shift 2
  docker run -d --name "$RUN-$name" --network "$NET" --label "$LABEL" -p "127.0.0.1:$port:8080" "$@" >/dev/null
}
run_proxy faaso 18181 -v /var/run/docker.sock:/var/run/docker.sock "$IMG_FAASO" \
  --network "$NET" --labels "$RUN" proxy --listen 0.0.0.0:8080 --no-access-log
run_proxy nginx 18182 -v "$WORK/bench.conf:/etc/nginx/bench.conf:ro" "$IMG_NGINX"
run_proxy haproxy 18183 -v "$WORK/bench.cfg:/etc/haproxy/bench.cfg:ro" "$IMG_HAPROXY"
run_proxy caddy 18184 -e HOME=/tmp -e XDG_DATA_HOME=/tmp -e XDG_CONFIG_HOME=/tmp \
  -v "$WORK/Caddyfile:/etc/caddy/Caddyfile:ro" "$IMG_CADDY"

declare -A URL=(
  [direct]=http://127.0.0.1:18180/hello
  [faaso]=http://127.0.0.1:18181/funko/hello/hello
  [nginx]=http://127.0.0.1:18182/funko/hello/hello
  [haproxy]=http://127.0.0.1:18183/funko/hello/hello
  [caddy]=http://127.0.0.1:18184/funko/hello/hello
)
ORDER=(direct faaso nginx haproxy caddy)
for p in "${ORDER[@]}"; do wait_ok "${URL[$p]}"; done

log "load: wrk -t$THREADS -c$CONNS -d$DURATION, $ROUNDS round(s), proxies interleaved"
declare -A RPS P99 BAD M_RPS M_P99 CPU M_CPU
HZ=$(getconf CLK_TCK)
for round in $(seq 1 "$ROUNDS"); do
  for p in "${ORDER[@]}"; do
    wrk -t"$THREADS" -c"$CONNS" -d2s "${URL[$p]}" >/dev/null # warm-up
    box=$RUN-$p
    [ "$p" = direct ] && box=$RUN-backend
    before=$(cpu_ticks "$box")
    read -r rps p99 bad < <(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${URL[$p]}" | parse_wrk)
    after=$(cpu_ticks "$box")
    secs=${DURATION%s}
    cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v r="$rps" -v s="$secs" 'BEGIN { printf "%.1f", t / hz * 1e6 / (r * s) }')
    CPU[$p]="${CPU[$p]:-} $cpu"
    log "round $round $p: $rps req/s, p99 $p99 ms, non-2xx $bad, $cpu µs CPU per request"
    RPS[$p]="${RPS[$p]:-} $rps"
    P99[$p]="${P99[$p]:-} $p99"
    BAD[$p]=$(( ${BAD[$p]:-0} + bad ))
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
mem() { [ "$1" = direct ] && echo "-" || docker stats --no-stream --format '{{.MemUsage}}' "$RUN-$1" | cut -d/ -f1; }

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); docker $(docker version -f '{{.Server.Version}}')"
echo "load: wrk -t$THREADS -c$CONNS -d$DURATION on 127.0.0.1 (published ports), median of $ROUNDS round(s)"
printf '%-8s %12s %10s %8s %12s %12s\n' proxy req/s p99_ms non2xx cpu_us/req memory
for p in "${ORDER[@]}"; do
  M_RPS[$p]=$(echo "${RPS[$p]}" | median)
  M_P99[$p]=$(echo "${P99[$p]}" | median)
  M_CPU[$p]=$(echo "${CPU[$p]}" | median)
  printf '%-8s %12.0f %10.3f %8s %12s %12s\n' "$p" "${M_RPS[$p]}" "${M_P99[$p]}" "${BAD[$p]}" "${M_CPU[$p]}" "$(mem "$p")"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "faaso/nginx  throughput $(ratio "${M_RPS[faaso]}" "${M_RPS[nginx]}")x   p99 $(ratio "${M_P99[faaso]}" "${M_P99[nginx]}")x"
echo "faaso/caddy  throughput $(ratio "${M_RPS[faaso]}" "${M_RPS[caddy]}")x   p99 $(ratio "${M_P99[faaso]}" "${M_P99[caddy]}")x"
echo "CPU per request (µs; the direct row is the backend's own): faaso $(ratio "${M_CPU[faaso]}" "${M_CPU[nginx]}")x nginx, $(ratio "${M_CPU[faaso]}" "${M_CPU[caddy]}")x caddy"
echo "faaso/haproxy throughput $(ratio "${M_RPS[faaso]}" "${M_RPS[haproxy]}")x   p99 $(ratio "${M_P99[faaso]}" "${M_P99[haproxy]}")x"

log "route update: $UPDATES new instances, from ready (its process listening) to routed by faaso"
lags=()
for i in $(seq 1 "$UPDATES"); do
  docker run -d --name "$RUN-late$i" --network "$NET" --label "$LABEL" \
    --label "$RUN.managed=true" --label "$RUN.funko=late$i" -e INSTANCE="late$i" "$IMG_BACKEND" >/dev/null &
  lag=$(python3 - "http://127.0.0.1:18181/funko/late$i/hello" <<'PY'
import sys, time, urllib.request, urllib.error
url = sys.argv[1]
deadline = time.time() + 20
while time.time() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            ready_at = int(r.headers["x-ready-at"]) / 1e6
            print(f"{(time.time() - ready_at) * 1000:.1f}")
            sys.exit(0)
    except (urllib.error.URLError, ConnectionError):
        time.sleep(0.001)
print("timeout")
PY
)
  wait
  lags+=("$lag")
done
echo "route update (ms, instance ready -> first request routed to it): ${lags[*]}"
echo "route update median $(printf '%s\n' "${lags[@]}" | median) ms, max $(printf '%s\n' "${lags[@]}" | sort -g | tail -1) ms"
