"""pvelab host plan|apply against fixture trees turned into real file trees
(--root): each declared setting becomes the exact file edit a Proxmox admin
would make, apply writes it with a backup and records it in the history,
refuses without a seen plan, and a second plan shows no changes."""
import os
import shutil

import pytest

from conftest import TESTDATA, run

HOSTS = os.path.join(TESTDATA, "hosts")

AMD_YAML = """\
hosts:
  - node: pve-amd
    iommu: on
    vfio:
      devices: ["0a:00"]
      blacklist_host_drivers: true
    repositories: no-subscription
    nat:
      - bridge: vmbr1
        via: vmbr0
        address: 10.10.10.1/24
    ntp: [ntp1.example.org, ntp2.example.org]
"""


def tree(tmp_path, name, yaml):
    root = tmp_path / "node"
    shutil.copytree(os.path.join(HOSTS, name), root, symlinks=True)
    (tmp_path / "pvelab.yaml").write_text(yaml)
    env = {"PVELAB_STATE": str(tmp_path / "state.db")}

    def host(*args):
        return run("-c", tmp_path / "pvelab.yaml", "host", *args, "--root", root, env=env)
    return root, host


def read(root, path):
    return (root / path.lstrip("/")).read_text()


def snapshot(root):
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if not os.path.islink(p):
                out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


