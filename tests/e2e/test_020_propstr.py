"""The property-string codec through `pvelab propstr`, and a round trip of
every property string in the recorded real API responses."""
import glob
import json
import os

import pytest

from conftest import run


@pytest.mark.parametrize("fmt,value,canon", [
    ("qemu.net", "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1,tag=20",
     "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1,tag=20"),
    ("qemu.net", "tag=20,bridge=vmbr0,virtio=BC:24:11:2A:3B:4C,firewall=on",
     "virtio=BC:24:11:2A:3B:4C,bridge=vmbr0,firewall=1,tag=20"),
    ("qemu.scsi", "local-lvm:vm-100-disk-0,iothread=1,size=32768M",
     "local-lvm:vm-100-disk-0,iothread=1,size=32G"),
    ("qemu.ipconfig", "ip=10.0.0.5/24,gw=10.0.0.1", "gw=10.0.0.1,ip=10.0.0.5/24"),
    ("lxc.net", "name=eth0,bridge=vmbr0,ip=dhcp", "name=eth0,bridge=vmbr0,ip=dhcp"),
    ("lxc.mp", "/vault/data,mp=/data", "/vault/data,mp=/data"),
    ("qemu.startup", "order=3,up=30", "3,up=30"),
    ("lxc.features", "nesting=yes,keyctl=1", "keyctl=1,nesting=1"),
])
def test_canonical(fmt, value, canon):
    r = run("propstr", fmt, value)
    assert r.rc == 0, r
    assert r.out.strip() == canon


@pytest.mark.parametrize("fmt,value,key", [
    ("qemu.net", "virtio,tag=5000", "tag"),
    ("qemu.net", "virtio,bogus=1", "bogus"),
    ("qemu.net", "virtio,firewall=maybe", "firewall"),
    ("qemu.scsi", "local-lvm:1,size=lots", "size"),
    ("lxc.mp", "/vault/data", "mp"),
    ("qemu.ipconfig", "ip=10.0.0.300/24", "ip"),
    ("qemu.net", "virtio,tag=1,tag=2", "tag"),
])
def test_rejects_naming_the_key(fmt, value, key):
    r = run("propstr", fmt, value)
    assert r.rc == 1
    assert f": {key}: " in r.err or f"'{key}" in r.err, r


def test_semantic_compare():
    assert run("propstr", "qemu.scsi", "local-lvm:vm-1-disk-0,size=32G",
               "size=32768M,file=local-lvm:vm-1-disk-0").rc == 0
    assert run("propstr", "qemu.net", "virtio=bc:24:11:2a:3b:4c,firewall=0",
               "virtio=BC:24:11:2A:3B:4C").rc == 0
    r = run("propstr", "qemu.net", "virtio,bridge=vmbr0", "virtio,bridge=vmbr1")
    assert r.rc == 2 and "bridge" in r.out


def test_examples_round_trip(testdata):
    """Every property string in the recorded responses is stable under
    parse -> format -> parse."""
    fmts = set(run("-o", "json", "propstr", "--list").json())
    seen = 0
    for path in glob.glob(os.path.join(testdata, "pve-api", "examples", "*.json")):
        if path.endswith(".http.json"):
            continue
        data = json.load(open(path)).get("data")
        if not isinstance(data, dict):
            continue
        kind = "lxc" if "lxc" in os.path.basename(path) else "qemu"
        for key, value in data.items():
            base = key.rstrip("0123456789")
            fmt = f"{kind}.{base}"
            if fmt not in fmts or not isinstance(value, str) or "=" not in value and "," not in value:
                continue
            first = run("propstr", fmt, value)
            assert first.rc == 0, (path, key, value, first)
            again = run("propstr", fmt, first.out.strip())
            assert again.out == first.out, (path, key)
            assert run("propstr", fmt, value, first.out.strip()).rc == 0
            seen += 1
    # property strings sent in recorded request bodies (form-encoded)
    import urllib.parse
    for path in glob.glob(os.path.join(testdata, "pve-api", "examples", "*.http.json")):
        req = json.load(open(path))["request"]
        kind = "lxc" if "/lxc" in req["uri"] else "qemu"
        for key, value in urllib.parse.parse_qsl(req.get("body") or ""):
            fmt = f"{kind}.{key.rstrip('0123456789')}"
            if fmt in fmts and "," in value:
                first = run("propstr", fmt, value)
                assert first.rc == 0, (path, key, value, first)
                assert run("propstr", fmt, first.out.strip()).out == first.out
                seen += 1
    assert seen >= 5
