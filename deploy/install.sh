#!/usr/bin/env bash
# Installs islet system-wide from this checkout: the `islet` command on PATH
# (npm install -g, which builds dist through the package's prepare step), a
# default /etc/islet/config.toml if there is none, and the systemd unit.
# Usage: sudo deploy/install.sh [--no-systemd]
set -euo pipefail
cd "$(dirname "$0")/.."
npm install -g --no-audit --no-fund .
bin="$(npm prefix -g)/bin/islet"
install -d -m 0755 /etc/islet
if [ ! -f /etc/islet/config.toml ]; then
  printf '# islet configuration: every key is optional (docs/config.md)\n[storage]\ndata_dir = "/var/lib/islet"\n' > /etc/islet/config.toml
fi
if [ "${1:-}" != "--no-systemd" ] && command -v systemctl >/dev/null; then
  sed "s|@ISLET_BIN@|$bin|" deploy/islet.service > /etc/systemd/system/islet.service
  systemctl daemon-reload
  echo "installed: systemctl enable --now islet"
fi
"$bin" setup --config /etc/islet/config.toml
echo "islet installed at $bin"
