"""The kept families of gzip answers made again as soon as the picture
changes, not by the next scrape: after a guest changes, the next gzip scrape
shows it, byte for byte as an uncompressed answer does, and compresses none
of the families itself (pvelab_metrics_kept_families_made_total)."""
import re
import time

import pytest
import requests

from simfix import start_sim, stop_sim
from test_700_serve import Server, sim_env
from test_720_metrics import pve

# what Prometheus sends (scrape_protocols' default, and gzip)
PROM = {"Accept": "application/openmetrics-text;version=1.0.0;q=0.5,"
                  "application/openmetrics-text;version=0.0.1;q=0.4,"
                  "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
        "Accept-Encoding": "gzip"}
PLAIN = {"Accept": PROM["Accept"], "Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    d = tmp_path_factory.mktemp("ahead")
    sim = start_sim("--nodes", "2", "--guests", "40")
    (d / "pvelab.yaml").write_text("serve:\n  status_interval: 3\n  sync_interval: 600\n"
                                   "  metrics:\n    auth: none\n")
    srv = Server("--listen", "127.0.0.1:0", "-c", d / "pvelab.yaml",
                 env=sim_env(sim, d / "state.db"))
    url = srv.url + "/metrics"
    wait(lambda: get(url, PLAIN).count("\npve_guest_info{") == 40,
         "the first resource list", deadline=120)
    yield srv, url, pve(sim)
    assert srv.stop() == 0, srv.err
    rc, err = stop_sim(sim)
    assert rc == 0, err


def wait(cond, what, deadline):
    """until() at a slower pace: each answer is an access-log line on the
    server's stderr, a pipe nobody reads while the test runs."""
    end = time.monotonic() + deadline
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.4)


def get(url, headers):
    r = requests.get(url, headers=headers, timeout=60)
    r.raise_for_status()
    assert (r.headers.get("Content-Encoding") == "gzip") == (headers is PROM)
    return r.text


def made(text, when):
    m = re.search(r'^pvelab_metrics_kept_families_made_total\{when="%s"\} (\d+)$' % when,
                  text, re.M)
    assert m, f"no pvelab_metrics_kept_families_made_total{{when={when!r}}}"
    return int(m.group(1))


def pve_samples(text):
    """The pve_* samples, in order (pvelab's own series and the age move)."""
    return [line for line in text.splitlines() if line.startswith("pve_")]


def test_changed_guest_at_the_next_scrape_made_ahead(lab):
    srv, url, api = lab
    guest = next(g for g in api.cluster.resources.get(type="vm") if g["type"] == "qemu")
    node, vmid = guest["node"], guest["vmid"]
    ahead_seen = False
    for attempt in range(4):
        name = f"ahead{attempt}"  # another name each attempt
        before = get(url, PROM)  # the query is asked for: it is made ahead from now on
        api.nodes(node).qemu(vmid).config.put(name=name)
        want = f'pve_guest_info{{id="qemu/{vmid}",node="{node}",name="{name}",'
        # the picture has the change: an uncompressed answer (which keeps
        # nothing) shows it, and a family was made ahead since
        wait(lambda: want in get(url, PLAIN), "the change in the picture", deadline=60)
        wait(lambda: made(get(url, PLAIN), "ahead") > made(before, "ahead"),
             "families made ahead", deadline=30)
        plain = get(url, PLAIN)
        after = get(url, PROM)
        assert want in after
        if pve_samples(plain) != pve_samples(after):
            continue  # a newer list came between the two answers
        # made ahead for this picture: the scrape spliced every family in;
        # else a newer list came between, and the scrape made it (try again)
        if made(after, "scrape") == made(before, "scrape"):
            ahead_seen = True
            break
    assert ahead_seen, "every gzip scrape after a change compressed families itself"