def test_amd_systemd_boot_plan_apply_check(tmp_path):
    root, host = tree(tmp_path, "amd-amdgpu-systemd-boot", AMD_YAML)
    before = snapshot(root)
    r = host("plan", "-o", "json")
    assert r.rc == 0, r
    plan = r.json()
    assert plan["node"] == "pve-amd" and plan["reboot"] is True
    edits = {e["file"]: e for e in plan["edits"]}
    assert list(edits) == [
        "/etc/kernel/cmdline", "/etc/modprobe.d/vfio.conf", "/etc/modprobe.d/blacklist.conf",
        "/etc/modules", "/etc/apt/sources.list.d/pve-enterprise.list",
        "/etc/apt/sources.list.d/pve-no-subscription.list", "/etc/network/interfaces",
        "/etc/chrony/chrony.conf"]
    k = edits["/etc/kernel/cmdline"]
    assert k["commands"] == ["proxmox-boot-tool refresh"] and k["reboot"] is True
    assert "-root=ZFS=rpool/ROOT/pve-1 boot=zfs\n+root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt\n" \
        in k["diff"]
    assert edits["/etc/modprobe.d/vfio.conf"]["action"] == "create"
    assert edits["/etc/network/interfaces"]["reboot"] is False
    assert edits["/etc/network/interfaces"]["commands"] == ["ifreload -a"]

    # no plan seen, no change: without a terminal apply needs --yes
    r = host("apply")
    assert r.rc == 1 and "refusing to apply without --yes" in r.err, r
    assert snapshot(root) == before

    r = host("apply", "--yes")
    assert r.rc == 0, r
    assert "run on the node: proxmox-boot-tool refresh" in r.out
    assert "run on the node: update-initramfs -u -k all" in r.out
    assert read(root, "/etc/kernel/cmdline") == "root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt\n"
    assert read(root, "/etc/modprobe.d/vfio.conf") == (
        "options vfio-pci ids=1002:67df,1002:aaf0\nsoftdep amdgpu pre: vfio-pci\n"
        "softdep radeon pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n")
    # the onboard audio's driver is never blacklisted
    assert read(root, "/etc/modprobe.d/blacklist.conf") == "blacklist amdgpu\nblacklist radeon\n"
    assert read(root, "/etc/modules").endswith("vfio\nvfio_iommu_type1\nvfio_pci\n")
    assert read(root, "/etc/apt/sources.list.d/pve-enterprise.list") == \
        "# deb https://enterprise.proxmox.com/debian/pve bookworm pve-enterprise\n"
    assert read(root, "/etc/apt/sources.list.d/pve-no-subscription.list") == \
        "deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription\n"
    assert read(root, "/etc/network/interfaces").endswith(
        "auto vmbr1\niface vmbr1 inet static\n\taddress 10.10.10.1/24\n\tbridge-ports none\n"
        "\tbridge-stp off\n\tbridge-fd 0\n"
        "\tpost-up   echo 1 > /proc/sys/net/ipv4/ip_forward\n"
        "\tpost-up   iptables -t nat -A POSTROUTING -s '10.10.10.0/24' -o vmbr0 -j MASQUERADE\n"
        "\tpost-down iptables -t nat -D POSTROUTING -s '10.10.10.0/24' -o vmbr0 -j MASQUERADE\n")
    chrony = read(root, "/etc/chrony/chrony.conf")
    assert "server ntp1.example.org iburst\nserver ntp2.example.org iburst\n" in chrony
    assert "pool " not in chrony and "driftfile /var/lib/chrony/chrony.drift" in chrony
    # every replaced file has its old copy beside it
    baks = [p for p in snapshot(root) if ".pvelab-2" in p]
    assert sorted(os.path.basename(p).split(".pvelab-2")[0] for p in baks) == [
        "chrony.conf", "cmdline", "interfaces", "modules", "pve-enterprise.list"]
    for p in baks:
        assert snapshot(root)[p] == before[p.split(".pvelab-2")[0]]

    # a second plan: nothing to do
    r = host("plan")
    assert r.rc == 0 and r.out == "No changes: pve-amd is as declared.\n", r
    assert host("plan", "-o", "json").json()["edits"] == []

    # the history has each file before and after
    env = {"PVELAB_STATE": str(tmp_path / "state.db")}
    r = run("history", "host:pve-amd:/etc/kernel/cmdline", "-o", "json", env=env)
    assert r.rc == 0, r
    rows = r.json()
    assert [x["state"]["text"] for x in rows] == [
        "root=ZFS=rpool/ROOT/pve-1 boot=zfs\n", "root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt\n"]

    # before the reboot, check says exactly that
    r = host("check", "-o", "json")
    found = {(f["id"], f["subject"]): f for f in r.json()["hosts"][0]["findings"]}
    assert found[("vfio-modules", "vfio")]["status"] == "pass"
    assert found[("kernel-params", "boot")]["status"] == "warn"
    assert "reboot is pending" in found[("kernel-params", "boot")]["title"]
    assert found[("gpu-driver", "0000:0a:00.0")]["status"] == "warn"
    assert "until the next boot" in found[("gpu-driver", "0000:0a:00.0")]["title"]

    # the test plays the reboot: the new command line, vfio-pci bound
    (root / "proc/cmdline").write_text(
        "initrd=\\EFI\\proxmox\\6.8.12-4-pve\\initrd.img-6.8.12-4-pve "
        "root=ZFS=rpool/ROOT/pve-1 boot=zfs iommu=pt\n")
    for fn in ("0000:0a:00.0", "0000:0a:00.1"):
        link = root / f"sys/bus/pci/devices/{fn}/driver"
        link.unlink()
        os.symlink("../../../../bus/pci/drivers/vfio-pci", link)
    r = host("check", "-o", "json")
    found = {(f["id"], f["subject"]): f["status"] for f in r.json()["hosts"][0]["findings"]}
    host_side = {k: v for k, v in found.items() if not k[1].startswith("vm ")}
    assert set(host_side.values()) == {"pass"}, host_side
    assert len(host_side) == 9


def test_existing_ids_line_edited_in_place(tmp_path):
    root, host = tree(tmp_path, "nouveau-holds", "hosts:\n  - node: pve-cml\n"
                      "    vfio: {devices: ['10de:21c4']}\n")
    r = host("apply", "--yes", "-o", "json")
    assert r.rc == 0, r
    assert read(root, "/etc/modprobe.d/vfio.conf") == (
        "options vfio-pci ids=10de:21c4,10de:1aeb,10de:1aec,10de:1aed\n"
        "softdep nouveau pre: vfio-pci\nsoftdep nvidia pre: vfio-pci\n"
        "softdep nvidiafb pre: vfio-pci\nsoftdep snd_hda_intel pre: vfio-pci\n")
    # modules-load.d already loads vfio: /etc/modules is left alone
    assert "vfio" not in read(root, "/etc/modules")
    assert host("plan").out == "No changes: pve-cml is as declared.\n"


