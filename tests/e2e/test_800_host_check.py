"""pvelab host check --root against the fixture trees of real hosts in
tests/data/hosts/ (sources in tests/data/SOURCE.md): each tree gives exactly
the findings and fixes a passthrough expert would, and a hostile tree cannot
make pvelab read outside it."""
import os

from conftest import TESTDATA, run

HOSTS = os.path.join(TESTDATA, "hosts")


def check(name, *extra):
    r = run("host", "check", "--root", os.path.join(HOSTS, name), "-o", "json", *extra)
    assert r.rc in (0, 1, 2), r
    doc = r.json()
    assert len(doc["hosts"]) == 1
    h = doc["hosts"][0]
    return r, {(f["id"], f["subject"]): f for f in h["findings"]}, h


def statuses(found):
    return {k: f["status"] for k, f in found.items()}


def test_intel_nvidia_grub_all_pass():
    r, found, h = check("intel-nvidia-grub")
    assert r.rc == 0, r
    assert h["summary"] == {"pass": 10, "warn": 0, "fail": 0}
    assert statuses(found) == {
        ("cpu-virt", "cpu"): "pass", ("boot-loader", "boot"): "pass",
        ("iommu", "iommu"): "pass", ("kernel-params", "boot"): "pass",
        ("interrupt-remapping", "iommu"): "pass", ("vfio-modules", "vfio"): "pass",
        ("gpu-group", "0000:01:00.0"): "pass", ("gpu-driver", "0000:01:00.0"): "pass",
        ("gpu-ids", "0000:01:00.0"): "pass", ("vm-hostpci", "vm 100 hostpci0"): "pass",
    }
    assert "GRUB" in found[("boot-loader", "boot")]["title"]
    assert "DMAR-IR: Enabled IRQ remapping in x2apic mode" in \
        found[("interrupt-remapping", "iommu")]["evidence"][0]
    # the boot GPU (the iGPU, boot_vga=1, i915) is the host's own: not judged
    assert not any(s == "0000:00:02.0" for _, s in found)


def test_amd_systemd_boot_amdgpu_holds_the_card():
    r, found, _ = check("amd-amdgpu-systemd-boot")
    assert r.rc == 1, r
    bl = found[("boot-loader", "boot")]
    assert "systemd-boot" in bl["title"] and "/etc/kernel/cmdline" in bl["title"]
    assert found[("iommu", "iommu")]["status"] == "pass"
    drv = found[("gpu-driver", "0000:0a:00.0")]
    assert drv["status"] == "fail"
    assert drv["evidence"] == ["0000:0a:00.0 VGA compatible controller [1002:67df] is held by "
                               "amdgpu; 0000:0a:00.1 Audio device [1002:aaf0] is held by "
                               "snd_hda_intel"]
    assert drv["fix"]["file"] == "/etc/modprobe.d/vfio.conf"
    assert "options vfio-pci ids=1002:67df,1002:aaf0" in drv["fix"]["change"]
    assert "softdep amdgpu pre: vfio-pci" in drv["fix"]["change"]
    assert drv["fix"]["commands"] == ["update-initramfs -u -k all"]
    assert drv["fix"]["initramfs"] and drv["fix"]["reboot"]
    mods = found[("vfio-modules", "vfio")]
    assert mods["status"] == "warn"
    # kernel 6.8: vfio_virqfd is part of vfio, not asked for
    assert mods["fix"]["change"] == "add the lines: vfio vfio_iommu_type1 vfio_pci"
    # the VM: only function .0 passed, i440fx with pcie=1, SeaBIOS
    fn = found[("vm-functions", "vm 101 hostpci0")]
    assert fn["status"] == "warn" and fn["fix"]["change"] == "hostpci0: 0000:0a:00,pcie=1"
    assert found[("vm-machine", "vm 101 hostpci0")]["status"] == "fail"
    assert found[("vm-machine", "vm 101 hostpci0")]["fix"]["change"] == "machine: q35"
    assert found[("vm-bios", "vm 101 hostpci0")]["status"] == "warn"


def test_iommu_off_says_which_grub_line():
    r, found, _ = check("iommu-off")
    assert r.rc == 1, r
    io = found[("iommu", "iommu")]
    assert io["status"] == "fail"
    assert io["fix"] == {
        "file": "/etc/default/grub", "line": 9,
        "change": 'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on iommu=pt"',
        "commands": ["update-grub"], "initramfs": False, "reboot": True,
    }
    # no groups: no group finding, no remapping finding
    assert ("gpu-group", "0000:01:00.0") not in found
    assert ("interrupt-remapping", "iommu") not in found
    # kernel 5.15 still needs vfio_virqfd
    assert found[("vfio-modules", "vfio")]["fix"]["change"].endswith("vfio_pci vfio_virqfd")


