#!/usr/bin/env bash
# Shared set-up for scripts/demo and scripts/test: system packages, services, venv.
# Idempotent: fast when everything is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

need_pkgs=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto mosquitto-clients)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_pkgs+=(postgresql)
command -v dbus-daemon >/dev/null 2>&1 || need_pkgs+=(dbus-daemon)   # private D-Bus for the fake-BlueZ BLE tests
command -v systemd-sysusers >/dev/null 2>&1 || need_pkgs+=(systemd)   # the package tests: postinst creates the user with systemd-sysusers --root; systemd-analyze verify
command -v sipp >/dev/null 2>&1 || need_pkgs+=(sip-tester)   # SIPp: scripted SCAIP alarm centres for the SIP tests
ls /usr/lib/*/kamailio/modules/tls.so >/dev/null 2>&1 || need_pkgs+=(kamailio kamailio-tls-modules)   # SIP proxy (digest auth, TLS) for the SIP tests
{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || need_pkgs+=(chromium chromium-driver)   # headless browser tests of the technician web app (selenium)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${need_pkgs[*]} with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "bootstrap: missing ${need_pkgs[*]}; run as root or: sudo apt-get install -y ${need_pkgs[*]}" >&2
  fi
fi
export PATH="$PATH:/usr/sbin"

# PostgreSQL (the fleet's scale-out store): start a local cluster if none answers.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && ls /etc/postgresql >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  fi
fi
if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  # trust auth for loopback and a 'test' database, as on the reference machines
  if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf 2>/dev/null | head -1)
    if [ -n "$hba" ]; then
      sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/; s/^(host\s+all\s+all\s+::1\/128\s+)\S+/\1trust/; s/^(local\s+all\s+all\s+)\S+/\1trust/; s/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$hba"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main reload >/dev/null 2>&1 || true
      sleep 1
    fi
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -Atc "select 1 from pg_database where datname='test'" 2>/dev/null | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -d postgres -c 'create database test' >/dev/null 2>&1 || true
fi

# Python environment
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[dev]" 2>&1 | grep -v -E '^WARNING: Location' || true
  .venv/bin/python -c "import gateway, fleet, paho.mqtt, serial, bleak, zeroconf" 
  rm -f .venv/.installed-*; touch "$stamp"
fi
