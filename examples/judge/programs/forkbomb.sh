#!/bin/sh
# Forks without end: the pids limit refuses forks past it.
bomb() { bomb | bomb & }
bomb
wait
