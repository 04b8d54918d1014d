"""pvelab discover against a loopback lab (tests/e2e/discover_lab.py): sshd,
TigerVNC, an X.224 responder, a pveproxy-like HTTPS service and Redfish BMCs
serving the real captures in tests/data/redfish/. Every host must be identified
by its protocol, with vendor and model where the captures show them; closed
and silent ports must be reported as such, within bounded timeouts; and the
RDM / Ansible exports must be well-formed."""
import json
import os
import re
import sys
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import discover_lab  # noqa: E402
from discover_lab import NET  # noqa: E402  this run's own 127.a.b.0/24
from conftest import TESTDATA, run  # noqa: E402

PORTS = "22,80,443,3389,5900,5901,8006,8007,623/udp"


@pytest.fixture(scope="module")
def lab():
    lab = discover_lab.Lab(TESTDATA)
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def scan(lab):
    """One scan of the whole lab (the /29 plus the hosts beyond it)."""
    r = run("discover", f"{NET}.0/29", f"{NET}.8", f"{NET}.9", f"{NET}.12", f"{NET}.13",
            "--ports", PORTS, "-o", "json", timeout=60)
    assert r.rc == 0, r
    recs = {h["address"]: h for h in r.json()}
    return recs


def port(rec, p, proto="tcp"):
    for e in rec["evidence"]:
        if e["port"] == p and e["proto"] == proto:
            return e
    raise AssertionError(f"no evidence for {p}/{proto} in {rec}")


def test_record_shape(scan):
    assert scan, "nothing found"
    for rec in scan.values():
        assert list(rec.keys()) == ["address", "name", "kind", "vendor", "model", "evidence",
                                    "urls"]
        assert rec["kind"] in ("idrac", "ilo", "bmc", "proxmox", "pbs", "linux-ssh",
                               "windows-rdp", "vnc", "unknown")
        # every port asked for is accounted for, in the order asked
        assert [f'{e["port"]}/{e["proto"]}' for e in rec["evidence"]] == [
            p if "/" in p else p + "/tcp" for p in PORTS.split(",")]


def test_sshd(lab, scan):
    if not lab.notes["sshd"]:
        pytest.skip("sshd cannot run here (needs root and openssh-server)")
    rec = scan[f"{NET}.2"]
    assert rec["kind"] == "linux-ssh"
    ssh = port(rec, 22)
    assert ssh["state"] == "open" and ssh["service"] == "ssh"
    assert ssh["banner"].startswith("SSH-2.0-OpenSSH_")
    assert ssh["software"].startswith("OpenSSH_")
    assert rec["vendor"] == "Debian" and ssh["os"] == "Debian"
    assert rec["model"] == ssh["software"]
    assert rec["urls"] == [f"ssh://{NET}.2"]
    # everything else on that address is closed: refused at once, not timed out
    for p in (80, 443, 3389, 5900, 5901, 8006, 8007):
        assert port(rec, p)["state"] == "closed"


def test_vnc(lab, scan):
    rec = scan[f"{NET}.3"]
    assert rec["kind"] == "vnc"
    v = port(rec, 5900)
    assert v["service"] == "vnc" and v["rfb_version"] == "3.8"
    expected = ["None"] if lab.notes["vnc"] == "Xtigervnc" else ["VNC Authentication"]
    assert v["security_types"] == expected
    assert port(rec, 5901)["state"] == "closed"
    assert rec["urls"] == [f"vnc://{NET}.3:5900"]


def test_rdp(scan):
    rec = scan[f"{NET}.4"]
    assert rec["kind"] == "windows-rdp"
    e = port(rec, 3389)
    assert e["service"] == "rdp" and e["selected_protocol"] == "hybrid"
    assert rec["model"] == "RDP (hybrid)"
    assert rec["urls"] == [f"rdp://{NET}.4:3389"]


def test_proxmox(scan):
    """pvelab sim on NET.5:8006, as a Proxmox VE node."""
    rec = scan[f"{NET}.5"]
    assert rec["kind"] == "proxmox"
    assert rec["vendor"] == "Proxmox" and rec["model"] == "Proxmox VE"
    e = port(rec, 8006)
    assert e["service"] == "proxmox"
    assert e["server"].startswith("pve-api-daemon/")
    assert e["tls"]["self_signed"] is True
    # the API answers unauthenticated calls only after 3 s: bounded by --timeout
    assert any("/api2/json/version: no answer within 1500 ms" in n for n in e["notes"])
    assert rec["urls"] == [f"https://{NET}.5:8006/"]


