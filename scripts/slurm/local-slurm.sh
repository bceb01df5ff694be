#!/usr/bin/env bash
# A real one-node SLURM on loopback, for testing profiles/slurm (tests/test_slurm.py, .ci/run).
#
#   scripts/slurm/local-slurm.sh start     install (Debian packages) if needed, configure, start
#                                          munged + slurmctld + slurmd, wait for the node to be idle
#   scripts/slurm/local-slurm.sh stop      stop only the daemons this script started
#   scripts/slurm/local-slurm.sh status    print the daemons this script runs and sinfo
#
# One partition `debug` (default) holding this host, all its cores and 85% of its memory, and one
# fake GPU (gres/gpu backed by a character device, so GPU jobs schedule; SLURM sets
# CUDA_VISIBLE_DEVICES=0 in them). No accounting daemon: job state comes from squeue, so a Snakemake
# profile used against it needs `slurm-status-command: squeue`.
#
# Needs root (it starts daemons and writes /etc/slurm). No systemd is used. Every PID it starts is
# recorded under $STATE_DIR; `stop` signals exactly those PIDs and nothing else, and leaves a munged
# or slurm config that it did not create alone. Every wait is bounded.
set -euo pipefail

STATE_DIR=${LOCAL_SLURM_STATE_DIR:-/run/local-slurm}
SLURM_CONF_DIR=/etc/slurm
MARKER="# written by vrp scripts/slurm/local-slurm.sh"
PARTITION=debug
PACKAGES=(munge slurmctld slurmd slurm-client)
START_TIMEOUT=${LOCAL_SLURM_START_TIMEOUT:-60}

log() { echo "local-slurm: $*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it starts munged, slurmctld and slurmd)"
}

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${PACKAGES[*]} (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null; }
}

# alive PID_FILE: the PID recorded there runs
alive() { [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for SECONDS COMMAND...: poll COMMAND every 0.5 s until it succeeds or SECONDS pass
wait_for() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# record NAME SYSTEM_PID_FILE: copy a daemon's PID (it daemonized and wrote SYSTEM_PID_FILE) to ours
record() {
    wait_for 20 test -s "$2" || die "$1 wrote no pid file $2; see its log under /var/log"
    cp "$2" "$STATE_DIR/$1.pid"
    echo "$2" >"$STATE_DIR/$1.pidfile"
}

start_munge() {
    local pidfile=/run/munge/munged.pid
    if alive "$pidfile"; then
        log "munged already runs (not started here; stop leaves it)"
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0600 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge  # /run is tmpfs: nothing else creates it
    runuser -u munge -- /usr/sbin/munged
    record munged "$pidfile"
}

write_config() {
    local conf=$SLURM_CONF_DIR/slurm.conf
    if [[ -e $conf ]] && ! grep -qF "$MARKER" "$conf"; then
        die "$conf exists and was not written by this script; refusing to replace a real SLURM config"
    fi
    local host node_line memory
    host=$(hostname -s)
    getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >>/etc/hosts
    # The node's exact geometry from slurmd -C (a bare CPUs= makes slurmd reconfigure the sockets),
    # with RealMemory lowered to 85% of what it detects.
    node_line=$(slurmd -C | head -n 1)
    memory=$(sed -E 's/.*RealMemory=([0-9]+).*/\1/' <<<"$node_line")
    node_line=$(sed -E "s/RealMemory=[0-9]+/RealMemory=$((memory * 85 / 100))/" <<<"$node_line")

    # Fake GPU: gres/gpu needs a device file (a file-less Count=1 drains the node); a copy of /dev/null.
    local gpu_file=$STATE_DIR/fakegpu/gpu0
    mkdir -p "$STATE_DIR/fakegpu"
    [[ -c $gpu_file ]] || mknod "$gpu_file" c 1 3 2>/dev/null || gpu_file=/dev/null

    install -d -o slurm -g slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
    mkdir -p "$SLURM_CONF_DIR"
    cat >"$conf" <<EOF
$MARKER
ClusterName=vrpci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
ReturnToService=2
# keep finished jobs visible to squeue --states=all (the test reads them back)
MinJobAge=600
# a job without --mem must not take the whole node
DefMemPerCPU=1000
GresTypes=gpu
$node_line NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    cat >"$SLURM_CONF_DIR/gres.conf" <<EOF
$MARKER
Name=gpu File=$gpu_file
EOF
}

node_idle() { sinfo --noheader --partition "$PARTITION" --format %T | grep -qx idle; }

cmd_start() {
    need_root
    mkdir -p "$STATE_DIR"
    if alive "$STATE_DIR/slurmctld.pid" && alive "$STATE_DIR/slurmd.pid"; then
        log "already running"
        wait_for "$START_TIMEOUT" node_idle || die "node is not idle: $(sinfo -N -l 2>&1)"
        return 0
    fi
    install_packages
    start_munge
    write_config
    alive /run/slurmctld.pid && die "a slurmctld not started by this script runs; stop it first"
    alive /run/slurmd.pid && die "a slurmd not started by this script runs; stop it first"
    # -c: clean job and node state, so an old run's jobs never reappear
    slurmctld -c
    record slurmctld /run/slurmctld.pid
    slurmd -N "$(hostname -s)"
    record slurmd /run/slurmd.pid
    if ! wait_for "$START_TIMEOUT" node_idle; then
        log "node not idle after ${START_TIMEOUT}s:"
        sinfo -N -l >&2 || true
        tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
        exit 1
    fi
    log "up: partition $PARTITION, node $(hostname -s), 1 fake GPU"
}

stop_one() {
    local name=$1 pid pidfile
    [[ -s $STATE_DIR/$name.pid ]] || return 0
    pid=$(cat "$STATE_DIR/$name.pid")
    pidfile=$(cat "$STATE_DIR/$name.pidfile" 2>/dev/null || true)
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_for 20 bash -c "! kill -0 $pid"; then
            log "$name ($pid) ignored SIGTERM for 20 s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    # a stale system pid file breaks later package removal (the prerm runs scancel)
    if [[ -n $pidfile && -s $pidfile && $(cat "$pidfile") == "$pid" ]]; then
        rm -f "$pidfile"
    fi
    rm -f "$STATE_DIR/$name.pid" "$STATE_DIR/$name.pidfile"
    log "stopped $name ($pid)"
}

cmd_stop() {
    need_root
    [[ -d $STATE_DIR ]] || { log "nothing to stop"; return 0; }
    if alive "$STATE_DIR/slurmctld.pid"; then
        # jobs of this private cluster only; their steps would outlive slurmd otherwise
        timeout 10 scancel --quiet --full --state=RUNNING,PENDING --user=root 2>/dev/null || true
    fi
    stop_one slurmd
    stop_one slurmctld
    stop_one munged
}

cmd_status() {
    local name running=0
    for name in munged slurmctld slurmd; do
        if alive "$STATE_DIR/$name.pid"; then
            echo "$name: running (pid $(cat "$STATE_DIR/$name.pid"), started here)"
            running=1
        else
            echo "$name: not started here"
        fi
    done
    ((running)) && sinfo 2>/dev/null || true
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
