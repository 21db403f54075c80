#!/bin/sh
# Prepares this host for kubeadm from the offline package; run as `cd shell && sh init.sh`
# (bootstrap init/join do that over SSH). POSIX sh only: hosts have no Python.
#
#   bin/*            -> /usr/local/bin (0755);  bin/cni/* -> /opt/cni/bin
#   conf/kubelet.service, conf/10-kubeadm.conf -> /etc/systemd/system (+ enable kubelet)
#   swap off now, and its /etc/fstab lines commented out ("#lvscare-py# ...")
#   kernel modules loaded now and at boot (/etc/modules-load.d/lvscare-py.conf)
#   sysctls kubeadm checks, now and at boot (/etc/sysctl.d/lvscare-py.conf)
#   the container runtime found -> /etc/lvscare-py/runtime.env (bootstrap reads it)
#   images/*.tar, images/*.tar.gz imported into that runtime
#
# Every change is recorded in /var/lib/lvscare-py-init (a file before it is written, an image
# as soon as it is imported), so that clean.sh undoes exactly that and nothing else. Run
# again, it finds everything in place, changes nothing and says so. A file already there
# that init.sh did not put there and that differs from the package's is saved in the record
# and replaced (with a warning); clean.sh puts it back. A file init.sh put there that
# someone changed since is left alone (with a warning).
set -eu

REC=/var/lib/lvscare-py-init
ENV_FILE=/etc/lvscare-py/runtime.env
MODULES_FILE=/etc/modules-load.d/lvscare-py.conf
SYSCTL_FILE=/etc/sysctl.d/lvscare-py.conf
FSTAB=/etc/fstab
MARK='#lvscare-py# '
CONTAINERD_SOCK=/run/containerd/containerd.sock
DOCKER_SOCK=/var/run/docker.sock
CRI_DOCKERD_SOCK=/run/cri-dockerd.sock
# ip_vs*: lvscare's virtual server and its schedulers; nf_conntrack and br_netfilter:
# kube-proxy and the bridge sysctls below; overlay: the runtime's snapshotter.
MODULES="ip_vs ip_vs_rr ip_vs_wrr ip_vs_sh nf_conntrack br_netfilter overlay"
SYSCTLS="net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1 net.ipv4.ip_forward=1"
WAIT=60 # seconds a runtime may take to answer

# sudo or a bare SSH session may leave the sbin directories off PATH (modprobe, swapoff).
PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

PKG=$(cd "$(dirname "$0")/.." && pwd)
CHANGES=0
PENDING= # a temporary file being written: removed if init.sh stops before renaming it
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"; if [ -n "$PENDING" ]; then rm -f "$PENDING"; fi' EXIT
trap 'exit 1' HUP INT TERM

say() { echo "init.sh: $*"; }
warn() { echo "init.sh: warning: $*" >&2; }
die() {
    echo "init.sh: error: $*" >&2
    exit 1
}
changed() {
    CHANGES=$((CHANGES + 1))
    say "$*"
}

# The sha256 of a file's bytes; nothing for a missing file (or a dangling link).
sha_of() {
    if [ -f "$1" ]; then sha256sum <"$1" | cut -c1-64; fi
}

exists() { [ -e "$1" ] || [ -L "$1" ]; }

# The sha256 the record holds for file $1 (what init.sh put there), or nothing.
recorded() {
    if [ -f "$REC/files" ]; then
        awk -v p="$1" 'substr($0, 67) == p { s = substr($0, 1, 64) } END { if (s != "") print s }' \
            "$REC/files"
    fi
}

# Record that file $1 holds bytes with sha256 $2 because of init.sh (one line per file).
record_file() {
    {
        if [ -f "$REC/files" ]; then awk -v p="$1" 'substr($0, 67) != p' "$REC/files"; fi
        printf '%s  %s\n' "$2" "$1"
    } >"$REC/files.new"
    mv -f "$REC/files.new" "$REC/files"
}

# Directory $1 and its missing parents, each recorded (clean.sh removes them when empty).
make_dir() {
    if [ -d "$1" ]; then return 0; fi
    make_dir "$(dirname "$1")"
    printf '%s\n' "$1" >>"$REC/dirs"
    mkdir -m 0755 "$1"
}