def test_grub_line_gets_the_intel_parameters(tmp_path):
    root, host = tree(tmp_path, "iommu-off", "hosts:\n  - node: pve-old\n    iommu: true\n")
    r = host("apply", "--yes")
    assert r.rc == 0, r
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"\n' in \
        read(root, "/etc/default/grub")
    assert "run on the node: update-grub" in r.out
    assert 'GRUB_CMDLINE_LINUX=""\n' in read(root, "/etc/default/grub")
    assert host("plan").out == "No changes: pve-old is as declared.\n"


PVE9_ENTERPRISE = """\
Types: deb
URIs: https://enterprise.proxmox.com/debian/pve
Suites: trixie
Components: pve-enterprise
Signed-By: /usr/share/keyrings/proxmox-archive-keyring.gpg
"""
PVE9_CEPH = """\
Types: deb
URIs: https://enterprise.proxmox.com/debian/ceph-squid
Suites: trixie
Components: enterprise
Signed-By: /usr/share/keyrings/proxmox-archive-keyring.gpg
"""


def test_deb822_sources_of_pve9_both_ways(tmp_path):
    root, host = tree(tmp_path, "intel-nvidia-grub",
                      "hosts:\n  - node: pve\n    repositories: no-subscription\n")
    sl = root / "etc/apt/sources.list.d"
    (sl / "pve-enterprise.list").unlink()
    (sl / "pve-enterprise.sources").write_text(PVE9_ENTERPRISE)
    (sl / "ceph.sources").write_text(PVE9_CEPH)
    (root / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\n'
                                         "VERSION_CODENAME=trixie\n")
    r = host("apply", "--yes")
    assert r.rc == 0, r
    assert read(root, "/etc/apt/sources.list.d/pve-enterprise.sources") == \
        PVE9_ENTERPRISE + "Enabled: false\n"
    assert read(root, "/etc/apt/sources.list.d/ceph.sources") == PVE9_CEPH + "Enabled: false\n"
    assert read(root, "/etc/apt/sources.list.d/proxmox.sources") == (
        "Types: deb\nURIs: http://download.proxmox.com/debian/pve\nSuites: trixie\n"
        "Components: pve-no-subscription\n"
        "Signed-By: /usr/share/keyrings/proxmox-archive-keyring.gpg\n")
    assert host("plan").out == "No changes: pve is as declared.\n"
    # and back to the enterprise repository
    (tmp_path / "pvelab.yaml").write_text("hosts:\n  - node: pve\n    repositories: enterprise\n")
    r = host("apply", "--yes")
    assert r.rc == 0, r
    assert read(root, "/etc/apt/sources.list.d/pve-enterprise.sources") == PVE9_ENTERPRISE
    assert read(root, "/etc/apt/sources.list.d/proxmox.sources").endswith("Enabled: false\n")
    assert host("plan").out == "No changes: pve is as declared.\n"


@pytest.mark.parametrize("yaml,msg", [
    ("    vfio: {devices: ['05:00']}\n",
     "vfio: devices: '05:00' is no PCI device of this node"),
    ("    nat: [{bridge: vmbr7, via: vmbr0}]\n",
     "nat: vmbr7 has no address in /etc/network/interfaces"),
    ("    nat: [{bridge: vmbr7, via: vmbr0, address: 10.1.2.300/24}]\n",
     "nat: '10.1.2.300/24' is not an IPv4 address/prefix"),
])
def test_declarations_the_node_cannot_meet(tmp_path, yaml, msg):
    root, host = tree(tmp_path, "intel-nvidia-grub", "hosts:\n  - node: pve\n" + yaml)
    before = snapshot(root)
    r = host("apply", "--yes")
    assert r.rc == 1 and msg in r.err, r
    assert snapshot(root) == before


