#!/bin/sh
# Undoes what shell/init.sh did on this host, as its record in /var/lib/lvscare-py-init
# says, and nothing else; run as `cd shell && sh clean.sh` (bootstrap clean does that).
#
#   images init.sh imported are removed (only names it made, still on the same digest)
#   kubelet.service disabled and stopped, if init.sh enabled it
#   /etc/fstab's swap lines uncommented (byte for byte as before, if unchanged since)
#   files init.sh put there removed (only while unchanged: their sha256 as recorded), and
#   the files they replaced put back; directories it made removed when empty
#
# Not undone: swap stays off until the next boot (init.sh cannot know which swap was on,
# and the next boot turns on what fstab says); kernel modules stay loaded and the sysctls
# keep their values until the next boot (other software may use them by now, and unloading
# IPVS under a running lvscare or kube-proxy breaks it).
#
# Safe to run twice, and where init.sh never ran. Exit 1 if something could not be undone
# (the record of it then stays, so that running clean.sh again retries it).
set -eu

REC=/var/lib/lvscare-py-init
FSTAB=/etc/fstab
MARK='#lvscare-py# '
CONTAINERD_SOCK=/run/containerd/containerd.sock
DOCKER_SOCK=/var/run/docker.sock
WAIT=60

PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

say() { echo "clean.sh: $*"; }
warn() { echo "clean.sh: warning: $*" >&2; }
PROBLEMS=0
problem() {
    PROBLEMS=$((PROBLEMS + 1))
    echo "clean.sh: $*" >&2
}
KEPT=0      # backups kept because the file that replaced them was changed since
RELOAD=none # systemd must reread its units

if [ ! -d "$REC" ]; then
    say "nothing to undo: no $REC (init.sh never ran here, or clean.sh undid it already)"
    exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
trap 'exit 1' HUP INT TERM

sha_of() {
    if [ -f "$1" ]; then sha256sum <"$1" | cut -c1-64; fi
}

exists() { [ -e "$1" ] || [ -L "$1" ]; }

# Put file $1 back from the record's backup, written beside it and renamed over it.
restore() {
    cp -Pp "$REC/backup$1" "$1.lvscare-py-new"
    if ! mv -f "$1.lvscare-py-new" "$1" 2>/dev/null; then # a bind-mounted file: in place
        cat "$1.lvscare-py-new" >"$1"
        rm -f "$1.lvscare-py-new"
    fi
    rm -f "$REC/backup$1"
}

# "REF DIGEST" of the images containerd has in kubelet's namespace (Docker: untagged ones by
# their ID); fails when the runtime does not answer.
containerd_images() {
    timeout "$WAIT" ctr -a "$CONTAINERD_SOCK" -n k8s.io images ls >"$TMP/ls" || return 1
    awk 'NR > 1 { print $1, $3 }' "$TMP/ls"
}

docker_images() {
    timeout "$WAIT" docker -H "unix://$DOCKER_SOCK" image ls --no-trunc \
        --format '{{.Repository}}:{{.Tag}} {{.ID}}' >"$TMP/ls" || return 1
    awk '{ print ($1 == "<none>:<none>" ? $2 : $1), $2 }' "$TMP/ls"
}

# Image lines "RUNTIME REF DIGEST NEW": each name removed while it still points at the digest
# init.sh imported; for a digest new then, also the sha256:... names containerd's CRI made
# for it, once no other name points there.
remove_images() {
    [ -s "$REC/images" ] || return 0
    : >"$TMP/images.left"
    have_containerd=no have_docker=no
    if grep -q '^containerd ' "$REC/images" && containerd_images >"$TMP/containerd" 2>/dev/null; then
        have_containerd=yes
    fi
    if grep -q '^docker ' "$REC/images" && docker_images >"$TMP/docker" 2>/dev/null; then
        have_docker=yes
    fi
    while read -r rt ref digest new; do
        case $rt in
        containerd) up=$have_containerd ;;
        docker) up=$have_docker ;;
        *) up=no ;;
        esac
        if [ "$up" != yes ]; then
            problem "cannot remove image $ref: $rt does not answer"
            echo "$rt $ref $digest $new" >>"$TMP/images.left"
            continue
        fi
        now=$(awk -v r="$ref" '$1 == r { print $2 }' "$TMP/$rt")
        if [ -z "$now" ]; then
            say "image $ref: gone already"
        elif [ "$now" != "$digest" ]; then
            warn "image $ref points at another image since init.sh imported it: kept"
        elif [ "$rt" = containerd ] && out=$(timeout "$WAIT" ctr -a "$CONTAINERD_SOCK" -n k8s.io images rm "$ref" 2>&1); then
            say "removed image $ref"
        elif [ "$rt" = docker ] && out=$(timeout "$WAIT" docker -H "unix://$DOCKER_SOCK" image rm "$ref" 2>&1); then
            say "removed image $ref"
        else
            problem "cannot remove image $ref: $(printf '%s\n' "$out" | tail -n 1)"
            echo "$rt $ref $digest $new" >>"$TMP/images.left"
            continue
        fi
        if [ "$rt" = containerd ] && [ "$new" = 1 ]; then
            echo "$digest" >>"$TMP/new-digests"
        fi
    done <"$REC/images"
    if [ -s "$TMP/new-digests" ] && containerd_images >"$TMP/containerd" 2>/dev/null; then
        while read -r digest; do
            if awk -v d="$digest" '$2 == d && $1 !~ /^sha256:/ { f = 1 } END { exit !f }' "$TMP/containerd"; then
                continue # someone named it since: CRI's name for it stays with it
            fi
            awk -v d="$digest" '$2 == d { print $1 }' "$TMP/containerd" | while read -r ref; do
                timeout "$WAIT" ctr -a "$CONTAINERD_SOCK" -n k8s.io images rm "$ref" >/dev/null 2>&1 ||
                    warn "cannot remove image $ref (containerd's name for $digest)"
            done
        done <"$TMP/new-digests"
    fi
    mv -f "$TMP/images.left" "$REC/images"
}