# A copy of file $1 as it is now in the record, unless an earlier one is kept there already
# (that one is how the host was before init.sh first ran).
backup() {
    bk="$REC/backup$1"
    if exists "$bk"; then return 0; fi
    mkdir -p "$(dirname "$bk")"
    cp -Pp "$1" "$bk.new"
    mv -f "$bk.new" "$bk"
}

# Replace file $2 with temporary file $1 (beside it); a bind-mounted file is written in place.
replace() {
    if ! mv -f "$1" "$2" 2>/dev/null; then
        cat "$1" >"$2"
        rm -f "$1"
    fi
}

# put_file SRC DEST MODE: DEST gets SRC's bytes and MODE, written beside it and renamed over it.
put_file() {
    pf_src=$1 pf_dest=$2 pf_mode=$3
    if [ -d "$pf_dest" ] && [ ! -L "$pf_dest" ]; then
        die "$pf_dest is a directory; the package has a file for that place"
    fi
    pf_want=$(sha_of "$pf_src")
    pf_have=$(sha_of "$pf_dest")
    pf_ours=$(recorded "$pf_dest")
    if [ -n "$pf_have" ] && [ "$pf_have" = "$pf_want" ]; then
        if [ -n "$pf_ours" ]; then
            say "$pf_dest: in place"
        else
            say "$pf_dest: already there, the same as the package's (left to its owner)"
        fi
        return 0
    fi
    if exists "$pf_dest"; then
        if [ -n "$pf_ours" ] && [ "$pf_have" != "$pf_ours" ]; then
            warn "$pf_dest changed since init.sh put it there: left as it is (the package's: $pf_src)"
            return 0
        fi
        if [ -z "$pf_ours" ] && exists "$REC/backup$pf_dest" && [ "$(sha_of "$REC/backup$pf_dest")" != "$pf_have" ]; then
            warn "$pf_dest is not the package's, and $REC/backup$pf_dest keeps another file" \
                "that was there: left as it is (move one of them away, then run init.sh again)"
            return 0
        fi
        if [ -z "$pf_ours" ]; then
            backup "$pf_dest"
            warn "$pf_dest was there before and differs from the package's: replaced;" \
                "the old one is kept as $REC/backup$pf_dest and clean.sh puts it back"
        fi
    fi
    make_dir "$(dirname "$pf_dest")"
    record_file "$pf_dest" "$pf_want"
    PENDING="$pf_dest.lvscare-py-new"
    cp "$pf_src" "$PENDING"
    chmod "$pf_mode" "$PENDING"
    mv -f "$PENDING" "$pf_dest"
    PENDING=
    changed "installed $pf_dest"
}

check_tools() {
    for tool in awk sed gzip sha256sum modprobe swapoff timeout mktemp; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed; init.sh needs it"
    done
}

containerd_answers() {
    if [ ! -S "$CONTAINERD_SOCK" ]; then
        why_containerd="no socket $CONTAINERD_SOCK"
    elif ! command -v ctr >/dev/null 2>&1; then
        why_containerd="$CONTAINERD_SOCK is there but ctr is not installed"
    elif ! out=$(timeout "$WAIT" ctr -a "$CONTAINERD_SOCK" version 2>&1); then
        why_containerd="ctr version: $(printf '%s\n' "$out" | tail -n 1)"
    else
        return 0
    fi
    return 1
}

# Docker's containerd (docker-ce's containerd.io) runs with its CRI plugin disabled:
# kubelet cannot use that one.
containerd_cri_runs() {
    timeout "$WAIT" ctr -a "$CONTAINERD_SOCK" plugins ls 2>/dev/null |
        awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" && $NF == "ok" { found = 1 } END { exit !found }'
}

docker_answers() {
    if [ ! -S "$DOCKER_SOCK" ]; then
        why_docker="no socket $DOCKER_SOCK"
    elif ! command -v docker >/dev/null 2>&1; then
        why_docker="$DOCKER_SOCK is there but docker is not installed"
    elif ! out=$(timeout "$WAIT" docker -H "unix://$DOCKER_SOCK" info --format '{{.CgroupDriver}}' 2>"$TMP/docker.err"); then
        why_docker="docker info: $(tail -n 1 "$TMP/docker.err")"
    else
        docker_driver=$(printf '%s\n' "$out" | tail -n 1)
        return 0
    fi
    return 1
}

