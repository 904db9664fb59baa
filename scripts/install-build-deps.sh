#!/usr/bin/env bash
# Debian packages the build needs: a C toolchain, perl and make (vendored OpenSSL), cmake
# (librdkafka, built with CMake so it cross-compiles for arm64 Lambda too), Python and Java/Node
# for the local servers, valgrind (instruction counts in make test). Installs only what is missing;
# needs root, or sudo for another user.
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(gcc g++)
command -v make >/dev/null || need+=(make)
command -v perl >/dev/null || need+=(perl)
command -v cmake >/dev/null || need+=(cmake)
# venv with pip: the caches of Tansu, cargo-lambda, cfn-lint and SAM are virtual environments.
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3 python3-pip python3-venv)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v npm >/dev/null || need+=(nodejs npm)
command -v curl >/dev/null || need+=(curl)
command -v valgrind >/dev/null || need+=(valgrind)
if [ "${#need[@]}" -gt 0 ]; then
  echo "install-build-deps: installing ${need[*]}" >&2
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-build-deps: run as root, or install: ${need[*]}" >&2; exit 1; }
    as_root=(sudo)
  fi
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