disable_kubelet() {
    [ -f "$REC/kubelet-enabled" ] || return 0
    if [ ! -d /run/systemd/system ]; then
        problem "systemd does not run here: kubelet.service, which init.sh enabled, stays enabled"
        return 0
    fi
    if out=$(systemctl disable --now kubelet.service 2>&1); then
        rm -f "$REC/kubelet-enabled"
        say "disabled and stopped kubelet.service"
    else
        problem "systemctl disable --now kubelet.service: $(printf '%s\n' "$out" | tail -n 1)"
    fi
}

# The lines init.sh commented out, uncommented; every other line as it is now. When that
# gives the file init.sh found (it may have added a newline at the end), it is put back byte
# for byte, owner and mode included.
restore_fstab() {
    [ -f "$REC/fstab" ] || return 0
    bk="$REC/backup$FSTAB"
    if [ -f "$FSTAB" ]; then
        sed "s/^$MARK//" "$FSTAB" >"$TMP/fstab"
        { cat "$bk" && echo; } >"$TMP/fstab-nl" 2>/dev/null || :
        now=$(sha_of "$TMP/fstab")
        if [ -f "$bk" ] && { [ "$(sha_of "$bk")" = "$now" ] || [ "$(sha_of "$TMP/fstab-nl")" = "$now" ]; }; then
            restore "$FSTAB"
            say "put back $FSTAB as it was before init.sh"
        elif grep -q "^$MARK" "$FSTAB"; then
            cp -p "$FSTAB" "$FSTAB.lvscare-py-new"
            cat "$TMP/fstab" >"$FSTAB.lvscare-py-new"
            if ! mv -f "$FSTAB.lvscare-py-new" "$FSTAB" 2>/dev/null; then
                cat "$TMP/fstab" >"$FSTAB"
                rm -f "$FSTAB.lvscare-py-new"
            fi
            say "uncommented the swap lines init.sh had commented out in $FSTAB (edited since:" \
                "the rest of it kept)"
        fi
    fi
    rm -f "$bk" "$REC/fstab"
    RELOAD=yes # systemd makes its swap units from fstab
}

# File lines "SHA256  PATH", newest first: removed while unchanged, their backups put back.
remove_files() {
    [ -f "$REC/files" ] || return 0
    : >"$TMP/files.left"
    tac "$REC/files" >"$TMP/files"
    while IFS= read -r line; do
        sum=$(printf '%s' "$line" | cut -c1-64)
        path=$(printf '%s' "$line" | cut -c67-)
        bk="$REC/backup$path"
        case $path in /etc/systemd/*) RELOAD=yes ;; esac
        if exists "$path" && [ "$(sha_of "$path")" != "$sum" ]; then
            if exists "$bk" && [ "$(sha_of "$bk")" = "$(sha_of "$path")" ]; then
                rm -f "$bk" # init.sh never got to replace it
            else
                warn "$path changed since init.sh put it there: kept"
                if exists "$bk"; then
                    KEPT=$((KEPT + 1))
                    warn "the file it replaced is kept as $bk"
                fi
            fi
        elif exists "$bk"; then
            restore "$path"
            say "put back $path as it was before init.sh"
        elif exists "$path"; then
            rm -f "$path"
            say "removed $path"
        fi
    done <"$TMP/files"
    rm -f "$REC/files"
}

remove_dirs() {
    [ -f "$REC/dirs" ] || return 0
    tac "$REC/dirs" >"$TMP/dirs"
    while IFS= read -r dir; do
        if [ -d "$dir" ] && rmdir "$dir" 2>/dev/null; then say "removed $dir/"; fi
    done <"$TMP/dirs"
    rm -f "$REC/dirs"
}

main() {
    remove_images
    disable_kubelet
    restore_fstab
    remove_files
    if [ "$RELOAD" = yes ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        say "systemctl daemon-reload"
    fi
    remove_dirs
    rm -f "$REC/archives"
    if [ "$PROBLEMS" -gt 0 ]; then
        echo "clean.sh: not everything was undone (above); $REC keeps what is left:" \
            "run clean.sh again" >&2
        exit 1
    fi
    rm -f "$REC/images"
    if [ "$KEPT" -gt 0 ]; then
        say "done; $REC/backup keeps the $KEPT files named above"
        exit 0
    fi
    rm -rf "$REC"
    say "done: what init.sh changed is undone"
}

main "$@"
