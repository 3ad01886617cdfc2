#!/usr/bin/env bash
# Builds ./app: the static executable that faaso's binary runtime copies into a FROM scratch
# image (no libc there, so it must be statically linked). Run it before deploying.
set -euo pipefail
cd "$(dirname "$0")"
rustc --edition 2021 -O -C target-feature=+crt-static -C strip=symbols main.rs -o app
if ! ldd app 2>&1 | grep -Eq 'statically linked|not a dynamic executable'; then
  echo "build.sh: ./app is dynamically linked; it would not start in a scratch image" >&2
  exit 1
fi
echo "built $(pwd)/app (static)"
