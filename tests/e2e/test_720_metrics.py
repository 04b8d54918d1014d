"""The metrics of `pvelab serve` scraped by a real Prometheus (Debian's
`prometheus`, started here on a free loopback port): /metrics with a bearer
token, the exporter's /pve?target=… path, and /metrics over TLS with a
client certificate. The series follow guests created, stopped and deleted
through the simulator; promtool checks the exposition and the alerting
rules; every PromQL expression of the Grafana dashboard evaluates."""
import calendar
import gzip
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse

import proxmoxer
import pytest
import requests

from conftest import SRC, TESTDATA, run
from simfix import start_sim, stop_sim
from test_700_serve import Server, sim_env, until

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
RULES = os.path.join(SRC, "contrib", "prometheus", "pvelab-alerts.yml")
DASHBOARD = os.path.join(SRC, "contrib", "grafana", "pvelab-pve.json")
# the one lint promtool has for the exposition: the exporter's own name, kept
# for compatibility (prometheus-pve-exporter writes the same gauge)
EXPORTER_LINT = 'pve_not_backed_up_total non-counter metrics should not have "_total" suffix'


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1, a client certificate it
    issues, and a client certificate of another CA."""
    for ca in ("ca", "other"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", f"{ca}-key.pem", "-out", f"{ca}.pem", "-days", "2",
                "-subj", f"/CN={ca}", cwd=d)
    for name, ca, ext in (("server", "ca", "subjectAltName=IP:127.0.0.1"),
                          ("prometheus", "ca", "extendedKeyUsage=clientAuth"),
                          ("intruder", "other", "extendedKeyUsage=clientAuth")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={name}",
                cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                f"{ca}-key.pem", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", f"{name}.ext", cwd=d)
    for f in d.glob("*-key.pem"):
        f.chmod(0o600)


class Prometheus:
    def __init__(self, d, config):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (d / "prometheus.yml").write_text(config)
        self.log = open(d / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file", str(d / "prometheus.yml"),
             "--web.listen-address", f"127.0.0.1:{self.port}",
             "--storage.tsdb.path", str(d / "tsdb"), "--log.level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        until(self.ready, "Prometheus to be ready", deadline=60)

    def ready(self):
        assert self.proc.poll() is None, (self.log.name, open(self.log.name).read())
        try:
            return requests.get(self.url + "/-/ready", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def query(self, expr):
        r = requests.get(self.url + "/api/v1/query", params={"query": expr}, timeout=20)
        body = r.json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def value(self, expr):
        """The one sample of expr, or None when there is none."""
        res = self.query(expr)
        assert len(res) <= 1, (expr, res)
        return float(res[0]["value"][1]) if res else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def pve(sim):
    user, rest = sim["token"].split("!", 1)
    name, secret = rest.split("=", 1)
    return proxmoxer.ProxmoxAPI(sim["host"], port=sim["port"], user=user, token_name=name,
                                token_value=secret, verify_ssl=False)


def wait_task(api, node, upid):
    until(lambda: api.nodes(node).tasks(upid).status.get()["status"] == "stopped",
          f"task {upid}")
    assert api.nodes(node).tasks(upid).status.get()["exitstatus"] == "OK"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not (os.access(PROMETHEUS, os.X_OK) and os.access(PROMTOOL, os.X_OK)):
        pytest.fail("prometheus and promtool are missing (scripts/install-deps test installs "
                    "Debian's prometheus)")
    d = tmp_path_factory.mktemp("metrics")
    sim = start_sim("--seed", os.path.join(TESTDATA, "metrics", "seed.yaml"))
    api = pve(sim)
    api.nodes("pve2").qemu(106).config.put(lock="backup")
    api.cluster.ha.resources.post(sid="vm:105", state="started")
    make_pki(d)
    env = sim_env(sim, d / "state.db")
    r = run("token", "create", "prometheus", "--role", "viewer", env=env)
    assert r.rc == 0, r
    token = r.out.strip()
    (d / "token").write_text(token)
    (d / "pvelab.yaml").write_text(
        "serve:\n  status_interval: 1\n  sync_interval: 10\n"
        # a declared guest the cluster does not have: the plan's drift
        "guests:\n  - {name: planned, vmid: 130, node: pve1, memory: 512}\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", d / "pvelab.yaml", env=env)
    # the same cluster over HTTPS, for scrapers with a client certificate
    (d / "tls.yaml").write_text(
        f"serve:\n  status_interval: 1\n  tls_cert: {d}/server.pem\n  tls_key: {d}/server-key.pem\n"
        f"  metrics:\n    auth: tls\n    client_ca: {d}/ca.pem\n")
    tls = Server("--listen", "127.0.0.1:0", "-c", d / "tls.yaml",
                 env=sim_env(sim, d / "tls-state.db"))
    host = urllib.parse.urlparse(srv.url).netloc
    tls_host = urllib.parse.urlparse(tls.url).netloc
    prom = Prometheus(d, f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ['{RULES}']
scrape_configs:
  - job_name: pvelab
    authorization: {{credentials_file: '{d}/token'}}
    static_configs: [{{targets: ['{host}']}}]
  - job_name: pve
    authorization: {{credentials_file: '{d}/token'}}
    metrics_path: /pve
    params: {{module: [default], cluster: ['1'], node: ['1']}}
    static_configs: [{{targets: ['pve1']}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: '{host}'}}
  - job_name: pvelab-tls
    scheme: https
    tls_config: {{ca_file: '{d}/ca.pem', cert_file: '{d}/prometheus.pem',
                  key_file: '{d}/prometheus-key.pem'}}
    static_configs: [{{targets: ['{tls_host}']}}]
""")
    lab = {"sim": sim, "api": api, "srv": srv, "tls": tls, "prom": prom, "dir": d,
           "token": token, "auth": {"Authorization": "Bearer " + token}}
    yield lab
    prom.stop()
    assert tls.stop() == 0, tls.err
    assert srv.stop() == 0, srv.err
    assert token not in srv.err
    rc, err = stop_sim(sim)
    assert rc == 0, err


