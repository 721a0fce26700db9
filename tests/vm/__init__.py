"""Boot a throwaway pure-cgroup-v2 Linux guest under QEMU (TCG) and run commands in it (see README.md)."""
