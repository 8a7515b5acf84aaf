#!/usr/bin/env bash
# Install the real servers that the discovery tests start on loopback ports:
#   etcd       (Debian package etcd-server)  -> NETWORKING-023 tests
#   dnsmasq    (Debian package dnsmasq-base) -> NETWORKING-020 tests
#   serf       (Debian package serf)         -> NETWORKING-029 interop tests (the real agent)
#   ip, tc     (Debian package iproute2)     -> tests/multihost (network-namespace hosts, netem; unshare is util-linux)
#   nft        (Debian package nftables)     -> tests/multihost (partitions between namespace hosts)
# Idempotent: does nothing when every binary is already on PATH.
set -euo pipefail

need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v serf >/dev/null 2>&1 || need+=(serf)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || need+=(nftables)

if [ ${#need[@]} -eq 0 ]; then
    echo "install_test_servers: etcd, dnsmasq, serf, ip and nft already present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
echo "install_test_servers: installing ${need[*]}"
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${need[@]}"

# The etcd-server package may start a system service; the tests start their own instances.
for unit in etcd serf; do
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$unit" 2>/dev/null; then
        $SUDO systemctl stop "$unit" || true
    fi
done
command -v etcd >/dev/null
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ]
command -v serf >/dev/null
echo "install_test_servers: done"