def test_gpu_sharing_its_group_with_usb_and_sata():
    r, found, _ = check("gpu-shares-usb")
    assert r.rc == 1, r
    g = found[("gpu-group", "0000:07:00.0")]
    assert g["status"] == "fail"
    assert g["evidence"] == ["/sys/kernel/iommu_groups/12: 0000:01:00.0 USB controller "
                             "[1022:43d0] driver xhci_hcd; 0000:01:00.1 SATA controller "
                             "[1022:43c8] driver ahci"]
    assert "pcie_acs_override=downstream,multifunction" in g["fix"]["change"]
    assert found[("gpu-driver", "0000:07:00.0")]["status"] == "pass"
    assert [k for k, f in found.items() if f["status"] != "pass"] == [("gpu-group", "0000:07:00.0")]


def test_nouveau_holds_the_card():
    r, found, _ = check("nouveau-holds")
    assert r.rc == 1, r
    drv = found[("gpu-driver", "0000:01:00.0")]
    assert drv["status"] == "fail"
    assert "0000:01:00.0 VGA compatible controller [10de:21c4] is held by nouveau" in \
        drv["evidence"][0]
    assert "softdep nouveau pre: vfio-pci" in drv["fix"]["change"]
    ids = found[("gpu-ids", "0000:01:00.0")]
    assert ids["status"] == "warn"
    assert ids["fix"]["file"] == "/etc/modprobe.d/vfio.conf" and ids["fix"]["line"] == 1
    assert ids["fix"]["change"] == \
        "options vfio-pci ids=10de:21c4,10de:1aeb,10de:1aec,10de:1aed"
    # the VM uses the PCI mapping, which resolves to this node's card
    vm = found[("vm-hostpci", "vm 102 hostpci0")]
    assert vm["status"] == "pass"
    assert "mapping gtx1660: 0000:01:00" in vm["evidence"]
    # and the mapping itself matches the card: id, IOMMU group, subsystem id
    m = found[("pci-mapping", "mapping gtx1660")]
    assert m["status"] == "pass", m


def test_text_output_names_the_fix():
    r = run("host", "check", "--root", os.path.join(HOSTS, "iommu-off"))
    assert r.rc == 1, r
    assert 'fix: /etc/default/grub line 9: GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=on ' \
           'iommu=pt"' in r.out
    assert "run: update-grub" in r.out
    assert r.out.rstrip().endswith("2 pass, 1 warn, 2 fail")


def test_facts_are_json():
    r = run("host", "check", "--root", os.path.join(HOSTS, "intel-nvidia-grub"), "--facts")
    assert r.rc == 0, r
    f = r.json()
    assert f["cpu"]["vendor"] == "intel" and f["cpu"]["virt"] == "vmx"
    assert f["bootloader"]["kind"] == "grub"
    gpu = [d for d in f["pci"] if d["addr"] == "0000:01:00.0"][0]
    assert gpu == {"addr": "0000:01:00.0", "vendor": "10de", "device": "2184", "class": "030000",
                   "boot_vga": False, "driver": "vfio-pci", "group": "2"}


def test_usage_errors():
    r = run("host", "check")
    assert r.rc == 64 and "--root DIR" in r.err, r
    r = run("host", "check", "--root", "/nonexistent-pvelab-tree")
    assert r.rc == 1 and "cannot open the host tree '/nonexistent-pvelab-tree'" in r.err, r
    r = run("host", "frobnicate", "--local")
    assert r.rc == 64 and "not 'frobnicate'" in r.err, r


def test_hostile_tree_stays_inside(tmp_path):
    """A tree someone sent: its symlinks point outside it, one file is huge.
    Nothing outside the tree is read, nothing crashes, memory stays bounded."""
    root = tmp_path / "tree"
    (root / "proc").mkdir(parents=True)
    (root / "etc").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("GRUB_CMDLINE_LINUX_DEFAULT=\"top-secret-value\"\n")
    os.symlink(str(secret), root / "etc" / "hostname")
    (root / "etc" / "default").mkdir()
    os.symlink("../../../secret.txt", root / "etc" / "default" / "grub")
    with open(root / "proc" / "cpuinfo", "wb") as f:
        f.write(b"vendor_id\t: GenuineIntel\nflags\t: " + b"x" * (5 << 20) + b"\n")
    (root / "proc" / "cmdline").write_bytes(b"quiet \xff\xfe intel_iommu=on\n")
    r = run("host", "check", "--root", str(root), "-o", "json")
    assert r.rc == 1, r
    assert "top-secret-value" not in r.out + r.err
    found = {f["id"]: f for f in r.json()["hosts"][0]["findings"]}
    assert found["cpu-virt"]["status"] == "warn"  # over the cap: not read
    assert found["iommu"]["status"] == "fail"
