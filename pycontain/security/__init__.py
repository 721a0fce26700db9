"""The container's walls beyond namespaces: capabilities, no_new_privs, seccomp, rlimits, masked paths.

One module per job; this package's ``__init__`` imports none of them, so a caller pays only for the
one it uses:

- ``options``: what the user asked for (``SecurityOptions``, ``--ulimit``, ``--security-opt``);
- ``caps``: capability names and numbers, docker's default set, the masks a container gets;
- ``seccomp``: a profile compiled to its BPF program (``seccomp_default``: docker's default profile);
- ``apply``: ``prepare`` in the parent, then the child's steps (``mask_paths``, ``before_setuid``,
  ``after_setuid``, ``last``), in that order.
"""