def test_proxmox_api_401_with_longer_timeout(lab):
    r = run("discover", f"{NET}.5", "--ports", "8006", "--timeout", "4500", "-o", "json")
    assert r.rc == 0, r
    api = r.json()[0]["evidence"][0]["api"]
    assert (api["path"], api["status"], api["reason"], api["server"]) == (
        "/api2/json/version", 401, "No ticket", "pve-api-daemon/3.0")
    assert r.json()[0]["kind"] == "proxmox"


def test_pbs(scan):
    rec = scan[f"{NET}.12"]
    assert (rec["kind"], rec["vendor"], rec["model"]) == ("pbs", "Proxmox",
                                                          "Proxmox Backup Server")
    e = port(rec, 8007)
    assert e["service"] == "pbs" and e["title"] == "pbs - Proxmox Backup Server"
    assert "server" not in e
    assert rec["urls"] == [f"https://{NET}.12:8007/"]


def test_pbs_api_401_shape(lab):
    """With a timeout beyond PBS's 3 s delay, the API's 401 in Proxmox's
    {"data": ...} envelope is seen too."""
    r = run("discover", f"{NET}.12", "--ports", "8007", "--timeout", "4500", "-o", "json")
    assert r.rc == 0, r
    api = r.json()[0]["evidence"][0]["api"]
    assert api["status"] == 401 and api["proxmox_envelope"] is True


def test_idrac9_fw6(scan):
    rec = scan[f"{NET}.6"]
    assert rec["kind"] == "idrac"
    assert rec["vendor"] == "Dell"
    assert rec["model"] == "Integrated Dell Remote Access Controller"
    e = port(rec, 443)
    rf = e["redfish"]
    assert e["service"] == "redfish"
    assert rf["redfish_version"] == "1.13.1"
    assert rf["service_root_type"] == "ServiceRoot.v1_10_0"
    assert rf["service_tag"] == "F54P1G3"
    assert "Vendor Dell" in rf["hints"] and "Oem.Dell" in rf["hints"]
    assert e["tls"]["subject"] == "CN=idrac-F54P1G3,O=Dell Inc.,C=US"
    assert e["tls"]["expired"] is False
    assert port(rec, 80)["state"] == "closed"
    assert rec["urls"] == [f"https://{NET}.6/"]


def test_idrac9_fw3(scan):
    rec = scan[f"{NET}.9"]
    assert (rec["kind"], rec["vendor"]) == ("idrac", "Dell")
    rf = port(rec, 443)["redfish"]
    assert rf["redfish_version"] == "1.4.0"
    assert rf["service_tag"] == "GTS7DV2"
    assert "vendor" in rf and "Vendor Dell" not in rf["hints"]  # this root has no Vendor


def test_idrac_legacy(lab, scan):
    rec = scan[f"{NET}.7"]
    # no Vendor, Product or Oem in this root: the iDRAC.Embedded.1 links give it away
    assert (rec["kind"], rec["vendor"], rec["model"]) == ("idrac", "Dell", "iDRAC")
    e = port(rec, 443)
    assert e["redfish"]["redfish_version"] == "1.0.2"
    assert e["redfish"]["hints"] == ["link Managers/iDRAC.Embedded.1"]
    if lab.notes["tls10"]:
        assert e["tls"]["version"] == "TLSv1"  # legacy TLS is spoken, for identification
    if lab.notes["expired_cert"]:
        assert e["tls"]["expired"] is True
        assert e["tls"]["not_after"].startswith("2020-")


def test_supermicro(scan):
    rec = scan[f"{NET}.8"]
    assert (rec["kind"], rec["vendor"]) == ("bmc", "Supermicro")
    rf = port(rec, 443)["redfish"]
    assert rf["redfish_version"] == "1.11.0"
    assert rf["uuid"] == "00000000-0000-0000-0000-7CC25550A8FF"
    assert "Oem.Supermicro" in rf["hints"]


def test_ipmi(scan):
    rec = scan[f"{NET}.13"]
    assert rec["kind"] == "bmc"
    e = port(rec, 623, "udp")
    assert e["state"] == "open" and e["service"] == "ipmi" and e["ipmi"] is True
    assert e["iana"] == 4542