use_containerd() {
    RUNTIME=containerd
    CRI_SOCKET="unix://$CONTAINERD_SOCK"
    containerd_cgroup_driver
}

use_docker() {
    RUNTIME=docker
    CGROUP_DRIVER=$docker_driver
    DRIVER_FROM="docker info"
    # Kubernetes 1.24 and later talk to Docker only through cri-dockerd.
    CRI_SOCKET="unix://$CRI_DOCKERD_SOCK"
    if [ ! -S "$CRI_DOCKERD_SOCK" ]; then
        warn "Docker runs, but kubelet reaches it only through cri-dockerd," \
            "and there is no $CRI_DOCKERD_SOCK"
    fi
}

# The runtime kubelet is to use, its cgroup driver and CRI socket (RUNTIME, CGROUP_DRIVER,
# DRIVER_FROM, CRI_SOCKET): containerd with its CRI plugin, else Docker. Nothing is changed
# before this is known.
detect_runtime() {
    if containerd_answers; then
        if containerd_cri_runs; then
            use_containerd
        elif docker_answers; then
            say "containerd runs without its CRI plugin (Docker's containerd): Docker it is"
            use_docker
        else
            warn "containerd runs without its CRI plugin (disabled_plugins in its" \
                "configuration?): kubelet cannot use it until it does"
            use_containerd
        fi
    elif docker_answers; then
        use_docker
    else
        die "no container runtime answers (containerd: $why_containerd; Docker: $why_docker):" \
            "start containerd or Docker, then run init.sh again"
    fi
}

# containerd's cgroup driver: systemd when its runc options say SystemdCgroup = true, else
# cgroupfs. Read from the configuration of the containerd process that listens on the socket
# (its --config, else the default file; `containerd config dump` merges it with the
# defaults), as that process sees its files; else from the default file.
containerd_cgroup_driver() {
    if running_containerd_config; then
        :
    elif command -v containerd >/dev/null 2>&1 && containerd config dump >"$TMP/containerd.toml" 2>/dev/null; then
        DRIVER_FROM="containerd config dump"
    elif [ -f /etc/containerd/config.toml ]; then
        cp /etc/containerd/config.toml "$TMP/containerd.toml"
        DRIVER_FROM=/etc/containerd/config.toml
    else
        : >"$TMP/containerd.toml"
        DRIVER_FROM="containerd's defaults (no /etc/containerd/config.toml)"
    fi
    if grep -Eq '^[[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*true' "$TMP/containerd.toml"; then
        CGROUP_DRIVER=systemd
    else
        CGROUP_DRIVER=cgroupfs
    fi
}

# The argument after option $1 (or its short form $2, or --$1=...) in the argv lines of $3.
argv_value() {
    awk -v long="$1" -v short="$2" '
        p == long || (short != "" && p == short) { print; exit }
        index($0, long "=") == 1 { print substr($0, length(long) + 2); exit }
        { p = $0 }' "$3"
}

