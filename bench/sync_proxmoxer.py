#!/usr/bin/python3
"""The peer for bench/sync.sh: read a cluster the way Ansible's community.proxmox
inventory plugin and prometheus-pve-exporter's config collector do, with
proxmoxer (Debian's python3-proxmoxer): /cluster/resources, then every guest's
config, one request after another on a keep-alive session.
Usage: sync_proxmoxer.py URL TOKEN   (TOKEN = USER@REALM!TOKENID=SECRET)"""
import sys
import time

import urllib3
from proxmoxer import ProxmoxAPI

urllib3.disable_warnings()
url, token = sys.argv[1], sys.argv[2]
host, port = url.split("://", 1)[1].rstrip("/").rsplit(":", 1)
user, _, rest = token.partition("!")
name, _, secret = rest.partition("=")
t0 = time.monotonic()
px = ProxmoxAPI(host, port=int(port), user=user, token_name=name, token_value=secret,
                verify_ssl=False)
res = px.cluster.resources.get()
configs = {}
for r in res:
    if r.get("type") in ("qemu", "lxc"):
        configs[r["vmid"]] = px.nodes(r["node"])(r["type"])(r["vmid"]).config.get()
for r in res:
    if r.get("type") == "node" and r.get("status") == "online":
        px.nodes(r["node"]).status.get()
        px.nodes(r["node"]).network.get(type="any_bridge")
print(f"{len(configs)} guests in {time.monotonic() - t0:.2f} s")
