#!/usr/bin/env bash
# A throwaway ClickHouse server (Debian 12's clickhouse-server 18.16) for the
# integration test: loopback only, HTTPS with a certificate made here, a user with a
# password. Everything lives under DIR; nothing outside it is touched.
#
#   scripts/clickhouse-test-server.sh start DIR            start (or find running), wait for SELECT 1
#   scripts/clickhouse-test-server.sh stop DIR [--kill]    stop by pid (SIGTERM, then SIGKILL), bounded
#   scripts/clickhouse-test-server.sh restart DIR [--kill] stop + start, same ports, same data
#   scripts/clickhouse-test-server.sh status DIR           exit 0 if it answers SELECT 1
#
# --kill: SIGKILL at once, a crash (what the integration test does mid-shipping). A
# graceful stop (SIGTERM) closes the listening sockets but, in 18.16, keeps serving a
# kept-alive HTTP connection for as long as its client keeps sending (it ends once the
# connection idles for keep_alive_timeout, 3 s): a busy uploader never sees it go. The
# wait for that is bounded by CLICKHOUSE_STOP_TIMEOUT, then SIGKILL.
#
# What DIR holds:
#   ports.env    HTTP_PORT, HTTPS_PORT, TCP_PORT (free ports, chosen at the first start,
#                kept by restart), CLICKHOUSE_USER
#   server.crt   the self-signed certificate (SAN DNS:localhost, IP:127.0.0.1): a client's CA
#   password     the user's password (mode 0600); the config holds only its SHA-256
#   etc/ data/ log/  config, data and logs of the server; client.xml for clickhouse-client
#
# The package's service is not used (it does not start in a container). Environment:
#   CLICKHOUSE_START_TIMEOUT  seconds to wait for SELECT 1 (default 60)
#   CLICKHOUSE_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 30)
set -euo pipefail

readonly USER_NAME=flightlog
readonly START_TIMEOUT=${CLICKHOUSE_START_TIMEOUT:-60}
readonly STOP_TIMEOUT=${CLICKHOUSE_STOP_TIMEOUT:-30}
readonly SERVER_BIN=${CLICKHOUSE_SERVER_BIN:-/usr/sbin/clickhouse-server}
readonly CLIENT_BIN=${CLICKHOUSE_CLIENT_BIN:-/usr/bin/clickhouse-client}
readonly PKG_CONFIG_DIR=/etc/clickhouse-server

die() {
  echo "clickhouse-test-server: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 {start|stop|restart|status} DIR [--kill]" >&2
  exit 2
}

# The pid of our server if it is alive (and really a clickhouse-server), else nothing.
server_pid() {
  local pid
  [ -f "$DIR/server.pid" ] || return 0
  pid=$(cat "$DIR/server.pid" 2>/dev/null || true)
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  [ -r "/proc/$pid/cmdline" ] || return 0
  # A recycled pid must not be mistaken for (and killed as) our server.
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "clickhouse-server.*--config-file=$DIR/etc/config.xml" || return 0
  # A zombie is not a server.
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 0
  echo "$pid"
}

# Ports something listens on (IPv4 and IPv6), from /proc: no tools needed (the hex
# is converted in bash: mawk, Debian's awk, has no strtonum).
listening_ports() {
  local hex
  awk 'NR > 1 && $4 == "0A" { split($2, a, ":"); print a[2] }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null | while read -r hex; do
    echo $((16#$hex))
  done | sort -un
}

# N distinct ports that nothing listens on, below the kernel's ephemeral range.
pick_free_ports() {
  local n=$1 used port tries=0 chosen=()
  used=" $(listening_ports | tr '\n' ' ') "
  while [ "${#chosen[@]}" -lt "$n" ]; do
    tries=$((tries + 1))
    [ "$tries" -lt 1000 ] || die "no free port found"
    port=$((20000 + RANDOM % 12000))
    case "$used" in *" $port "*) continue ;; esac
    case " ${chosen[*]-} " in *" $port "*) continue ;; esac
    chosen+=("$port")
  done
  echo "${chosen[@]}"
}

port_listening() {
  listening_ports | grep -qx "$1"
}

