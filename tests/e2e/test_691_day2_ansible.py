"""Debian's Ansible reads what pvelab applied: after `pvelab apply` of a
config with storages, community.general.proxmox_storage_info lists them with
their types and content, as it would on a real node; and proxmox_snap finds
the snapshot a pvelab snapshot policy took (issue 28's proof)."""
import os
import shutil
import subprocess

from conftest import run
from simfix import DEMO_SEED, start_sim, stop_sim
from test_200_sync import env_for

CONFIG = """
project: lab
storages:
  - {name: backups, type: dir, path: /mnt/backups, content: [backup], nodes: [pve1]}
  - {name: media, type: nfs, server: 10.0.0.9, export: /srv/media, path: /mnt/pve/media,
     content: [iso, vztmpl]}
  - {name: tank, type: zfspool, pool: tank/vm, content: [images, rootdir]}
snapshot_policies:
  - {label: daily, keep: 3, schedule: daily, guests: [300]}
"""

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars:
    auth: &auth
      api_host: "{{ pve_host }}"
      api_user: root@pam
      api_token_id: pvelab
      api_token_secret: "{{ pve_secret }}"
      validate_certs: false
  tasks:
    - name: storages
      community.general.proxmox_storage_info:
        <<: *auth
      register: stores
    - name: the declared storages are listed, with their types
      assert:
        that:
          - "(stores.proxmox_storages | selectattr('storage', 'equalto', 'backups') | first).type == 'dir'"
          - "(stores.proxmox_storages | selectattr('storage', 'equalto', 'media') | first).type == 'nfs'"
          - "(stores.proxmox_storages | selectattr('storage', 'equalto', 'tank') | first).type == 'zfspool'"
          - "(stores.proxmox_storages | selectattr('storage', 'equalto', 'backups') | first).content == ['backup']"
    - name: one storage by name
      community.general.proxmox_storage_info:
        <<: *auth
        storage: media
      register: media
    - assert:
        that:
          - "media.proxmox_storages | length == 1"
          - "media.proxmox_storages[0].export == '/srv/media'"
    - name: by type
      community.general.proxmox_storage_info:
        <<: *auth
        type: zfspool
      register: zfs
    - assert:
        that:
          - "'tank' in (zfs.proxmox_storages | map(attribute='storage') | list)"
    - name: the policy's snapshot is there (present with its name changes nothing)
      community.general.proxmox_snap: {<<: *auth, vmid: 300, snapname: "{{ snap }}", state: present}
      register: seen
    - assert:
        that:
          - "not seen.changed"
    - name: a name that is not there is taken (the module does look)
      community.general.proxmox_snap: {<<: *auth, vmid: 300, snapname: byhand, state: present}
      register: taken
    - assert:
        that:
          - "taken.changed"
"""


def test_ansible_lists_the_storages_pvelab_applied(tmp_path):
    assert shutil.which("ansible-playbook"), "ansible-playbook missing (scripts/install-deps)"
    info = start_sim("--seed", DEMO_SEED)
    try:
        env = env_for(info, tmp_path / "state.db")
        cfg = tmp_path / "lab.yaml"
        cfg.write_text(CONFIG)
        r = run("-c", cfg, "apply", "--yes", env=env)
        assert r.rc == 0, r
        r = run("-c", cfg, "plan", "--detailed-exitcode", env=env)
        assert r.rc == 0, r
        r = run("-c", cfg, "-o", "json", "snapshot-policy", "run", env=env)
        assert r.rc == 0, r
        snap = r.json()["guests"][0]["snapshot"]
        assert snap.startswith("autodaily"), r
        (tmp_path / "play.yml").write_text(PLAYBOOK)
        aenv = dict(os.environ, ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_NOCOLOR="1",
                    ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3", ANSIBLE_RETRY_FILES_ENABLED="0",
                    ANSIBLE_DEPRECATION_WARNINGS="0", HOME=str(tmp_path))
        secret = info["token"].split("=", 1)[1]
        p = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
                            f"pve_host={info['host']}:{info['port']} pve_secret={secret} snap={snap}",
                            "play.yml"], cwd=tmp_path, env=aenv, capture_output=True, text=True,
                           timeout=500)
        assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-3000:]
        assert "failed=0" in p.stdout, p.stdout[-3000:]
    finally:
        rc, err = stop_sim(info)
        assert rc == 0, err
