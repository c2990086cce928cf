#!/usr/bin/env bash
# Bring up a single-node SLURM cluster (munged + slurmctld + slurmd) on this
# machine, for tests/CI. Idempotent: exits at once if the cluster already works.
# Run as root. No systemd needed: the daemons are started directly.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
# CI may run us with stdin closed: a daemon started so would open its log file
# as fd 0, lose it when it daemonizes, and then fail every job launch.
exec </dev/null

die() { echo "start_cluster.sh: ERROR: $*" >&2; exit 1; }
# start NAME CMD...: run a self-daemonizing CMD with its early output in a log,
# so it never holds the caller's stdout/stderr pipes open (subprocess capture).
start() {
    local name=$1; shift
    "$@" </dev/null >"$LOG_DIR/$name.start.log" 2>&1 ||
        die "$name failed to start: $(tail -n1 "$LOG_DIR/$name.start.log") (logs in $LOG_DIR)"
}
# alive PIDFILE NAME: the pid in PIDFILE is a running process called NAME.
alive() { local p; p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && [ "$(cat /proc/"$p"/comm 2>/dev/null)" = "$2" ]; }
stop() {   # stop PIDFILE NAME: stop that daemon (if alive) and wait for it
    alive "$1" "$2" || return 0
    kill "$(cat "$1")"
    for _ in $(seq 20); do alive "$1" "$2" || return 0; sleep 0.5; done
}
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

CONF=/etc/slurm/slurm.conf   # Debian's path
LOG_DIR=/var/log/slurm
HOST=$(hostname -s)

# The cluster "works" when munge, slurmctld and the local slurmd answer, the
# node is usable and the controller accepts jobs (--test-only submits nothing).
# Cheap checks first, with short timeouts: if munged is dead clients retry for
# seconds, if slurmctld is dead sinfo retries ~10 s, and if slurmd is dead the
# node still shows "idle" until SlurmdTimeout.
munge_ok() { timeout 2 munge -n 2>/dev/null | timeout 2 unmunge >/dev/null 2>&1; }
slurm_ok() {
    timeout 5 scontrol ping 2>/dev/null | grep 'is UP' >/dev/null &&
        timeout 5 scontrol show slurmd >/dev/null 2>&1 &&
        timeout 10 sinfo -h -o %T 2>/dev/null | grep -xE 'idle|mixed|allocated' >/dev/null &&
        timeout 10 sbatch --test-only --wrap true >/dev/null 2>&1
}
MUNGE_UP=0; munge_ok && MUNGE_UP=1
[ "$MUNGE_UP" = 1 ] && slurm_ok && { echo "start_cluster.sh: SLURM cluster already up"; exit 0; }

[ "$(id -u)" -eq 0 ] || die "must run as root"

# --- 1. Packages (non-interactive; stdin is /dev/null, see above) ---
if ! { command -v slurmctld && command -v slurmd && command -v munged; } >/dev/null; then
    command -v apt-get >/dev/null || die "slurmctld/slurmd/munged missing and no apt-get to install them"
    pkgs=(slurmctld slurmd slurm-client munge)
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${pkgs[@]}" || { apt-get update -q && apt-get install -y -q "${pkgs[@]}"; } ||
        die "apt-get install ${pkgs[*]} failed"
fi

# --- 2. Munge: key + daemon ---
install -d -m 0755 "$LOG_DIR"
install -d -o munge -g munge -m 0700 /etc/munge /var/log/munge
install -d -o munge -g munge -m 0711 /var/lib/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if [ "$MUNGE_UP" = 0 ]; then
    # A munged alive but not answering must go first: on exit it unlinks the
    # socket path, even when a newer munged owns it. --force: start even if a
    # killed munged left its socket/lock behind.
    stop /run/munge/munged.pid munged
    start munged runuser -u munge -- munged --force
    for _ in $(seq 20); do munge_ok && break; sleep 0.5; done
    munge_ok || die "munge does not work (munge -n | unmunge)"
fi

# --- 3. slurm.conf for this host ---
install -d -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd
# At least 2 CPUs: tests run one training on 2 processes (2 SLURM tasks on the node). On a 1-CPU machine the node
# claims 2 (config_overrides: slurmd believes slurm.conf, instead of draining a node with fewer CPUs than it says).
CPUS=$(nproc)
OVERRIDE=
if [ "$CPUS" -lt 2 ]; then CPUS=2; OVERRIDE=SlurmdParameters=config_overrides; fi
# RealMemory a bit under the total: slurmd drains a node that has less than it.
MEM=$(free -m | awk '/^Mem:/ {print int($2 * 0.95)}')
NEW=$(mktemp)
cat >"$NEW" <<EOF
# Written by tests/slurm/start_cluster.sh: minimal single-node cluster.
ClusterName=localcluster
# 127.0.0.1 everywhere: no dependence on DNS / /etc/hosts for the host name.
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
# No cgroups (containers/VMs): track processes via /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
# Allocate per core so several 1-CPU jobs share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Short timers so tests do not wait: schedule often, kill fast, forget fast.
SchedulerParameters=sched_interval=2,bf_interval=2
SlurmdTimeout=30
KillWait=2
MinJobAge=30
ReturnToService=2
# A requeued job waits for its credential to expire before it starts again (default 120 s).
AuthInfo=cred_expire=5
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
[ -z "$OVERRIDE" ] || echo "$OVERRIDE" >>"$NEW"
CHANGED=0
if ! cmp -s "$NEW" "$CONF"; then install -m 0644 "$NEW" "$CONF"; CHANGED=1; fi
rm -f "$NEW"

# --- 4. Daemons ---
for d in slurmctld slurmd; do
    pidf=/run/$d.pid
    [ "$CHANGED" = 0 ] || stop "$pidf" "$d"   # new config: restart
    if ! alive "$pidf" "$d"; then
        rm -f "$pidf"
        # slurmctld -c: drop saved job state. After a crash, state saved before
        # a job ended keeps it "running" forever, holding a CPU; a test cluster
        # is better off empty. slurmd -N: our NodeName, whatever the FQDN is.
        if [ "$d" = slurmctld ]; then args=(-c); else args=(-N "$HOST"); fi
        start "$d" "$d" "${args[@]}"
    fi
done

# --- 5. Wait (bounded) for the node to be idle; resume it if down/drained ---
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ]; do
    slurm_ok && { echo "start_cluster.sh: SLURM cluster up (node $HOST, $CPUS CPUs)"; exit 0; }
    state=$(timeout 3 sinfo -h -o %T 2>/dev/null | head -n1 || true)
    case "$state" in
        down*|drain*|fail*) scontrol update nodename="$HOST" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
die "node $HOST not idle after 60 s (state: ${state:-none}); see $LOG_DIR/slurmctld.log and slurmd.log"
