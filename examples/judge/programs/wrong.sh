#!/bin/sh
# Off by one.
s=1
for n in $(cat); do s=$((s + n)); done
echo "$s"