def test_prometheus_scrapes_every_way(lab):
    p = lab["prom"]
    for job in ("pvelab", "pve", "pvelab-tls"):
        until(lambda: p.value(f'up{{job="{job}"}}') == 1, f"a scrape of job {job}", deadline=60)
        until(lambda: (p.value(f'scrape_samples_scraped{{job="{job}"}}') or 0) > 300,
              f"job {job}'s samples", deadline=60)
    # the cluster as the exporter shows it
    until(lambda: p.value('pve_up{job="pvelab",id="qemu/100"}') == 1, "guest 100 running")
    assert p.value('pve_up{job="pvelab",id="node/pve3"}') == 0  # offline
    assert p.value('pve_up{job="pvelab",id="cluster/metrics"}') == 1
    assert p.value('pve_lock_state{job="pvelab",id="qemu/106",state="backup"}') == 1
    assert p.value('pve_lock_state{job="pvelab",id="qemu/106",state="clone"}') == 0
    assert p.value('pve_ha_state{job="pvelab",id="qemu/105",state="started"}') == 1
    info = p.query('pve_storage_info{job="pvelab",id="storage/pve1/local"}')[0]["metric"]
    assert info["content"] == "backup,iso,vztmpl" and info["plugintype"] == "dir"
    info = p.query('pve_guest_info{job="pvelab",id="qemu/104"}')[0]["metric"]
    assert (info["template"], info["name"], info["node"]) == ("1", "tmpl", "pve1")
    info = p.query('pve_guest_info{job="pvelab",id="qemu/107"}')[0]["metric"]
    assert info.get("name", "") == "" and info["node"] == "pve3"  # on the offline node
    assert p.value('pve_memory_size_bytes{job="pvelab",id="qemu/100"}') == 2 * 1024 ** 3
    # node collectors: /metrics for every node, /pve for its target only
    assert p.value('pve_onboot_status{job="pvelab",id="qemu/106"}') == 1  # on pve2
    assert p.value('pve_onboot_status{job="pve",id="qemu/100"}') == 1
    assert p.query('pve_onboot_status{job="pve",id="qemu/106"}') == []
    assert p.value('pve_subscription_info{job="pve",id="node/pve1",level="unknown"}') == 1
    assert p.value('pve_version_info{job="pve",version="9.1.1",release="9.1"}') == 1
    assert p.value('pve_not_backed_up_total{job="pve",id="cluster/metrics"}') == 9
    # the same series over TLS with a client certificate
    assert p.value('pve_up{job="pvelab-tls",id="qemu/100"}') == 1


