"""The seed homelabs as examples (examples/*.yaml): each validates with no
errors, and each stays faithful to its seed document -- the homelab-gitops
containers against the seed's own tables, the timeshift guests against their
categories' VMID and port ranges."""
import glob
import ipaddress
import os
import re

import pytest
import yaml

from conftest import SRC, run

EXAMPLES = os.path.join(SRC, "examples")
CONFIGS = sorted(glob.glob(os.path.join(EXAMPLES, "*.yaml")))
SEEDS = {
    "timeshift.yaml", "homeserver.yaml", "homelab-gitops.yaml", "proxmox-mpc.yaml",
    "minio-spark.yaml",
}


def load(name):
    with open(os.path.join(EXAMPLES, name)) as f:
        doc = yaml.safe_load(f)
    defaults = doc.get("defaults") or {}
    guests = []
    for g in doc.get("guests") or []:
        m = dict(defaults)
        m.update(g)
        guests.append(m)
    return doc, guests


def seed_text(testdata, marker):
    for path in sorted(glob.glob(os.path.join(testdata, "seeds", "*.txt"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if marker in text:
            return path, text
    pytest.fail(f"no seed document mentions {marker!r}")


def test_one_example_per_seed():
    assert SEEDS <= {os.path.basename(p) for p in CONFIGS}


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_example_validates(path):
    r = run("-o", "json", "validate", path)
    assert r.rc == 0, r
    j = r.json()
    assert j["valid"] is True and j["errors"] == 0 and j["warnings"] == 0, j
    with open(path) as f:
        head = f.readline()
    # each file opens by naming its seed document
    assert head.startswith("# " + os.path.basename(path)) and "seed document" in head, head


def seed_containers(text):
    """The container tables of the homelab-gitops seed:
    | Plex | `plex` (120) | 192.168.0.207 | Media streaming server |"""
    rows = {}
    for m in re.finditer(r"^\|[^|\n]*\|\s*`([a-z_]+)`\s*\((\d+)\)\s*\|\s*([^|\n]*?)\s*\|",
                         text, re.M):
        name, vmid, ip = m.group(1), int(m.group(2)), m.group(3)
        assert vmid not in rows, f"vmid {vmid} twice in the seed"
        rows[vmid] = (name, ip)
    return rows


def test_homelab_gitops_matches_seed_tables(testdata):
    path, text = seed_text(testdata, "homelab-gitops")
    rows = seed_containers(text)
    # The seed's headline says 28 containers, but its tables list these:
    assert len(rows) == 30, (path, sorted(rows))
    doc, guests = load("homelab-gitops.yaml")
    assert all(g["type"] == "lxc" for g in guests)
    by_vmid = {g["vmid"]: g for g in guests}
    assert len(by_vmid) == len(guests) == len(rows)
    assert set(by_vmid) == set(rows)
    for vmid, (name, ip) in rows.items():
        g = by_vmid[vmid]
        assert g["name"] == name.replace("_", "-"), (vmid, g["name"], name)
        addrs = [n.get("ip") for n in g["networks"]]
        if ip == "DHCP":
            assert addrs == ["dhcp"], (name, addrs)
            continue
        primary = ip.split("+")[0].strip()
        assert addrs[0] == primary + "/24", (name, addrs)
        net0 = g["networks"][0]
        assert net0["bridge"] == "vmbr0"
        if "VPN" in ip:  # dual-network containers: a second leg on vmbr1
            vpn = g["networks"][1]
            assert vpn["bridge"] == "vmbr1"
            assert ipaddress.ip_interface(vpn["ip"]) in ipaddress.ip_network("10.10.10.0/24")
        else:
            assert len(g["networks"]) == 1


def test_homelab_gitops_vpn_and_shared_data():
    doc, guests = load("homelab-gitops.yaml")
    assert [b["name"] for b in doc["bridges"]] == ["vmbr1"]
    by_name = {g["name"]: g for g in guests}
    # wireguard is the VPN gateway; its clients route through it
    assert by_name["wireguard"]["networks"][1]["ip"] == "10.10.10.1/24"
    for client in ("qbittorrent", "prowlarr"):
        nets = by_name[client]["networks"]
        assert nets[1]["gw"] == "10.10.10.1" and "gw" not in nets[0]
    shared_data = [g["name"] for g in guests
                   if any(m.get("path") == "/data" and m.get("volume") == "/vault/data"
                          for m in g.get("mounts") or [])]
    assert "fileserver" in shared_data and "plex" in shared_data and "immich" in shared_data
    assert by_name["immich-backup"]["state"] == "stopped"
    assert by_name["immich"]["memory"] == "4G" and by_name["immich"]["cores"] == 4
    assert by_name["plex"]["memory"] == "4G" and by_name["plex"]["cores"] == 2


def rng(s):
    lo, hi = (int(x) for x in str(s).split("-"))
    return lo, hi


def test_timeshift_conventions_and_ranges(testdata):
    _, text = seed_text(testdata, "TimeShift")
    doc, guests = load("timeshift.yaml")
    cats = doc["conventions"]["categories"]
    # the seed's VMID ranges and port ranges, read from the seed itself
    vmid_ranges = re.findall(r"^(\d+)-(\d+): (.+?)\s*$", text.split("### 4.")[1].split("##")[0], re.M)
    assert len(vmid_ranges) == 5
    assert sorted(rng(c["vmids"]) for c in cats.values()) == \
        sorted((int(a), int(b)) for a, b, _ in vmid_ranges)
    port_ranges = re.findall(r"^(\d+)-(\d+): ", text.split("### 2.")[1].split("###")[0], re.M)
    assert sorted(rng(c["ports"]) for c in cats.values() if "ports" in c) == \
        sorted((int(a), int(b)) for a, b in port_ranges)
    assert set(doc["profiles"]) == {"mcp", "idrac", "timeshift", "monitoring", "full"}
    for g in guests:
        lo, hi = rng(cats[g["category"]]["vmids"])
        assert lo <= g["vmid"] <= hi, g["name"]
        if "ports" in cats[g["category"]]:
            plo, phi = rng(cats[g["category"]]["ports"])
            for s in g["services"]:
                if "host_port" in s:
                    assert plo <= s["host_port"] <= phi, (g["name"], s)
    assert {g["category"] for g in guests} == set(cats)
    # the seed's services and ports are all there, on the hybrid (full) VM 220
    full = next(g for g in guests if g["vmid"] == 220)
    assert full["category"] in doc["profiles"]["full"]
    seed_ports = {int(p) for p in re.findall(r"\(Port (\d+)\)", text)}
    assert seed_ports == {7001, 7002, 7003, 8080, 8765, 8090, 9000, 9001, 9010}
    assert {s["port"] for s in full["services"]} == seed_ports


def test_minio_spark_matches_seed():
    _, guests = load("minio-spark.yaml")
    by_vmid = {g["vmid"]: g for g in guests}
    minio, spark = by_vmid[200], by_vmid[100]
    assert minio["type"] == "lxc" and minio["networks"][0]["ip"] == "192.168.1.200/24"
    assert {s["port"] for s in minio["services"]} >= {9000, 9001}
    assert spark.get("type", "vm") == "vm" and spark["networks"][0]["ip"] == "192.168.1.100/24"
    assert {s["port"] for s in spark["services"]} >= {8080, 8081, 7077}
    assert (minio["cores"], minio["memory"], minio["rootfs"]["size"]) == (2, "4G", "20G")
    assert (spark["cores"], spark["memory"], spark["disks"][0]["size"]) == (4, "8G", "50G")


def test_homeserver_matches_seed():
    doc, guests = load("homeserver.yaml")
    assert {b["name"] for b in doc["bridges"]} == {"vmbr0", "vmbr1"}
    by_vmid = {g["vmid"]: g for g in guests}
    assert set(by_vmid) == {100, 101, 102}
    assert by_vmid[102]["hostpci"] and by_vmid[102]["hostpci"][0]["x_vga"] is True
    # the GPU goes through a PCI mapping of the card the host binds to vfio-pci
    gpu = by_vmid[102]["hostpci"][0]["mapping"]
    (m,) = [m for m in doc["pci_mappings"] if m["name"] == gpu]
    assert [e["path"] for e in m["map"]] == doc["hosts"][0]["vfio"]["devices"]
    assert all(g["networks"][0]["bridge"] == "vmbr1" for g in guests)


SIM_SEEDS = sorted(glob.glob(os.path.join(EXAMPLES, "sim", "*.yaml")))


def sim_seed_pairs():
    """(example, simulator seed): its own seed, else the demo cluster. (The
    demo cluster cannot host homelab-gitops: the seed's VMIDs 100-133 collide
    with demo guests, and it has no `vault` pool or /vault/data storage.)"""
    pairs = []
    demo = os.path.join(EXAMPLES, "sim", "demo.yaml")
    for name in sorted(SEEDS):
        own = os.path.join(EXAMPLES, "sim", name)
        pairs.append((name, own if os.path.exists(own) else demo))
    return pairs


@pytest.mark.parametrize("name,seed_path", sim_seed_pairs(),
                         ids=lambda v: os.path.basename(v))
def test_sim_seed_has_what_the_example_uses(name, seed_path):
    """Every node, storage, bridge, container template and clone template an
    example names exists in its simulator seed (or is created by the example)."""
    doc, guests = load(name)
    with open(seed_path) as f:
        seed = yaml.safe_load(f)
    nodes = {n["name"] if isinstance(n, dict) else n for n in seed["nodes"]}
    storages = {s["id"]: s for s in seed["storages"]}
    bridges = {b["name"] for b in doc.get("bridges") or []}
    for n in seed["nodes"]:
        bridges |= {i["iface"] for i in n.get("network") or [] if i.get("type") == "bridge"}
    vztmpl = {t if isinstance(t, str) else t["volid"] for t in seed.get("templates") or []}
    vztmpl |= {f"{t.get('storage', 'local')}:vztmpl/{t['template']}"
               for t in doc.get("templates") or []}
    vm_templates = {g["config"]["name"] for g in seed.get("guests") or []
                    if str(g.get("config", {}).get("template", "0")) == "1"}
    volumes = {v["volid"] for s in storages.values() for v in s.get("volumes") or []}

    def storage(sid, content):
        assert sid in storages, (name, sid)
        assert content in storages[sid]["content"].split(","), (name, sid, content)

    for g in guests:
        where = (name, g["name"])
        if "node" in g:
            assert g["node"] in nodes, where
        for net in g.get("networks") or []:
            assert net.get("bridge", "vmbr0") in bridges, where
        lxc = g.get("type") == "lxc"
        if lxc:
            assert g["ostemplate"] in vztmpl, where
            storage(g["ostemplate"].split(":")[0], "vztmpl")
            if "rootfs" in g:
                storage(g["rootfs"]["storage"], "rootdir")
            for m in g.get("mounts") or []:
                if "storage" in m:
                    storage(m["storage"], "rootdir")
                elif m["volume"].startswith("/"):  # bind mount of a directory storage's path
                    assert any(s.get("path") == m["volume"] for s in storages.values()), where
        else:
            if "clone" in g:
                assert g["clone"]["template"] in vm_templates, where
            for d in g.get("disks") or []:
                storage(d.get("storage", "local-lvm"), "images")
                src = (d.get("options") or {}).get("import-from")
                if src:
                    assert src in volumes, where
            for k in ("efidisk", "tpm"):
                if k in g:
                    storage(g[k]["storage"], "images")
    for b in doc.get("bridges") or []:
        if "node" in b:
            assert b["node"] in nodes


@pytest.mark.parametrize("path", SIM_SEEDS, ids=os.path.basename)
def test_sim_seed_shape(path):
    with open(path) as f:
        seed = yaml.safe_load(f)
    assert seed["nodes"], path
    ids = [s["id"] for s in seed["storages"]]
    assert "local" in ids and "local-lvm" in ids, path
    vmids = [g["vmid"] for g in seed.get("guests") or []]
    assert len(vmids) == len(set(vmids))
