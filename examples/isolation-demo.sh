#!/bin/sh
# Runs inside a pycontain container (see 'make demo'): prints what isolation looks like from the inside.
echo "hostname:    $(hostname)            (the host's is different)"
echo "my pid:      $$                      (PID 1 of a pid namespace of its own)"
echo "processes:   $(ls -d /proc/[0-9]* | wc -l) visible                (the host has many more)"
echo "interfaces:  $(ls /sys/class/net | tr '\n' ' ')                   (only loopback, and it is up)"
ip -o link show lo 2>/dev/null | sed 's/\\.*//'
echo "root:        $(ls / | tr '\n' ' ')"
echo "namespaces:  $(for n in pid mnt uts ipc net cgroup; do printf '%s ' "$(readlink /proc/self/ns/$n)"; done)"
echo "processes as the container sees them:"
ps -o pid,user,comm