def test_series_follow_guests_created_stopped_deleted(lab):
    p, api = lab["prom"], lab["api"]
    until(lambda: p.value('pve_up{job="pvelab",id="qemu/102"}') == 0, "guest 102 listed")
    wait_task(api, "pve1", api.nodes("pve1").qemu.post(vmid=120, name="made", memory=768))
    wait_task(api, "pve1", api.nodes("pve1").qemu(100).status.stop.post())
    wait_task(api, "pve1", api.nodes("pve1").qemu(102).delete())
    until(lambda: p.query('pve_guest_info{job="pvelab",id="qemu/120",name="made",node="pve1"}'),
          "the new guest's series", deadline=30)
    assert p.value('pve_memory_size_bytes{job="pvelab",id="qemu/120"}') == 768 * 1024 ** 2
    until(lambda: p.value('pve_up{job="pvelab",id="qemu/100"}') == 0, "guest 100 stopped")
    assert p.value('pve_uptime_seconds{job="pvelab",id="qemu/100"}') == 0
    # a guest gone from the answer is stale at once (no sample, not a 0)
    until(lambda: p.query('pve_up{job="pvelab",id="qemu/102"}') == [], "guest 102 gone")
    until(lambda: p.query('pve_guest_info{job="pve",id="qemu/102"}') == [],
          "guest 102 gone from /pve")
    until(lambda: p.value('pve_not_backed_up_total{job="pvelab"}') == 9,
          "not-backed-up: +120 -102")


def test_pvelab_series(lab):
    p, api = lab["prom"], lab["api"]
    wait_task(api, "pve1", api.nodes("pve1").qemu(100).snapshot.post(snapname="base"))
    wait_task(api, "pve1", api.nodes("pve1").vzdump.post(vmid="101", storage="local"))
    # a guest whose state changes makes the refresh sync: the reads after it follow
    wait_task(api, "pve1", api.nodes("pve1").lxc(101).status.stop.post())
    until(lambda: p.value('pvelab_guest_snapshots{job="pvelab",id="qemu/100"}') == 1,
          "the snapshot counted", deadline=40)
    assert p.value('pvelab_guest_snapshots{job="pvelab",id="lxc/103"}') == 0
    age = p.value('pvelab_guest_snapshot_newest_age_seconds{job="pvelab",id="qemu/100"}')
    assert 0 <= age < 120
    until(lambda: p.value('pvelab_guest_backups{job="pvelab",id="lxc/101"}') == 1,
          "the backup counted", deadline=40)
    assert 0 <= p.value('pvelab_guest_backup_newest_age_seconds{job="pvelab",id="lxc/101"}') < 120
    # the node certificate: what the simulator serves
    pem = ssl.get_server_certificate((lab["sim"]["host"], lab["sim"]["port"]))
    end = subprocess.run(["openssl", "x509", "-noout", "-enddate"], input=pem, text=True,
                         capture_output=True, check=True).stdout.strip().split("=", 1)[1]
    want = calendar.timegm(time.strptime(end, "%b %d %H:%M:%S %Y %Z"))
    got = p.value('pvelab_node_certificate_expiry_timestamp_seconds{job="pvelab",'
                  'id="node/pve1",filename="pveproxy-ssl.pem"}')
    assert got == want
    # drift from the last plan: the declared guest 130 does not exist
    until(lambda: p.value('pvelab_guest_drift{job="pvelab",id="qemu/130",action="create"}') == 1,
          "the plan's drift")
    assert p.value('pvelab_plan_changes{job="pvelab"}') == 1
    assert p.value('pvelab_plan_up{job="pvelab"}') == 1
    # pvelab's own health
    assert p.value('pvelab_refresh_up{job="pvelab",kind="status"}') == 1
    assert p.value('pvelab_refresh_age_seconds{job="pvelab",kind="status"}') < 30
    assert p.value('pvelab_api_request_duration_seconds_count{job="pvelab",method="GET",'
                   'path="/cluster/resources"}') > 1
    assert p.value('pvelab_api_request_duration_seconds_count{job="pvelab",method="GET",'
                   'path="/nodes/{node}/qemu/{vmid}/config"}') >= 5
    assert p.value('pvelab_process_resident_memory_bytes{job="pvelab"}') > 1e6
    assert p.value('pvelab_state_db_bytes{job="pvelab"}') > 4096
    assert p.value('pvelab_process_cpu_seconds_total{job="pvelab"}') > 0
    # the exporter's path has the refresh age but not pvelab's other series
    assert p.value('pvelab_refresh_age_seconds{job="pve"}') < 30
    assert p.query('pvelab_guest_snapshots{job="pve"}') == []


