#!/bin/sh
# /init of the ftvirt test guest: busybox initramfs, no root file system.
# Packed by xtask (xtask/src/guest.rs) together with /bin/busybox and its applet links,
# the virtio modules in /lib/ftvirt-modules and /bin/ftvirt-guest-agent.
#
# Kernel command line:
#   ftvirt.ip=ADDR/PREFIX   required: the address of eth0 (e.g. 192.168.100.10/24)
#   ftvirt.port=N           optional: the agent's TCP port (default 7000)
#   ftvirt.gw=ADDR          optional: a default route
# Everything goes to /dev/console (ttyS0 with console=ttyS0); the lab waits for the
# agent's "FTVIRT-GUEST: READY ..." line.
#
# This shell is PID 1: it must never exit (the kernel panics). Its last loop runs the
# agent and waits for it; busybox ash waits with waitpid(-1), so it also reaps any
# orphan re-parented to PID 1.

export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

say() { echo "FTVIRT-GUEST: $*"; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }

say "booting nproc=$(nproc)"

# Dependencies first: loading virtio before virtio_ring fails with "unknown symbol".
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
         virtio_blk failover net_failover virtio_net; do
    # xtask leaves out modules that are built into the kernel.
    [ -e /lib/ftvirt-modules/$m.ko ] || continue
    insmod /lib/ftvirt-modules/$m.ko || say "ERROR: insmod $m failed"
done

ip=
port=7000
gw=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        ftvirt.ip=*) ip=${arg#ftvirt.ip=} ;;
        ftvirt.port=*) port=${arg#ftvirt.port=} ;;
        ftvirt.gw=*) gw=${arg#ftvirt.gw=} ;;
    esac
done

ip link set lo up
# virtio_net probes synchronously, but give a slow (TCG, COLO) boot a moment anyway.
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done

net_ok=no
if [ -z "$ip" ]; then
    say "ERROR: no ftvirt.ip=ADDR/PREFIX on the kernel command line; eth0 stays down and the agent is not started"
    say "kernel command line: $(cat /proc/cmdline)"
elif ! ip addr add "$ip" dev eth0 || ! ip link set eth0 up; then
    say "ERROR: cannot configure eth0 with ftvirt.ip=$ip; the agent is not started"
else
    net_ok=yes
    if [ -n "$gw" ]; then
        ip route add default via "$gw" || say "ERROR: cannot add the default route via $gw"
    fi
    say "net eth0 $ip up uptime=$(uptime_s)"
fi

if [ ! -b /dev/vda ]; then
    say "WARNING: no /dev/vda (virtio disk); the agent will fail to open its log"
fi

while true; do
    if [ "$net_ok" = yes ]; then
        /bin/ftvirt-guest-agent --port "$port" --disk /dev/vda >/dev/console 2>&1 &
        wait $!
        say "agent exited with status $?; restarting in 2s"
        sleep 2
    else
        sleep 3600 &
        wait $!
    fi
done
