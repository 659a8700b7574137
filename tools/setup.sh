#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian 12 machine:
# the compiler tool chain and the libraries, all from Debian's packages.
# Safe to run again: apt-get skips what is there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config curl
  librocksdb-dev librdkafka-dev libcereal-dev libboost-program-options-dev
  libgtest-dev libbenchmark-dev nlohmann-json3-dev libsimdjson-dev libssl-dev uuid-dev libabsl-dev
  libcpp-httplib-dev prometheus-cpp-dev prometheus
  default-jre-headless maven
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: build dependencies present (Kafka broker jars are fetched by tools/kafka/broker.sh)"