def promtool_metrics(text):
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, text=True,
                       capture_output=True, timeout=60)
    return r.returncode, [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]


def test_promtool_and_formats(lab):
    url, h = lab["srv"].url, lab["auth"]
    text = requests.get(url + "/metrics", headers=h, timeout=20)
    assert text.status_code == 200
    assert text.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE pve_network_transmit_bytes gauge" in text.text  # the deprecated gauges
    for body in (text.text, requests.get(url + "/pve?target=pve1", headers=h, timeout=20).text):
        rc, out = promtool_metrics(body)
        assert out == [EXPORTER_LINT], out
    # OpenMetrics when asked; gzip when asked (the same series)
    om = requests.get(url + "/metrics", timeout=20, headers={
        **h, "Accept": "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        "Accept-Encoding": "identity"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert om.text.endswith("# EOF\n")
    assert "# TYPE pve_network_transmit_bytes counter" in om.text
    assert "pve_network_transmit_bytes{" not in om.text  # one family per name
    raw = requests.get(url + "/metrics", headers={**h, "Accept-Encoding": "gzip"}, timeout=20,
                       stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    body = gzip.decompress(raw.raw.read()).decode()
    assert body.startswith("# HELP pve_up ") and "pve_guest_info{" in body
    rc, out = promtool_metrics(body)
    assert out == [EXPORTER_LINT], out


def test_promtool_check_rules_and_rules_loaded(lab):
    r = subprocess.run([PROMTOOL, "check", "rules", RULES], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    groups = requests.get(lab["prom"].url + "/api/v1/rules", timeout=20).json()["data"]["groups"]
    rules = [x for g in groups for x in g["rules"]]
    assert {x["name"] for x in rules} >= {
        "PveNodeDown", "PveGuestNotInDeclaredState", "PveStorageAlmostFull", "PveBackupTooOld",
        "PveCertificateExpiring", "PvelabRefreshFailing"}
    def healthy():
        rules = [x for g in requests.get(lab["prom"].url + "/api/v1/rules", timeout=20)
                 .json()["data"]["groups"] for x in g["rules"]]
        bad = [(x["name"], x.get("lastError")) for x in rules if x.get("health") != "ok"]
        assert not [b for b in bad if b[1]], bad  # an error, not a rule yet to run
        return not bad
    until(healthy, "every rule evaluated")
    # the offline node is pending (for: 2m) or firing, never silent
    until(lambda: any(x["name"] == "PveNodeDown" and x["state"] in ("pending", "firing")
                      for g in requests.get(lab["prom"].url + "/api/v1/rules", timeout=20)
                      .json()["data"]["groups"] for x in g["rules"]), "PveNodeDown pending")


def test_grafana_dashboard_expressions_evaluate(lab):
    p = lab["prom"]
    until(lambda: p.value('up{job="pvelab"}') == 1, "a scrape")
    dash = json.load(open(DASHBOARD))
    exprs = [t["expr"] for panel in dash["panels"] for t in panel.get("targets", [])]
    assert len(exprs) > 40
    empty = []
    for e in exprs:
        for job in ("pvelab", ".*"):  # one job, and "All" (three jobs, one cluster)
            q = e.replace("$job", job).replace("$__rate_interval", "1m")
            assert "$" not in q, q
            if not p.query(q) and job == "pvelab":  # p.query asserts it evaluates
                empty.append(q)
    # most panels show data for this cluster (some need history: rates, replication)
    assert len(empty) < len(exprs) // 3, empty
    # the job variable's query
    assert p.query("pve_up")


def test_auth(lab):
    url = lab["srv"].url
    for path in ("/metrics", "/pve?target=pve1"):
        r = requests.get(url + path, timeout=20)
        assert r.status_code == 401
        assert requests.get(url + path, headers={"Authorization": "Bearer pvl_" + "0" * 64},
                            timeout=20).status_code == 401
        assert requests.get(url + path, headers=lab["auth"], timeout=20).status_code == 200
    # unknown query parameters are refused, the exporter's are accepted
    assert requests.get(url + "/pve?target=pve1&module=default&cluster=0&node=false",
                        headers=lab["auth"], timeout=20).text.count("pve_up{") == 0
    assert requests.get(url + "/pve?bogus=1", headers=lab["auth"],
                        timeout=20).status_code == 400
    d, tls = lab["dir"], lab["tls"].url
    ok = requests.get(tls + "/metrics", verify=str(d / "ca.pem"), timeout=20,
                      cert=(str(d / "prometheus.pem"), str(d / "prometheus-key.pem")))
    assert ok.status_code == 200 and "pve_up{" in ok.text
    r = requests.get(tls + "/metrics", verify=str(d / "ca.pem"), timeout=20)
    assert r.status_code == 401 and "client certificate" in r.json()["error"]["message"]
    # a bearer token is not what this server asks of scrapers
    r = requests.get(tls + "/metrics", verify=str(d / "ca.pem"), headers=lab["auth"], timeout=20)
    assert r.status_code == 401
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(tls + "/metrics", verify=str(d / "ca.pem"), timeout=20,
                     cert=(str(d / "intruder.pem"), str(d / "intruder-key.pem")))
    # the rest of the API still takes bearer tokens on the TLS server
    assert requests.get(tls + "/healthz", verify=str(d / "ca.pem"), timeout=20).status_code == 200


def test_apply_shows_and_drift_goes(lab):
    p = lab["prom"]
    until(lambda: p.value('pvelab_plan_changes{job="pvelab"}') == 1, "the plan's drift")
    assert p.query('pvelab_last_apply_success{job="pvelab"}') == []  # no apply yet
    env = sim_env(lab["sim"], lab["dir"] / "state.db")
    r = run("-c", lab["dir"] / "pvelab.yaml", "apply", "--yes", env=env, timeout=300)
    assert r.rc == 0, r
    until(lambda: p.value('pvelab_last_apply_success{job="pvelab",status="ok"}') == 1,
          "the apply's result")
    assert abs(time.time() - p.value('pvelab_last_apply_timestamp_seconds{job="pvelab"}')) < 300
    # the guest it made changes the list: a sync, and the plan after it is empty
    until(lambda: p.value('pvelab_plan_changes{job="pvelab"}') == 0, "no drift left", deadline=60)
    assert p.query('pvelab_guest_drift{job="pvelab"}') == []
    assert p.query('pve_guest_info{job="pvelab",id="qemu/130",name="planned"}')