# Fails when no containerd process (in /proc) is the one behind CONTAINERD_SOCK.
running_containerd_config() {
    command -v containerd >/dev/null 2>&1 || return 1
    rc_want=$(stat -L -c %d:%i "$CONTAINERD_SOCK" 2>/dev/null) || return 1
    for rc_proc in /proc/[0-9]*; do
        rc_comm=
        read -r rc_comm 2>/dev/null <"$rc_proc/comm" || continue
        [ "$rc_comm" = containerd ] || continue
        tr '\0' '\n' 2>/dev/null <"$rc_proc/cmdline" >"$TMP/argv" || continue
        rc_conf=$(argv_value --config -c "$TMP/argv")
        rc_conf=${rc_conf:-/etc/containerd/config.toml}
        case $rc_conf in /*) ;; *) rc_conf=$(readlink "$rc_proc/cwd")/$rc_conf ;; esac
        containerd --config "$rc_proc/root$rc_conf" config dump >"$TMP/containerd.toml" 2>/dev/null ||
            continue
        rc_addr=$(argv_value --address -a "$TMP/argv")
        if [ -z "$rc_addr" ]; then
            rc_addr=$(awk '/^\[/ { grpc = ($0 == "[grpc]") } grpc && $1 == "address" { gsub(/"/, "", $3); print $3; exit }' \
                "$TMP/containerd.toml")
        fi
        if [ "$(stat -L -c %d:%i "$rc_proc/root$rc_addr" 2>/dev/null)" = "$rc_want" ]; then
            DRIVER_FROM="the configuration of containerd (pid ${rc_proc#/proc/}): $rc_conf"
            return 0
        fi
    done
    return 1
}

load_modules() {
    loaded=0
    for m in $MODULES; do
        if [ -d "/sys/module/$m" ]; then continue; fi
        if ! out=$(modprobe "$m" 2>&1); then
            die "cannot load kernel module $m (modprobe $m: ${out:-no message})"
        fi
        if [ -d "/sys/module/$m" ]; then
            loaded=$((loaded + 1))
            changed "loaded kernel module $m"
        else
            say "kernel module $m: built into the kernel"
        fi
    done
    if [ "$loaded" -eq 0 ]; then say "kernel modules: all loaded already"; fi
}

install_bin() {
    for f in "$PKG"/bin/*; do
        if [ -f "$f" ]; then put_file "$f" "/usr/local/bin/${f##*/}" 0755; fi
    done
    for f in "$PKG"/bin/cni/*; do
        if [ -f "$f" ]; then put_file "$f" "/opt/cni/bin/${f##*/}" 0755; fi
    done
}

install_units() {
    for f in kubelet.service 10-kubeadm.conf; do
        [ -f "$PKG/conf/$f" ] || die "the package has no conf/$f"
    done
    put_file "$PKG/conf/kubelet.service" /etc/systemd/system/kubelet.service 0644
    put_file "$PKG/conf/10-kubeadm.conf" /etc/systemd/system/kubelet.service.d/10-kubeadm.conf 0644
}

# fstab's swap devices (field 1), also those init.sh commented out, resolved to device paths.
fstab_swaps() {
    if [ ! -f "$FSTAB" ]; then return 0; fi
    awk -v mark="$MARK" '
        index($0, mark) == 1 { $0 = substr($0, length(mark) + 1) }
        $0 !~ /^[ \t]*#/ && $3 == "swap" { print $1 }' "$FSTAB" |
        while read -r spec; do
            case $spec in
            UUID=*) spec=/dev/disk/by-uuid/${spec#UUID=} ;;
            LABEL=*) spec=/dev/disk/by-label/${spec#LABEL=} ;;
            PARTUUID=*) spec=/dev/disk/by-partuuid/${spec#PARTUUID=} ;;
            PARTLABEL=*) spec=/dev/disk/by-partlabel/${spec#PARTLABEL=} ;;
            esac
            readlink -f "$spec" 2>/dev/null || printf '%s\n' "$spec"
        done
}

# Swap off now and at boot. Swap that is on but not in fstab was turned on by something
# else (a systemd unit, zram-generator, a script) that will do it again at every boot.
swap_off() {
    fstab_swaps >"$TMP/fstab-swaps"
    : >"$TMP/active-swaps"
    if [ -r /proc/swaps ]; then awk 'NR > 1 { print $1 }' /proc/swaps >"$TMP/active-swaps"; fi
    while read -r dev; do
        if ! grep -qxF "$(readlink -f "$dev" 2>/dev/null || echo "$dev")" "$TMP/fstab-swaps"; then
            warn "swap $dev is on but not in $FSTAB: whatever turned it on will do so again at" \
                "boot, and kubelet then refuses to start; turn that off too"
        fi
    done <"$TMP/active-swaps"

    if [ -f "$FSTAB" ] && awk '$0 !~ /^[ \t]*#/ && $3 == "swap" { found = 1 } END { exit !found }' "$FSTAB"; then
        backup "$FSTAB"
        awk -v mark="$MARK" '$0 !~ /^[ \t]*#/ && $3 == "swap" { print mark $0; next } { print }' \
            "$FSTAB" >"$TMP/fstab"
        PENDING="$FSTAB.lvscare-py-new"
        cp -p "$FSTAB" "$PENDING" # owner and mode
        cat "$TMP/fstab" >"$PENDING"
        sha_of "$PENDING" >"$REC/fstab"
        replace "$PENDING" "$FSTAB"
        PENDING=
        changed "commented out the swap lines of $FSTAB (marked '$MARK')"
    elif [ -f "$FSTAB" ] && grep -q "^$MARK" "$FSTAB"; then
        say "$FSTAB: swap lines commented out already"
    else
        say "$FSTAB: no swap lines"
    fi

    if [ -s "$TMP/active-swaps" ]; then
        if ! out=$(swapoff -a 2>&1); then
            die "swapoff -a failed: ${out:-no message}"
        fi
        changed "turned swap off (swapoff -a)"
    else
        say "swap: off already"
    fi
}

