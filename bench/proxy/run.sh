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
#   FAASO_ALT=path/to/other/faaso bench/proxy/run.sh   # a second faaso build beside the first
#   FAASO_ALT=$FAASO_BIN FAASO_ALT_ARGS="--event-loops 1" bench/proxy/run.sh   # or other flags
#   PROXIES="faaso faaso-alt nginx" bench/proxy/run.sh  # only these (direct always runs)
#   INSTRUCTIONS=1 bench/proxy/run.sh      # also instructions per request, faaso vs nginx
#   DEFAULTS=0 bench/proxy/run.sh          # skip the defaults comparison (access logs on)
#   D_WORKERS=2 bench/proxy/run.sh         # nginx workers in the defaults comparison (1)
#   TLS=0 bench/proxy/run.sh               # skip the TLS comparison (faaso and nginx on HTTPS)
#
# Everything it creates carries the label faaso-bench=<run id> and is removed on exit.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
UPDATES=${UPDATES:-7}
DEFAULTS=${DEFAULTS:-1}
TLS=${TLS:-1}
D_WORKERS=${D_WORKERS:-1}
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
  command -v openssl >/dev/null || missing+=(openssl)
  [ -z "${INSTRUCTIONS:-}" ] || command -v valgrind >/dev/null || missing+=(valgrind)
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

