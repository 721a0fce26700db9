#!/bin/sh
# Doubles a string until memory runs out.
x=a
while :; do x="$x$x"; done
