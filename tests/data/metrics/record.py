#!/usr/bin/python3
"""Records tests/data/metrics/: what `pvelab sim --seed seed.yaml` answers on
the paths prometheus-pve-exporter reads (answers.json), and what the
exporter's own collectors write from exactly those answers
(exporter-3.10.0.prom). Run by hand, given the src/ directory of an unpacked
prometheus-pve-exporter 3.10.0; nothing in the build or the tests runs it,
they only read its output:

    TZ=UTC /usr/bin/python3 tests/data/metrics/record.py build/pvelab EXPORTER_SRC

The exporter's collectors are called unmodified, on a stand-in for proxmoxer's
ProxmoxAPI that answers from answers.json, so both sides read the same bytes.
"""
import copy
import json
import os
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    binary, exporter_src = sys.argv[1], sys.argv[2]
    import proxmoxer
    sim = subprocess.Popen([binary, "sim", "--seed", os.path.join(HERE, "seed.yaml"),
                            "--listen", "127.0.0.1:0", "--task-ms", "50",
                            "--auth-delay-ms", "0", "--rng-seed", "22"],
                           stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(sim.stdout.readline())
        u = urllib.parse.urlparse(info["url"])
        user, rest = info["token"].split("!", 1)
        name, secret = rest.split("=", 1)
        pve = proxmoxer.ProxmoxAPI(u.hostname, port=u.port, user=user, token_name=name,
                                   token_value=secret, verify_ssl=False)
        # a lock and an HA-managed guest, as an operator would make them
        pve.nodes("pve2").qemu(106).config.put(lock="backup")
        pve.cluster.ha.resources.post(sid="vm:105", state="started")
        time.sleep(0.5)  # the CRM's state settles (the simulator's is synchronous)
        answers = {}

        def rec(path, **params):
            key = path + ("?" + urllib.parse.urlencode(sorted(params.items())) if params else "")
            answers[key] = pve.get(path.lstrip("/"), **params)

        # one moment: the counters move in 10-second steps
        while int(time.time()) % 10 > 6:
            time.sleep(0.2)
        rec("/cluster/status")
        rec("/cluster/resources")
        rec("/cluster/resources", type="vm")
        rec("/cluster/resources", type="storage")
        rec("/version")
        rec("/cluster/backup-info/not-backed-up")
        rec("/cluster/config/qdevice")
        for node in ("pve1", "pve2"):
            rec(f"/nodes/{node}/subscription")
            rec(f"/nodes/{node}/replication")
            for kind in ("qemu", "lxc"):
                rec(f"/nodes/{node}/{kind}")
                for g in answers[f"/nodes/{node}/{kind}"]:
                    rec(f"/nodes/{node}/{kind}/{g['vmid']}/config")
    finally:
        sim.terminate()
        sim.wait()
    # The simulator models no subscription and no replication job: pve2
    # carries an active subscription and one job, in the shape PVE 9.1's
    # schema gives GET /nodes/{node}/subscription and .../replication
    # (whose entries carry the status fields the exporter reads per job).
    answers["/nodes/pve2/subscription"] = {
        "status": "active", "level": "c", "productname": "Proxmox VE Community Subscription",
        "nextduedate": "2027-03-01", "regdate": "2026-03-01 00:00:00", "serverid": "0" * 32}
    answers["/nodes/pve2/replication"] = [{
        "id": "105-0", "type": "local", "source": "pve2", "target": "pve1", "guest": 105,
        "vmtype": "qemu", "jobnum": 0, "schedule": "*/15", "duration": 2.5,
        "last_sync": 1796000000, "last_try": 1796000000, "next_sync": 1796000900,
        "fail_count": 0}]
    answers["/nodes/pve2/replication/105-0/status"] = answers["/nodes/pve2/replication"][0]
    with open(os.path.join(HERE, "answers.json"), "w") as f:
        json.dump(answers, f, indent=1, sort_keys=True)
        f.write("\n")
    for node in ("pve1", "pve2"):
        with open(os.path.join(HERE, f"exporter-3.10.0-{node}.prom"), "w") as f:
            f.write(exporter_output(exporter_src, answers, node))


class Stand_in:
    """proxmoxer's ProxmoxAPI as the collectors use it, answering from a dict."""

    def __init__(self, answers, path=""):
        self._a, self._p = answers, path

    def __getattr__(self, name):
        return Stand_in(self._a, f"{self._p}/{name}")

    def __call__(self, *parts):
        return Stand_in(self._a, self._p + "".join(f"/{p}" for p in parts))

    def get(self, **params):
        from proxmoxer import ResourceException
        key = self._p + ("?" + urllib.parse.urlencode(sorted(params.items())) if params else "")
        if key not in self._a:
            raise ResourceException(501, "Not Implemented", f"no answer recorded for {key}")
        return copy.deepcopy(self._a[key])


def exporter_output(src, answers, local):
    sys.path.insert(0, src)
    from prometheus_client import CollectorRegistry, generate_latest
    from pve_exporter.collector import cluster, node
    a = copy.deepcopy(answers)
    for e in a["/cluster/status"]:  # the node the exporter is pointed at
        if e["type"] == "node":
            e["local"] = 1 if e["name"] == local else 0
    pve = Stand_in(a)
    reg = CollectorRegistry()
    for c in (cluster.StatusCollector, cluster.ClusterResourcesCollector,
              cluster.ClusterNodeCollector, cluster.ClusterInfoCollector,
              cluster.VersionCollector, cluster.BackupInfoCollector,
              cluster.QDeviceCollector, node.SubscriptionCollector,
              node.NodeConfigCollector, node.NodeReplicationCollector):
        reg.register(c(pve))
    return generate_latest(reg).decode()


if __name__ == "__main__":
    main()
