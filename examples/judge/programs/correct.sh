#!/bin/sh
# Sum the integers on stdin.
s=0
for n in $(cat); do s=$((s + n)); done
echo "$s"