def test_sshd_hardening_never_locks_root_out(tmp_path):
    yaml = ("hosts:\n  - node: pve\n    ssh: {password_authentication: false, "
            "permit_root_login: prohibit-password}\n")
    root, host = tree(tmp_path, "intel-nvidia-grub", yaml)
    before = snapshot(root)
    # keys only, while root has no key: refused, nothing written
    r = host("apply", "--yes")
    assert r.rc == 1 and "password_authentication: false would lock root out" in r.err, r
    assert snapshot(root) == before
    (root / "root" / ".ssh").mkdir(parents=True)
    (root / "root" / ".ssh" / "authorized_keys").write_text("ssh-ed25519 AAAAC3Nz op@desk\n")
    # a sshd_config that would not read the drop-in: refused
    (root / "etc" / "ssh").mkdir()
    (root / "etc" / "ssh" / "sshd_config").write_text("PermitRootLogin yes\n")
    r = host("plan")
    assert r.rc == 1 and "does not include sshd_config.d/*.conf" in r.err, r
    (root / "etc" / "ssh" / "sshd_config").write_text(
        "Include /etc/ssh/sshd_config.d/*.conf\nPermitRootLogin yes\n")
    r = host("plan", "-o", "json")
    assert r.rc == 0, r
    (e,) = r.json()["edits"]
    assert e["file"] == "/etc/ssh/sshd_config.d/pvelab.conf" and e["reboot"] is False
    assert e["commands"] == ["sshd -t", "systemctl reload ssh"]
    r = host("apply", "--yes")
    assert r.rc == 0, r
    assert "run on the node: sshd -t" in r.out and "run on the node: systemctl reload ssh" in r.out
    assert read(root, "/etc/ssh/sshd_config.d/pvelab.conf") == (
        "# written by pvelab (hosts: ssh:)\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n")
    assert host("plan").out == "No changes: pve is as declared.\n"


def test_no_entry_for_the_node(tmp_path):
    root, host = tree(tmp_path, "intel-nvidia-grub", "hosts:\n  - node: other\n    iommu: on\n")
    r = host("plan")
    assert r.rc == 1 and "has no hosts: entry for node 'pve'" in r.err, r


def test_homeserver_example_host_section(tmp_path):
    """examples/homeserver.yaml's hosts: entry on the Intel + NVIDIA node
    (already set up for passthrough): only what it lacks is planned - the
    softdeps of the other NVIDIA drivers, repositories, NAT, NTP."""
    root = tmp_path / "node"
    shutil.copytree(os.path.join(HOSTS, "intel-nvidia-grub"), root, symlinks=True)
    cfg = os.path.join(os.path.dirname(TESTDATA), "..", "examples", "homeserver.yaml")
    env = {"PVELAB_STATE": str(tmp_path / "state.db")}
    r = run("-c", cfg, "host", "plan", "pve", "--root", root, "-o", "json", env=env)
    assert r.rc == 0, r
    assert [e["file"] for e in r.json()["edits"]] == [
        "/etc/modprobe.d/vfio.conf", "/etc/apt/sources.list.d/pve-enterprise.list",
        "/etc/apt/sources.list.d/pve-no-subscription.list", "/etc/network/interfaces",
        "/etc/chrony/chrony.conf", "/etc/ssh/sshd_config.d/pvelab.conf"]
    assert r.json()["edits"][0]["diff"].endswith(
        " softdep nouveau pre: vfio-pci\n+softdep nvidia pre: vfio-pci\n"
        "+softdep nvidiafb pre: vfio-pci\n+softdep snd_hda_intel pre: vfio-pci\n")
    r = run("-c", cfg, "host", "apply", "pve", "--root", root, "--yes", env=env)
    assert r.rc == 0, r
    assert "-s '10.0.100.0/24' -o vmbr0 -j MASQUERADE" in read(root, "/etc/network/interfaces")
    r = run("-c", cfg, "host", "plan", "pve", "--root", root, env=env)
    assert r.out == "No changes: pve is as declared.\n", r
