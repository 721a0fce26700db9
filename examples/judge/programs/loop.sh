#!/bin/sh
# Never answers.
while :; do :; done