# kubelet.service known to systemd and enabled, when systemd runs this host.
systemd_units() {
    if [ ! -d /run/systemd/system ]; then
        say "systemd does not run here: kubelet.service not enabled (start kubelet with this" \
            "host's init system)"
        return 0
    fi
    if [ "$1" = reload ]; then
        systemctl daemon-reload
        say "systemctl daemon-reload"
    fi
    if systemctl is-enabled --quiet kubelet.service 2>/dev/null; then
        say "kubelet.service: enabled already"
    else
        : >"$REC/kubelet-enabled"
        systemctl enable kubelet.service
        changed "enabled kubelet.service"
    fi
}

boot_files() {
    {
        echo "# Written by the offline package's shell/init.sh (lvscare-py); clean.sh removes it."
        echo "# IPVS for lvscare, conntrack and br_netfilter for kube-proxy, overlay for the runtime."
        for m in $MODULES; do echo "$m"; done
    } >"$TMP/modules.conf"
    put_file "$TMP/modules.conf" "$MODULES_FILE" 0644
    {
        echo "# Written by the offline package's shell/init.sh (lvscare-py); clean.sh removes it."
        echo "# What kubeadm's preflight checks; br_netfilter (modules-load.d) makes net.bridge."
        for kv in $SYSCTLS; do echo "${kv%%=*} = ${kv#*=}"; done
    } >"$TMP/sysctl.conf"
    put_file "$TMP/sysctl.conf" "$SYSCTL_FILE" 0644
}

