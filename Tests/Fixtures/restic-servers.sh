#!/usr/bin/env bash
# Throwaway restic back-end servers for Tests/IntegrationTests/Commands/Copy/Restic*.swift (run as root).
#   restic-servers.sh sshd-up DIR PORT   an sshd on 127.0.0.1:PORT with its own host key, accepting
#                                        root with DIR/client_key only; DIR/sftp-command is the
#                                        ssh command line for restic's -o sftp.command=
#   restic-servers.sh rest-up DIR PORT   `rclone serve restic` on 127.0.0.1:PORT storing in DIR/rest
#   restic-servers.sh s3-up DIR PORT     moto's S3 server on 127.0.0.1:PORT (in memory; any access key
#                                        works), from the virtualenv scripts/install-deps.sh makes
#                                        (MSB_MOTO_VENV, default /var/cache/maas-snapshot-backup-tests/venv)
#   restic-servers.sh down DIR           stops what DIR's pid files name (waits until the port closes)
# Every daemon runs in its own session with its output in DIR/*.log, so the caller's pipes close.
set -euo pipefail
cmd=${1:?usage: restic-servers.sh sshd-up|rest-up|down DIR [PORT]}
dir=${2:?DIR missing}
case $dir in /*) ;; *) echo "restic-servers.sh: DIR must be absolute" >&2; exit 64 ;; esac

wait_port() { # PORT NAME LOG: until something accepts on 127.0.0.1:PORT (10 s)
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "restic-servers.sh: $2 did not listen on port $1; its log:" >&2
  cat "$3" >&2 || true
  exit 1
}

port_closed() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case $cmd in
sshd-up)
  port=${3:?PORT missing}
  mkdir -p "$dir" && chmod 700 "$dir"
  rm -f "$dir"/host_key* "$dir"/client_key*
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys" && chmod 600 "$dir/authorized_keys"
  mkdir -p /run/sshd && chmod 755 /run/sshd   # sshd's privilege separation folder
  cat > "$dir/sshd_config" <<CFG
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
Subsystem sftp internal-sftp
LogLevel ERROR
CFG
  setsid /usr/sbin/sshd -D -e -f "$dir/sshd_config" </dev/null >"$dir/sshd.log" 2>&1 &
  echo $! > "$dir/sshd.pid.launch"
  echo "$port" > "$dir/sshd.port"
  printf 'ssh -p %s -i %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR root@127.0.0.1 -s sftp\n' \
    "$port" "$dir/client_key" > "$dir/sftp-command"
  wait_port "$port" sshd "$dir/sshd.log"
  ;;
rest-up)
  port=${3:?PORT missing}
  mkdir -p "$dir/rest"
  setsid rclone serve restic --addr "127.0.0.1:$port" "$dir/rest" </dev/null >"$dir/rest.log" 2>&1 &
  echo $! > "$dir/rest.pid.launch"
  echo "$port" > "$dir/rest.port"
  wait_port "$port" "rclone serve restic" "$dir/rest.log"
  ;;
s3-up)
  port=${3:?PORT missing}
  venv=${MSB_MOTO_VENV:-/var/cache/maas-snapshot-backup-tests/venv}
  [ -x "$venv/bin/moto_server" ] || { echo "restic-servers.sh: $venv/bin/moto_server is missing (scripts/install-deps.sh makes it)" >&2; exit 69; }
  mkdir -p "$dir"
  # Started through a link in DIR, so its command line names DIR (down kills only what is ours).
  ln -sfn "$venv/bin/moto_server" "$dir/moto_server"
  setsid "$dir/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$dir/s3.log" 2>&1 &
  echo $! > "$dir/s3.pid.launch"
  echo "$port" > "$dir/s3.port"
  wait_port "$port" "moto_server" "$dir/s3.log"
  ;;
down)
  for name in sshd rest s3; do
    [ -f "$dir/$name.pid.launch" ] || continue
    pid=$(cat "$dir/$name.pid.launch")
    port=$(cat "$dir/$name.port" 2>/dev/null || echo 0)
    # Only the process this script started: its command line must still be ours.
    if grep -qa -e "$dir" "/proc/$pid/cmdline" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$dir/$name.pid.launch"
    # A killed daemon may linger as a zombie (late reaping): wait for its port, not for the PID.
    for _ in $(seq 1 50); do port_closed "$port" && break; sleep 0.1; done
  done
  ;;
*) echo "restic-servers.sh: unknown command $cmd" >&2; exit 64 ;;
esac