def test_no_credentials_sent(lab):
    """The BMC fixture answers 401 to anything but the service root: discovery
    must never have needed more (and sends no Authorization header at all)."""
    r = run("discover", f"{NET}.6", "--ports", "443", "-o", "json", "-v")
    assert r.rc == 0
    assert "Authorization" not in r.out + r.err


def test_text_output(scan):
    r = run("discover", f"{NET}.0/29", f"{NET}.8", "--ports", "22,443,3389,5900,8006",
            "--no-color")
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["ADDRESS", "NAME", "KIND", "VENDOR", "MODEL", "OPEN"]
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert f"{NET}.0" not in rows
    col = lines[0].index("KIND")
    assert rows[f"{NET}.6"][col:].startswith("idrac ")
    assert rows[f"{NET}.8"][col:].startswith("bmc ")
    assert rows[f"{NET}.6"].rstrip().endswith("443/redfish")
    assert "hosts found" in r.err


def test_closed_and_silent_ports():
    """Closed (refused) ports are reported as closed, a port that never answers
    the SYN as filtered, an open port that says nothing as open with a note;
    the run ends within the bounded timeout."""
    silent = discover_lab.SilentPort(f"{NET}.10", 2000)
    mute = discover_lab.mute_server(f"{NET}.10", 22)
    try:
        r = run("discover", f"{NET}.10", "--ports", "22,2000,2001", "--timeout", "700",
                "-o", "json", timeout=20)
    finally:
        silent.stop()
        mute.stop()
    assert r.rc == 0, r
    (rec,) = r.json()
    ev = {e["port"]: e for e in rec["evidence"]}
    assert ev[2001]["state"] == "closed"
    assert ev[2000]["state"] == "filtered"
    assert ev[22]["state"] == "open"
    assert ev[22]["notes"] == ["closed without an SSH banner"] or \
        any("no answer within 700 ms" in n for n in ev[22]["notes"])
    assert rec["kind"] == "unknown"


def test_nothing_found():
    r = run("discover", f"{NET}.250", "--ports", "1,2", "-o", "json")
    assert r.rc == 0, r
    assert r.json() == []
    r = run("discover", f"{NET}.250", "--ports", "1,2", "--all", "-o", "json")
    assert [e["state"] for e in r.json()[0]["evidence"]] == ["closed", "closed"]
    assert r.json()[0]["kind"] == "unknown"


# ---- exports ----

RDM_TYPES = {"Group", "RDPConfigured", "SSHShell", "WebBrowser", "VNC", "Host"}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def export(fmt, tmp_path, *extra):
    out = tmp_path / ("export." + fmt)
    r = run("discover", f"{NET}.0/29", f"{NET}.8", f"{NET}.9", "--ports", PORTS,
            "--export", fmt, "--out", out, *extra, "-o", "json", timeout=60)
    assert r.rc == 0, r
    return out.read_text(), r.json()


def test_rdm_xml(lab, tmp_path):
    text, recs = export("rdm", tmp_path)
    root = ET.fromstring(text)  # well-formed
    assert root.tag == "RDMExport"
    assert [c.tag for c in root] == ["Connections"]
    conns = root.find("Connections").findall("Connection")
    assert len(conns) > len(recs)
    folders = set()
    entries = {}
    for c in conns:
        fields = {ch.tag: ch for ch in c}
        assert fields["ConnectionType"].text in RDM_TYPES
        assert GUID.match(fields["ID"].text)
        assert fields["Name"].text
        if fields["ConnectionType"].text == "Group":
            folders.add(fields["Group"].text)
        else:
            entries[fields["Name"].text] = fields
    ids = [c.find("ID").text for c in conns]
    assert len(ids) == len(set(ids))
    assert "Discovered" in folders
    for name, f in entries.items():
        assert f["Group"].text in folders, f"{name} is in a folder that is not exported"
    rdp = entries[f"{NET}.4"]
    assert rdp["ConnectionType"].text == "RDPConfigured"
    assert rdp["Url"].text == f"{NET}.4:3389"
    assert rdp["Group"].text == "Discovered\\Windows"
    idrac = entries[f"{NET}.6"]
    assert idrac["ConnectionType"].text == "WebBrowser"
    assert idrac["WebBrowserUrl"].text == f"https://{NET}.6/"
    assert idrac["Group"].text == "Discovered\\iDRAC"
    assert entries[f"{NET}.5"]["WebBrowserUrl"].text == f"https://{NET}.5:8006/"
    assert entries[f"{NET}.5"]["Group"].text == "Discovered\\Proxmox VE"
    assert entries[f"{NET}.8"]["Group"].text == "Discovered\\BMC"
    assert entries[f"{NET}.3"]["ConnectionType"].text == "VNC"
    if lab.notes["sshd"]:
        ssh = entries[f"{NET}.2"]
        assert ssh["ConnectionType"].text == "SSHShell"
        assert ssh["Terminal"].find("Host").text == f"{NET}.2"
        assert ssh["Terminal"].find("HostPort").text == "22"
        assert ssh["Group"].text == "Discovered\\Linux"
    # the same scan gives the same IDs: a re-import updates, not duplicates
    again, _ = export("rdm", tmp_path)
    assert [c.find("ID").text for c in ET.fromstring(again).iter("Connection")] == ids


