#!/bin/sh
# The packages the test servers need (see scripts/deps.sh).
exec "$(dirname "$0")/../../scripts/deps.sh" peers
