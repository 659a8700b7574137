#!/usr/bin/env bash
# Installs what the NestJS end-to-end test needs: Node.js and npm (Debian's
# packages when the machine has none) and the locked npm packages.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
cd "$here"
npm ci --no-audit --no-fund --loglevel=error