def test_rdm_xml_escaping(tmp_path):
    """Text from the network is escaped: a Redfish root whose Product has markup."""
    cert = discover_lab.make_cert(str(tmp_path), "x", "/CN=x")
    root = json.dumps({"@odata.id": "/redfish/v1", "RedfishVersion": "1.6.0",
                       "Vendor": "Acme & Sons", "Product": "<BMC> \"x\" 'y'"}).encode()
    srv = discover_lab.redfish_server(f"{NET}.11", None, cert, root=root)
    try:
        out = tmp_path / "x.rdm"
        r = run("discover", f"{NET}.11", "--ports", "443", "--export", "rdm", "--out", out)
        assert r.rc == 0, r
        text = out.read_text()
    finally:
        srv.stop()
    assert "&amp;" in text and "&lt;BMC&gt;" in text
    conn = [c for c in ET.fromstring(text).iter("Connection")
            if c.find("ConnectionType").text == "WebBrowser"][0]
    assert "Acme & Sons <BMC> \"x\" 'y'" in conn.find("Description").text


def test_rdm_json(lab, tmp_path):
    text, recs = export("rdm-json", tmp_path)
    doc = json.loads(text)
    conns = doc["Connections"]
    types = {c["Name"]: c["ConnectionType"] for c in conns if c["ConnectionType"] != 25}
    assert types[f"{NET}.4"] == 1    # RDPConfigured
    assert types[f"{NET}.6"] == 5    # WebBrowser
    assert types[f"{NET}.3"] == 4    # VNC
    assert any(c["ConnectionType"] == 25 and c["Name"] == "iDRAC" for c in conns)
    rdp = [c for c in conns if c["Name"] == f"{NET}.4"][0]
    assert rdp["OpenEmbedded"] is True and rdp["Url"] == f"{NET}.4:3389"


def test_inventory(lab, tmp_path):
    yaml = pytest.importorskip("yaml")
    text, recs = export("inventory", tmp_path)
    inv = yaml.safe_load(text)
    groups = inv["all"]["children"]
    assert set(groups["idrac"]["hosts"]) == {f"{NET}.6", f"{NET}.7", f"{NET}.9"}
    assert groups["idrac"]["hosts"][f"{NET}.6"]["pvelab_vendor"] == "Dell"
    assert groups["idrac"]["hosts"][f"{NET}.6"]["ansible_host"] == f"{NET}.6"
    assert set(groups["bmc"]["hosts"]) == {f"{NET}.8"}
    assert set(groups["proxmox"]["hosts"]) == {f"{NET}.5"}
    assert set(groups["windows_rdp"]["hosts"]) == {f"{NET}.4"}
    assert groups["proxmox"]["hosts"][f"{NET}.5"]["pvelab_urls"] == [f"https://{NET}.5:8006/"]
    if lab.notes["sshd"]:
        assert set(groups["linux_ssh"]["hosts"]) == {f"{NET}.2"}


def test_export_to_stdout(lab):
    r = run("discover", f"{NET}.4", "--ports", "3389", "--export", "rdm")
    assert r.rc == 0, r
    assert ET.fromstring(r.out).tag == "RDMExport"