# The certificate (kept across restarts: clients trust this very file) and the password.
make_secrets() {
  if [ ! -s "$DIR/server.crt" ] || [ ! -s "$DIR/server.key" ]; then
    (umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 \
      -keyout "$DIR/server.key" -out "$DIR/server.crt" -subj /CN=localhost \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$DIR/log/openssl.log" 2>&1) ||
      die "openssl could not make the certificate: $(tail -n 5 "$DIR/log/openssl.log")"
    chmod 0644 "$DIR/server.crt"
  fi
  if [ ! -s "$DIR/password" ]; then
    (umask 077 && openssl rand -hex 16 >"$DIR/password.tmp" && mv "$DIR/password.tmp" "$DIR/password")
  fi
  chmod 0600 "$DIR/password" "$DIR/server.key"
}

# Edits a copy of the package's config.xml and users.xml; checks that every edit took,
# so that a changed package fails here, loudly, rather than in the test.
write_config() {
  local password hash etc=$DIR/etc
  password=$(cat "$DIR/password")
  hash=$(printf %s "$password" | sha256sum | cut -d' ' -f1)
  mkdir -p "$etc"
  if [ ! -r "$PKG_CONFIG_DIR/config.xml" ] || [ ! -r "$PKG_CONFIG_DIR/users.xml" ]; then
    die "$PKG_CONFIG_DIR/config.xml or users.xml missing: run scripts/install-deps.sh"
  fi

  sed -e "s#/var/lib/clickhouse/#$DIR/data/#g" \
    -e "s#/var/log/clickhouse-server/#$DIR/log/#g" \
    -e "s#<level>[a-z]*</level>#<level>information</level>#" \
    -e "s#<http_port>[0-9]*</http_port>#<http_port>$HTTP_PORT</http_port>\n    <https_port>$HTTPS_PORT</https_port>\n    <listen_host>127.0.0.1</listen_host> <!-- flightlog: IPv4 loopback only -->#" \
    -e "s#<tcp_port>[0-9]*</tcp_port>#<tcp_port>$TCP_PORT</tcp_port>#" \
    -e "/<https_port>8443<\/https_port>/d" \
    -e "/<interserver_http_port>/d" \
    -e "/<dhParamsFile>/d" \
    -e "s#<certificateFile>[^<]*</certificateFile>#<certificateFile>$DIR/server.crt</certificateFile>#" \
    -e "s#<privateKeyFile>[^<]*</privateKeyFile>#<privateKeyFile>$DIR/server.key</privateKeyFile>#" \
    -e "s#<mark_cache_size>[0-9]*</mark_cache_size>#<mark_cache_size>268435456</mark_cache_size>#" \
    -e "s#<uncompressed_cache_size>[0-9]*</uncompressed_cache_size>#<uncompressed_cache_size>268435456</uncompressed_cache_size>#" \
    -e 's# incl="clickhouse_remote_servers"##' \
    -e 's# incl="clickhouse_compression"##' \
    "$PKG_CONFIG_DIR/config.xml" >"$etc/config.xml.tmp"

  local want
  for want in "<http_port>$HTTP_PORT</http_port>" "<https_port>$HTTPS_PORT</https_port>" \
    "<tcp_port>$TCP_PORT</tcp_port>" "<listen_host>127.0.0.1</listen_host> <!-- flightlog" \
    "<certificateFile>$DIR/server.crt</certificateFile>" \
    "<privateKeyFile>$DIR/server.key</privateKeyFile>" "<path>$DIR/data/</path>" \
    "<log>$DIR/log/clickhouse-server.log</log>"; do
    [ "$(grep -cF -- "$want" "$etc/config.xml.tmp")" = 1 ] ||
      die "could not adapt $PKG_CONFIG_DIR/config.xml (no single $want)"
  done
  for want in dhParamsFile interserver_http_port /var/lib/clickhouse /var/log/clickhouse-server; do
    ! grep -q -- "$want" "$etc/config.xml.tmp" ||
      die "could not adapt $PKG_CONFIG_DIR/config.xml ($want remains)"
  done
  mv "$etc/config.xml.tmp" "$etc/config.xml"

  # Users: ours with a password (SHA-256 only in the file), loopback only; the
  # package's password-less users are limited to loopback too.
  sed -e 's#<ip>::/0</ip>#<ip>127.0.0.1</ip><ip>::1</ip>#' \
    -e 's# incl="networks"##' \
    -e "s#^\( *\)<users>\$#&\n\1    <$USER_NAME>\n\1        <password_sha256_hex>$hash</password_sha256_hex>\n\1        <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>\n\1        <profile>default</profile>\n\1        <quota>default</quota>\n\1    </$USER_NAME>#" \
    "$PKG_CONFIG_DIR/users.xml" >"$etc/users.xml.tmp"
  [ "$(grep -c "<password_sha256_hex>$hash</password_sha256_hex>" "$etc/users.xml.tmp")" = 1 ] ||
    die "could not adapt $PKG_CONFIG_DIR/users.xml (user $USER_NAME not added)"
  ! grep -q '::/0' "$etc/users.xml.tmp" || die "could not adapt $PKG_CONFIG_DIR/users.xml (::/0 remains)"
  mv "$etc/users.xml.tmp" "$etc/users.xml"

  # For clickhouse-client (and people debugging): host, port, user, password.
  (umask 077 && cat >"$etc/client.xml" <<EOF
<config>
    <host>127.0.0.1</host>
    <port>$TCP_PORT</port>
    <user>$USER_NAME</user>
    <password>$password</password>
</config>
EOF
  )
}

client_query() {
  timeout 10 "$CLIENT_BIN" --config-file="$DIR/etc/client.xml" --query "$1" 2>&1
}

answers() {
  [ "$(client_query 'SELECT 1' 2>/dev/null)" = 1 ] && port_listening "$HTTPS_PORT"
}

load_ports() {
  # shellcheck disable=SC1091
  [ -f "$DIR/ports.env" ] && . "$DIR/ports.env"
  [ -n "${HTTP_PORT:-}" ] && [ -n "${HTTPS_PORT:-}" ] && [ -n "${TCP_PORT:-}" ]
}

log_tail() {
  local f
  for f in "$DIR/log/stdout.log" "$DIR/log/clickhouse-server.err.log"; do
    [ -s "$f" ] || continue
    echo "--- last lines of $f:"
    tail -n 25 "$f"
  done
}

do_start() {
  [ -x "$SERVER_BIN" ] || die "$SERVER_BIN not found: run scripts/install-deps.sh"
  mkdir -p "$DIR/data" "$DIR/log" "$DIR/etc"
  local pid
  pid=$(server_pid)
  if [ -n "$pid" ]; then
    load_ports || die "server $pid runs but $DIR/ports.env is missing"
    if answers; then
      echo "clickhouse-test-server: already running (pid $pid, https $HTTPS_PORT)"
      return 0
    fi
    # Running but not (yet) answering: give it the same bounded wait.
  else
    if ! load_ports; then
      read -r HTTP_PORT HTTPS_PORT TCP_PORT <<<"$(pick_free_ports 3)"
      cat >"$DIR/ports.env.tmp" <<EOF
HTTP_PORT=$HTTP_PORT
HTTPS_PORT=$HTTPS_PORT
TCP_PORT=$TCP_PORT
CLICKHOUSE_USER=$USER_NAME
EOF
      mv "$DIR/ports.env.tmp" "$DIR/ports.env"
    fi
    make_secrets
    write_config
    # Detached: its own session, no inherited descriptors (a caller's pipes or locks
    # must not stay open in the server), output to a log.
    (
      cd "$DIR"
      for fd in "/proc/$BASHPID/fd/"*; do
        fd=${fd##*/}
        if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
      done
      exec setsid "$SERVER_BIN" --config-file="$DIR/etc/config.xml" \
        </dev/null >>"$DIR/log/stdout.log" 2>&1
    ) &
    pid=$!
    echo "$pid" >"$DIR/server.pid"
  fi

  local deadline=$((SECONDS + START_TIMEOUT))
  while ! answers; do
    if [ -z "$(server_pid)" ]; then
      echo "clickhouse-test-server: the server exited during start-up" >&2
      log_tail >&2
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "clickhouse-test-server: no answer to SELECT 1 within ${START_TIMEOUT}s" >&2
      client_query 'SELECT 1' | tail -n 3 >&2 || true
      log_tail >&2
      do_stop >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  echo "clickhouse-test-server: running (pid $pid): https://127.0.0.1:$HTTPS_PORT/ http $HTTP_PORT tcp $TCP_PORT, user $USER_NAME, dir $DIR"
}

do_stop() {
  local pid
  pid=$(server_pid)
  if [ -z "$pid" ]; then
    rm -f "$DIR/server.pid"
    echo "clickhouse-test-server: not running"
    return 0
  fi
  if [ "$HARD" = 1 ]; then
    kill -KILL "$pid" 2>/dev/null || true
  else
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while [ -n "$(server_pid)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  fi
  if [ -n "$(server_pid)" ]; then
    [ "$HARD" = 1 ] || echo "clickhouse-test-server: pid $pid still up ${STOP_TIMEOUT}s after SIGTERM: SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 10))
    while [ -n "$(server_pid)" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    [ -z "$(server_pid)" ] || die "pid $pid survived SIGKILL"
  fi
  rm -f "$DIR/server.pid"
  if [ "$HARD" = 1 ]; then
    echo "clickhouse-test-server: killed (pid $pid)"
  else
    echo "clickhouse-test-server: stopped (pid $pid)"
  fi
}

do_status() {
  local pid
  pid=$(server_pid)
  if [ -z "$pid" ]; then
    echo "clickhouse-test-server: not running"
    return 3
  fi
  load_ports || die "server $pid runs but $DIR/ports.env is missing"
  if answers; then
    echo "clickhouse-test-server: running (pid $pid): https://127.0.0.1:$HTTPS_PORT/ http $HTTP_PORT tcp $TCP_PORT"
    return 0
  fi
  echo "clickhouse-test-server: pid $pid does not answer SELECT 1"
  return 1
}

[ "$#" -eq 2 ] || [ "$#" -eq 3 ] || usage
cmd=$1
[ -n "$2" ] || usage
HARD=0
if [ "$#" -eq 3 ]; then
  case "$cmd $3" in
    "stop --kill" | "restart --kill") HARD=1 ;;
    *) usage ;;
  esac
fi
readonly HARD
# DIR goes into sed expressions and XML: keep it to plain path characters.
case "$2" in *[\#\&\\\ \<\>]*) die "DIR may not contain '#', '&', '<', '>', a backslash or a space: $2" ;; esac
mkdir -p "$2"
DIR=$(cd "$2" && pwd -P)
readonly DIR

case "$cmd" in
  start) do_start ;;
  stop) do_stop ;;
  restart)
    do_stop
    do_start
    ;;
  status) do_status ;;
  *) usage ;;
esac