# The sysctls now: what `sysctl -p` does, written to /proc/sys (no procps needed). The
# values are not recorded: clean.sh leaves them until the next boot.
apply_sysctls() {
    set_now=0
    for kv in $SYSCTLS; do
        key=${kv%%=*} value=${kv#*=}
        f=/proc/sys/$(printf '%s' "$key" | tr . /)
        [ -f "$f" ] || die "$key: no $f (is br_netfilter loaded?)"
        if [ "$(cat "$f")" = "$value" ]; then continue; fi
        if ! echo "$value" >"$f"; then die "cannot set $key = $value (writing $f)"; fi
        set_now=$((set_now + 1))
        changed "set $key = $value"
    done
    if [ "$set_now" -eq 0 ]; then say "sysctls: set already"; fi
}

write_runtime_env() {
    {
        echo "# Written by the offline package's shell/init.sh (lvscare-py); clean.sh removes it."
        echo "# The container runtime found on this host; bootstrap reads CGROUP_DRIVER."
        echo "RUNTIME=$RUNTIME"
        echo "CGROUP_DRIVER=$CGROUP_DRIVER"
        echo "CRI_SOCKET=$CRI_SOCKET"
    } >"$TMP/runtime.env"
    put_file "$TMP/runtime.env" "$ENV_FILE" 0644
}

# The runtime's images as "REF DIGEST" lines (Docker: untagged ones by their ID).
list_images() {
    if [ "$RUNTIME" = containerd ]; then
        timeout "$WAIT" ctr -a "$CONTAINERD_SOCK" -n k8s.io images ls >"$TMP/ls" 2>&1 ||
            die "ctr images ls: $(tail -n 1 "$TMP/ls")"
        awk 'NR > 1 { print $1, $3 }' "$TMP/ls"
    else
        timeout "$WAIT" docker -H "unix://$DOCKER_SOCK" image ls --no-trunc \
            --format '{{.Repository}}:{{.Tag}} {{.ID}}' >"$TMP/ls" 2>&1 ||
            die "docker image ls: $(tail -n 1 "$TMP/ls")"
        awk '{ print ($1 == "<none>:<none>" ? $2 : $1), $2 }' "$TMP/ls"
    fi
}

import_archive() {
    ia_file=$1 ia_status=0
    rm -f "$TMP/gunzip-failed"
    if [ "$RUNTIME" = containerd ] && [ "${ia_file%.gz}" != "$ia_file" ]; then
        { gzip -dc "$ia_file" || : >"$TMP/gunzip-failed"; } |
            ctr -a "$CONTAINERD_SOCK" -n k8s.io images import - >"$TMP/import.out" 2>&1 ||
            ia_status=$?
    elif [ "$RUNTIME" = containerd ]; then
        ctr -a "$CONTAINERD_SOCK" -n k8s.io images import "$ia_file" >"$TMP/import.out" 2>&1 ||
            ia_status=$?
    else
        docker -H "unix://$DOCKER_SOCK" load -i "$ia_file" >"$TMP/import.out" 2>&1 || ia_status=$?
    fi
    if [ -e "$TMP/gunzip-failed" ]; then
        die "images/${ia_file##*/}: not a whole gzip file (gzip -dc failed)"
    fi
    if [ "$ia_status" -ne 0 ]; then
        die "importing images/${ia_file##*/} into $RUNTIME failed: $(tail -n 1 "$TMP/import.out")"
    fi
}

# Every archive in images/ into the runtime, once: an archive whose sha256 the record holds
# (for this runtime) is skipped. The images it made (names that were not there before) are
# recorded as "RUNTIME REF DIGEST NEW", NEW=1 when no image had that digest before (clean.sh
# then also removes the sha256:... name containerd's CRI gives it).
load_images() {
    found=0
    for f in "$PKG"/images/*.tar "$PKG"/images/*.tar.gz; do
        [ -f "$f" ] || continue
        found=1
        sum=$(sha_of "$f")
        if [ -f "$REC/archives" ] && grep -qx "$sum $RUNTIME ${f##*/}" "$REC/archives"; then
            say "images/${f##*/}: imported already"
            continue
        fi
        list_images >"$TMP/before"
        import_archive "$f"
        list_images >"$TMP/after"
        while read -r ref digest; do
            case $ref in sha256:*) continue ;; esac
            was=$(awk -v r="$ref" '$1 == r { print $2 }' "$TMP/before")
            if [ -z "$was" ]; then
                new=1
                if awk -v d="$digest" '$2 == d { found = 1 } END { exit !found }' "$TMP/before"; then new=0; fi
                printf '%s %s %s %s\n' "$RUNTIME" "$ref" "$digest" "$new" >>"$REC/images"
                say "imported $ref"
            elif [ "$was" != "$digest" ]; then
                warn "$ref was there before with another digest: replaced by images/${f##*/}'s" \
                    "(clean.sh leaves it)"
            fi
        done <"$TMP/after"
        printf '%s %s %s\n' "$sum" "$RUNTIME" "${f##*/}" >>"$REC/archives"
        changed "imported images/${f##*/} into $RUNTIME"
    done
    if [ "$found" -eq 0 ]; then say "images/: no image archives"; fi
}

main() {
    check_tools
    detect_runtime
    case $CGROUP_DRIVER in
    systemd | cgroupfs) ;;
    *) die "$RUNTIME reports the cgroup driver '$CGROUP_DRIVER' (expected systemd or cgroupfs)" ;;
    esac
    say "container runtime: $RUNTIME, cgroup driver $CGROUP_DRIVER (from $DRIVER_FROM)"
    load_modules # before any file changes: a kernel without IPVS stops init.sh here
    mkdir -p "$REC"
    chmod 0700 "$REC"

    install_bin
    before=$CHANGES
    install_units
    swap_off
    if [ "$CHANGES" -gt "$before" ]; then systemd_units reload; else systemd_units same; fi
    boot_files
    apply_sysctls
    write_runtime_env
    load_images

    if [ "$CHANGES" -eq 0 ]; then
        say "nothing to change: this host is as init.sh leaves it"
    else
        say "done: $CHANGES changes, recorded in $REC (shell/clean.sh undoes them)"
    fi
}

main "$@"
