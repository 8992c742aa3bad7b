#!/usr/bin/env bash
# Installs the real tools the test suite drives: tshark (counts SIP messages to compare with),
# Kamailio and gcc (the honeypot benchmark peer and its load generator), SQLite's headers (the
# C bulk path, sipwatch._native, builds with them: its tests must not skip),
# tcpdump (records SIPVicious runs), SIPp, Chromium (renders the HTML report), nftables,
# iptables, ipset, iproute2 (blocklist tests in network namespaces), fail2ban and rsyslog
# (the syslog action and its fail2ban filter).
# Debian/Ubuntu; runs apt-get as root or through sudo.
set -euo pipefail
pkgs=(tshark tcpdump sip-tester kamailio gcc libsqlite3-dev chromium nftables iptables ipset iproute2 fail2ban rsyslog)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools present: ${pkgs[*]}"
  exit 0
fi
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
"${as_root[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q "${missing[@]}"
