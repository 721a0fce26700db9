#!/bin/sh
# Runs inside a pycontain container (see 'make demo'): prints what isolation looks like from the inside.
echo "hostname:    $(hostname)            (the host's is different)"
echo "my pid:      $$                      (PID 1 of a pid namespace of its own)"
echo "processes:   $(ls -d /proc/[0-9]* | wc -l) visible                (the host has many more)"
# A network stack of its own: lo, and (the default, --network bridge) eth0 on pycontain's bridge, NATed
# out; with --network none, only lo.
echo "interfaces:  $(ls /sys/class/net | tr '\n' ' ')                 (not the host's: a network namespace of its own)"
ip -o -4 addr show 2>/dev/null | awk '{print "             " $2 " " $4}'
ip route 2>/dev/null | sed -n 's/^default via \([^ ]*\).*/             default route via \1 (the bridge on the host, NAT beyond it)/p'
echo "root:        $(ls / | tr '\n' ' ')"
echo "namespaces:  $(for n in pid mnt uts ipc net cgroup; do printf '%s ' "$(readlink /proc/self/ns/$n)"; done)"
echo "processes as the container sees them:"
ps -o pid,user,comm