wait_ok() { # URL [TRIES]
  for _ in $(seq 1 "${2:-500}"); do
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

# CPU time (clock ticks) used so far by the Docker daemon and containerd (with its shims), which
# carry a container's standard output into its log.
daemon_ticks() {
  local total=0 pid
  for pid in $(pgrep -x dockerd) $(pgrep -x containerd) $(pgrep -f containerd-shim); do
    for stat in /proc/"$pid"/task/*/stat; do
      total=$((total + $(awk '{print $14 + $15}' "$stat" 2>/dev/null || echo 0)))
    done
  done
  echo "$total"
}

per_request() { # TICKS REQ/S -> µs per request over DURATION
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v r="$2" -v s="${DURATION%s}" 'BEGIN { printf "%.1f", t / hz * 1e6 / (r * s) }'
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
faaso_image() { # NAME BINARY
  local r=$WORK/$1 bin
  bin=$(readlink -f "$2")
  newroot "$r"; addbin "$r" "$bin"; cp "$bin" "$r/faaso"
  import "$r" "$1" '["/faaso"]'
}
IMG_FAASO=$(faaso_image faaso "$FAASO_BIN")
[ -n "${FAASO_ALT:-}" ] && IMG_FAASO_ALT=$(faaso_image faaso-alt "$FAASO_ALT")
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

# Every peer is set up to do the work faaso's proxy does (DESIGN.md's routing conventions): strip
# the prefix, pass the client's Host, add X-Forwarded-For/-Proto/-Host/-Prefix, and keep or make
# an X-Request-Id that also goes back on the answer. The instance then parses the same headers
# whichever proxy is in front of it.
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
  map \$http_x_request_id \$faaso_request_id { default \$http_x_request_id; "" \$request_id; }
  server {
    listen 8080;
    location /funko/hello/ {
      proxy_pass http://hello/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
      proxy_set_header X-Forwarded-Prefix /funko/hello;
      proxy_set_header X-Request-Id \$faaso_request_id;
      add_header X-Request-Id \$faaso_request_id always;
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
  unique-id-format %{+X}o%ci%cp%Ts%rt%pid
  http-request set-var(txn.request_id) req.hdr(x-request-id)
  http-request set-var(txn.request_id) unique-id unless { var(txn.request_id) -m found }
  http-request set-header X-Request-Id %[var(txn.request_id)]
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-request set-header X-Forwarded-Prefix /funko/hello
  http-request replace-path ^/funko/hello/?(.*) /\1
  option forwardfor
  http-response set-header X-Request-Id %[var(txn.request_id)]
  default_backend be
backend be
  http-reuse always
  server s1 $BACKEND_IP:3000
CONF
# Caddy adds X-Forwarded-For/-Proto/-Host itself; its 2.6 has no "keep if sent", so it always
# makes the id (wrk sends none, so the work is the same).
cat >"$WORK/Caddyfile" <<CONF
{
  admin off
  auto_https off
}
:8080 {
  handle_path /funko/hello/* {
    reverse_proxy $BACKEND_IP:3000 {
      header_up X-Forwarded-Prefix /funko/hello
      header_up X-Request-Id {http.request.uuid}
      header_down X-Request-Id {http.request.uuid}
    }
  }
}
CONF

run_proxy() { # NAME PORT DOCKER-RUN-ARGS... (image and its arguments last)
  local name=$1 port=$2
  shift 2
  docker run -d --name "$RUN-$name" --network "$NET" --label "$LABEL" -p "127.0.0.1:$port:8080" "$@" >/dev/null
}
if [ -n "${PROXIES:-}" ]; then
  ORDER=(direct faaso)
  for p in $PROXIES; do [ "$p" = faaso ] || ORDER+=("$p"); done
else
  ORDER=(direct faaso nginx haproxy caddy)
  [ -n "${FAASO_ALT:-}" ] && ORDER+=(faaso-alt)
fi
measured() { [[ " ${ORDER[*]} " == *" $1 "* ]]; }
# One event loop per core, as nginx's `worker_processes auto` runs one worker per core: like
# with like, whatever faaso's default (the defaults comparison below runs that).
run_faaso() { # NAME PORT IMAGE [FLAGS...]
  local name=$1 port=$2 image=$3 loops
  shift 3
  loops=(--event-loops "$(nproc)")
  [[ " $* " == *" --event-loops"* ]] && loops=()
  run_proxy "$name" "$port" -v /var/run/docker.sock:/var/run/docker.sock "$image" \
    --network "$NET" --labels "$RUN" proxy --listen 0.0.0.0:8080 --no-access-log "${loops[@]}" "$@"
}
# faaso always runs: the ratios and the route-update test are faaso's.
run_faaso faaso 18181 "$IMG_FAASO"
# shellcheck disable=SC2086 # FAASO_ALT_ARGS is a list of flags.
measured faaso-alt && run_faaso faaso-alt 18185 "$IMG_FAASO_ALT" ${FAASO_ALT_ARGS:-}
measured nginx && run_proxy nginx 18182 -v "$WORK/bench.conf:/etc/nginx/bench.conf:ro" "$IMG_NGINX"
measured haproxy && run_proxy haproxy 18183 -v "$WORK/bench.cfg:/etc/haproxy/bench.cfg:ro" "$IMG_HAPROXY"
measured caddy && run_proxy caddy 18184 -e HOME=/tmp -e XDG_DATA_HOME=/tmp -e XDG_CONFIG_HOME=/tmp \
  -v "$WORK/Caddyfile:/etc/caddy/Caddyfile:ro" "$IMG_CADDY"

declare -A URL=(
  [direct]=http://127.0.0.1:18180/hello
  [faaso]=http://127.0.0.1:18181/funko/hello/hello
  [nginx]=http://127.0.0.1:18182/funko/hello/hello
  [haproxy]=http://127.0.0.1:18183/funko/hello/hello
  [caddy]=http://127.0.0.1:18184/funko/hello/hello
  [faaso-alt]=http://127.0.0.1:18185/funko/hello/hello
)
for p in "${ORDER[@]}"; do wait_ok "${URL[$p]}"; done

# Checks that a proxy does the same work as faaso's: the instance gets the forwarding headers
# and a request id, at its own path, and the answer carries the id back.
same_work() { # NAME
  same_work_at "$1" "${URL[$1]}"
}
same_work_at() { # NAME URL
  local base=${2%/hello} body
  body=$(curl -s -D "$WORK/$1.head" "$base/echo?q=1")
  for h in host x-forwarded-for x-forwarded-proto x-forwarded-host x-forwarded-prefix x-request-id; do
    grep -q "\"$h\"" <<<"$body" || { log "$1 does not send $h: $body"; return 1; }
  done
  grep -q '"uri":"/echo?q=1"' <<<"$body" || { log "$1 does not strip the prefix: $body"; return 1; }
  grep -qi '^x-request-id:' "$WORK/$1.head" || { log "$1 answers without x-request-id"; return 1; }
}
for p in "${ORDER[@]}"; do [ "$p" = direct ] || same_work "$p"; done

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
printf '%-9s %12s %10s %8s %12s %12s\n' proxy req/s p99_ms non2xx cpu_us/req memory
for p in "${ORDER[@]}"; do
  M_RPS[$p]=$(echo "${RPS[$p]}" | median)
  M_P99[$p]=$(echo "${P99[$p]}" | median)
  M_CPU[$p]=$(echo "${CPU[$p]}" | median)
  printf '%-9s %12.0f %10.3f %8s %12s %12s\n' "$p" "${M_RPS[$p]}" "${M_P99[$p]}" "${BAD[$p]}" "${M_CPU[$p]}" "$(mem "$p")"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
PEERS=()
for peer in nginx caddy haproxy faaso-alt; do [ -n "${M_RPS[$peer]:-}" ] && PEERS+=("$peer"); done
for peer in "${PEERS[@]}"; do
  printf 'faaso/%-9s throughput %sx   p99 %sx   CPU per request %sx\n' "$peer" \
    "$(ratio "${M_RPS[faaso]}" "${M_RPS[$peer]}")" "$(ratio "${M_P99[faaso]}" "${M_P99[$peer]}")" \
    "$(ratio "${M_CPU[faaso]}" "${M_CPU[$peer]}")"
done
echo "(CPU per request in µs; the direct row's is the backend's own)"
# Paired by round: each round loads every proxy back to back, so a machine that speeds up or
# slows down between rounds (it does, by up to 20 %) moves both sides of a round's ratio alike.
for peer in "${PEERS[@]}"; do
  per_round=$(paste <(tr ' ' '\n' <<<"${RPS[faaso]}" | grep -v '^$') <(tr ' ' '\n' <<<"${RPS[$peer]}" | grep -v '^$') |
    awk '{printf "%.2f ", $1 / $2}')
  printf 'faaso/%-9s throughput by round: %s(median %sx)\n' "$peer" "$per_round" "$(echo "$per_round" | median)"
done

# The defaults comparison: every proxy with its access log on, as users run it. faaso exactly
# as `faaso proxy up` starts it (no flags: log to standard output, default event loops), beside
# faaso with its log off, faaso's log with each event-loop count, and nginx logging to the
# container's standard output, unbuffered (its default) and buffered as faaso's log is (64 KiB,
# flushed every 100 ms). The container's output goes to Docker's log driver in every case.
# Loaded like the issue's first measurement: wrk -t1 -c32 through each published port.
defaults_comparison() {
  local D=(d-faaso d-faaso-nolog d-faaso-1 d-faaso-2 d-nginx-log d-nginx-buf) p rps p99 bad
  local -A D_URL D_RPS D_P99 D_BAD D_MRPS D_MP99 D_CPU D_DCPU
  local before after dbefore dafter cpu dcpu
  sed -e 's|access_log off;|access_log /dev/stdout;|' \
    -e "s|worker_processes auto;|worker_processes $D_WORKERS;|" "$WORK/bench.conf" >"$WORK/log.conf"
  sed -e 's|access_log off;|access_log /dev/stdout combined buffer=64k flush=100ms;|' \
    -e "s|worker_processes auto;|worker_processes $D_WORKERS;|" "$WORK/bench.conf" >"$WORK/buf.conf"
  local port=18200
  for p in "${D[@]}"; do port=$((port + 1)); D_URL[$p]=http://127.0.0.1:$port/funko/hello/hello; done
  local faaso=(-v /var/run/docker.sock:/var/run/docker.sock "$IMG_FAASO" --network "$NET" --labels "$RUN"
    proxy --listen 0.0.0.0:8080)
  run_proxy d-faaso 18201 "${faaso[@]}"
  run_proxy d-faaso-nolog 18202 "${faaso[@]}" --no-access-log
  run_proxy d-faaso-1 18203 "${faaso[@]}" --event-loops 1
  run_proxy d-faaso-2 18204 "${faaso[@]}" --event-loops 2
  run_proxy d-nginx-log 18205 -v "$WORK/log.conf:/etc/nginx/bench.conf:ro" "$IMG_NGINX"
  run_proxy d-nginx-buf 18206 -v "$WORK/buf.conf:/etc/nginx/bench.conf:ro" "$IMG_NGINX"
  for p in "${D[@]}"; do wait_ok "${D_URL[$p]}"; done
  for p in d-faaso d-nginx-log; do same_work_at "$p" "${D_URL[$p]}"; done
  # Both must really log: a line per request in `docker logs`.
  for p in d-faaso d-nginx-log; do
    docker logs "$RUN-$p" 2>/dev/null | grep -q 'funko/hello/echo' ||
      { sleep 0.3; docker logs "$RUN-$p" 2>/dev/null | grep -q 'funko/hello/echo'; } ||
      { log "$p wrote no access-log line to its standard output"; return 1; }
  done
  log "defaults: wrk -t1 -c32 -d$DURATION, $ROUNDS round(s), access logs on"
  for round in $(seq 1 "$ROUNDS"); do
    for p in "${D[@]}"; do
      wrk -t1 -c32 -d2s "${D_URL[$p]}" >/dev/null
      before=$(cpu_ticks "$RUN-$p"); dbefore=$(daemon_ticks)
      read -r rps p99 bad < <(wrk -t1 -c32 -d"$DURATION" --latency "${D_URL[$p]}" | parse_wrk)
      after=$(cpu_ticks "$RUN-$p"); dafter=$(daemon_ticks)
      cpu=$(per_request $((after - before)) "$rps")
      dcpu=$(per_request $((dafter - dbefore)) "$rps")
      D_CPU[$p]="${D_CPU[$p]:-} $cpu"
      D_DCPU[$p]="${D_DCPU[$p]:-} $dcpu"
      log "defaults round $round $p: $rps req/s, p99 $p99 ms, non-2xx $bad, CPU per request: $cpu µs its own, $dcpu µs Docker's"
      D_RPS[$p]="${D_RPS[$p]:-} $rps"
      D_P99[$p]="${D_P99[$p]:-} $p99"
      D_BAD[$p]=$(( ${D_BAD[$p]:-0} + bad ))
    done
  done
  echo
  echo "defaults (access logs on, to the container's standard output; nginx $D_WORKERS worker(s); wrk -t1 -c32 -d$DURATION, median of $ROUNDS round(s))"
  printf '%-14s %10s %9s %7s %11s %12s %11s\n' proxy req/s p99_ms non2xx cpu_us/req docker_us/req memory
  for p in "${D[@]}"; do
    D_MRPS[$p]=$(echo "${D_RPS[$p]}" | median)
    D_MP99[$p]=$(echo "${D_P99[$p]}" | median)
    printf '%-14s %10.0f %9.3f %7s %11s %12s %11s\n' "$p" "${D_MRPS[$p]}" "${D_MP99[$p]}" "${D_BAD[$p]}" \
      "$(echo "${D_CPU[$p]}" | median)" "$(echo "${D_DCPU[$p]}" | median)" \
      "$(docker stats --no-stream --format '{{.MemUsage}}' "$RUN-$p" | cut -d/ -f1)"
  done
  echo "(docker_us/req: dockerd and containerd's CPU per request, where a container's output becomes its log)"
  echo "(d-faaso: no flags, as \`faaso proxy up\` runs it; d-faaso-1/-2: log on, 1 or 2 event loops)"
  printf 'faaso log on/off        throughput %sx (target >= 0.9)\n' "$(ratio "${D_MRPS[d-faaso]}" "${D_MRPS[d-faaso-nolog]}")"
  printf 'faaso/nginx, both log   throughput %sx (target >= 1.5)   p99 %sx (target <= 1.0)\n' \
    "$(ratio "${D_MRPS[d-faaso]}" "${D_MRPS[d-nginx-log]}")" "$(ratio "${D_MP99[d-faaso]}" "${D_MP99[d-nginx-log]}")"
  printf 'faaso/nginx buffered    throughput %sx   p99 %sx\n' \
    "$(ratio "${D_MRPS[d-faaso]}" "${D_MRPS[d-nginx-buf]}")" "$(ratio "${D_MP99[d-faaso]}" "${D_MP99[d-nginx-buf]}")"
  printf 'faaso 1 loop / 2 loops  throughput %sx   p99 %sx\n' \
    "$(ratio "${D_MRPS[d-faaso-1]}" "${D_MRPS[d-faaso-2]}")" "$(ratio "${D_MP99[d-faaso-1]}" "${D_MP99[d-faaso-2]}")"
  for p in d-faaso-nolog d-nginx-log d-nginx-buf; do
    per_round=$(paste <(tr ' ' '\n' <<<"${D_RPS[d-faaso]}" | grep -v '^$') <(tr ' ' '\n' <<<"${D_RPS[$p]}" | grep -v '^$') |
      awk '{printf "%.2f ", $1 / $2}')
    printf 'd-faaso/%-13s throughput by round: %s(median %sx)\n' "$p" "$per_round" "$(echo "$per_round" | median)"
  done
}
[ "$DEFAULTS" = 0 ] || defaults_comparison

# The TLS comparison: faaso and nginx both terminating TLS with the same certificate (ECDSA
# P-256, made here) and the same protocol and cipher suite (TLS 1.3; printed), one worker per
# core each, access logs off, in front of the same backend. Keep-alive load as the plain
# comparison (wrk -t$THREADS -c$CONNS), then new connections: every request with
# `Connection: close`, so each is a full handshake (req/s = handshakes/s).
tls_comparison() {
  local T=(t-faaso t-nginx) p rps p99 bad mode
  local -A T_URL T_RPS T_P99 T_HS T_MRPS T_MP99 T_MHS
  mkdir -p "$WORK/certs"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$WORK/certs/key.pem" -out "$WORK/certs/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
  chmod 0644 "$WORK/certs/key.pem"
  sed -e 's|listen 8080;|listen 8080 ssl; ssl_certificate /certs/cert.pem; ssl_certificate_key /certs/key.pem; ssl_protocols TLSv1.3;|' \
    "$WORK/bench.conf" >"$WORK/tls.conf"
  run_proxy t-faaso 18211 -v /var/run/docker.sock:/var/run/docker.sock -v "$WORK/certs:/certs:ro" \
    "$IMG_FAASO" --network "$NET" --labels "$RUN" proxy --listen 0.0.0.0:8080 --no-access-log \
    --event-loops "$(nproc)" --tls-cert /certs/cert.pem --tls-key /certs/key.pem
  run_proxy t-nginx 18212 -v "$WORK/tls.conf:/etc/nginx/bench.conf:ro" -v "$WORK/certs:/certs:ro" "$IMG_NGINX"
  T_URL[t-faaso]=https://127.0.0.1:18211/funko/hello/hello
  T_URL[t-nginx]=https://127.0.0.1:18212/funko/hello/hello
  for p in "${T[@]}"; do
    for _ in $(seq 1 500); do
      [ "$(curl -ks -o /dev/null -w '%{http_code}' "${T_URL[$p]}")" = 200 ] && break
      sleep 0.02
    done
    local hostport=${T_URL[$p]#https://}
    log "$p: $(openssl s_client -connect "${hostport%%/*}" -servername localhost </dev/null 2>/dev/null | grep -m1 '^New,')"
  done
  log "tls: wrk -t$THREADS -c$CONNS -d$DURATION keep-alive, then Connection: close; $ROUNDS round(s)"
  for round in $(seq 1 "$ROUNDS"); do
    for p in "${T[@]}"; do
      wrk -t"$THREADS" -c"$CONNS" -d2s "${T_URL[$p]}" >/dev/null
      read -r rps p99 bad < <(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "${T_URL[$p]}" | parse_wrk)
      T_RPS[$p]="${T_RPS[$p]:-} $rps"; T_P99[$p]="${T_P99[$p]:-} $p99"
      read -r mode _ _ < <(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -H 'Connection: close' "${T_URL[$p]}" | parse_wrk)
      T_HS[$p]="${T_HS[$p]:-} $mode"
      log "tls round $round $p: keep-alive $rps req/s, p99 $p99 ms, non-2xx $bad; new connections $mode handshakes/s"
    done
  done
  echo
  echo "TLS (TLS 1.3, one ECDSA P-256 certificate, wrk -t$THREADS -c$CONNS -d$DURATION, median of $ROUNDS round(s))"
  printf '%-9s %12s %10s %14s\n' proxy req/s p99_ms handshakes/s
  for p in "${T[@]}"; do
    T_MRPS[$p]=$(echo "${T_RPS[$p]}" | median)
    T_MP99[$p]=$(echo "${T_P99[$p]}" | median)
    T_MHS[$p]=$(echo "${T_HS[$p]}" | median)
    printf '%-9s %12.0f %10.3f %14.0f\n' "$p" "${T_MRPS[$p]}" "${T_MP99[$p]}" "${T_MHS[$p]}"
  done
  printf 'faaso/nginx over TLS    throughput %sx (target >= 1.0)   p99 %sx (target <= 1.0)   handshakes/s %sx\n' \
    "$(ratio "${T_MRPS[t-faaso]}" "${T_MRPS[t-nginx]}")" "$(ratio "${T_MP99[t-faaso]}" "${T_MP99[t-nginx]}")" \
    "$(ratio "${T_MHS[t-faaso]}" "${T_MHS[t-nginx]}")"
  per_round=$(paste <(tr ' ' '\n' <<<"${T_RPS[t-faaso]}" | grep -v '^$') <(tr ' ' '\n' <<<"${T_RPS[t-nginx]}" | grep -v '^$') |
    awk '{printf "%.2f ", $1 / $2}')
  printf 'faaso/nginx over TLS    throughput by round: %s(median %sx)\n' "$per_round" "$(echo "$per_round" | median)"
}
[ "$TLS" = 0 ] || tls_comparison

# Instructions per request (userland) of faaso and nginx, each run on the host as one
# single-threaded loop under callgrind against the same backend: exact and repeatable however
# busy the machine is, where req/s and CPU time swing by ±15 % from round to round. (Both make
# the same reads and writes per request, so the kernel's share is alike; docs/PROXY.md.)
instructions() { # NAME PORT COMMAND...
  local name=$1 url="http://127.0.0.1:$2/funko/hello/hello" vg requests total
  shift 2
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$name" "$@" >"$WORK/cg.$name.log" 2>&1 &
  vg=$!
  wait_ok "$url" 3000
  wrk -t1 -c10 -d2s "$url" >/dev/null
  callgrind_control -z "$vg" >/dev/null 2>&1
  requests=$(wrk -t1 -c10 -d"$DURATION" "$url" | awk '/requests in/ {print $1}')
  callgrind_control -d "$vg" >/dev/null 2>&1
  kill "$vg"
  wait "$vg" 2>/dev/null || true
  total=$(callgrind_annotate "$WORK/cg.$name.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  echo $((total / requests))
}
if [ -n "${INSTRUCTIONS:-}" ]; then
  log "instructions per request under callgrind (host-run, one loop each)"
  sed -e 's|listen 8080;|listen 127.0.0.1:18192;|' -e 's|worker_processes auto;|worker_processes 1;|' \
    -e "s|/tmp/|$WORK/ngx-|g" "$WORK/bench.conf" >"$WORK/host.conf"
  IR_FAASO=$(instructions faaso 18191 "$FAASO_BIN" --network "$NET" --labels "$RUN" proxy \
    --listen 127.0.0.1:18191 --no-access-log --event-loops 1)
  # faaso's default: its access log on, to standard output (a file here, as a pipe to a log
  # driver would be), counting the writer thread too.
  IR_FAASO_LOG=$(instructions faaso-log 18193 "$FAASO_BIN" --network "$NET" --labels "$RUN" proxy \
    --listen 127.0.0.1:18193 --event-loops 1)
  IR_NGINX=$(instructions nginx 18192 nginx -c "$WORK/host.conf" -g 'daemon off; master_process off;')
  echo "instructions per request: faaso $IR_FAASO, nginx $IR_NGINX, faaso/nginx $(ratio "$IR_FAASO" "$IR_NGINX")x"
  echo "instructions per request with faaso's access log on: $IR_FAASO_LOG ($(ratio "$IR_FAASO_LOG" "$IR_FAASO")x faaso with it off)"
fi

[ "$UPDATES" -gt 0 ] || exit 0
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
