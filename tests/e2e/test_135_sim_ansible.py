"""Real clients run a guest's life cycle unchanged against `pvelab sim`:
Debian's Ansible (community.general proxmox_storage_info, proxmox_kvm,
proxmox, proxmox_snap, proxmox_tasks_info through ansible-playbook) and
proxmoxer. Nothing here is simulator-specific: the same playbook runs
against a real node."""
import os
import shutil
import subprocess
import time
import warnings

from proxmoxer import ProxmoxAPI

from simfix import start_sim, stop_sim

warnings.filterwarnings("ignore")

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
    - name: the cluster's storages are listed
      assert:
        that:
          - "'local-lvm' in (stores.proxmox_storages | map(attribute='storage') | list)"
          - "'local' in (stores.proxmox_storages | map(attribute='storage') | list)"
    - name: create vm
      community.general.proxmox_kvm:
        <<: *auth
        node: pve
        vmid: 200
        name: ansible-vm
        memory: 1024
        cores: 1
        net: {net0: "virtio,bridge=vmbr0"}
        scsi: {scsi0: "local-lvm:8"}
        state: present
    - name: start vm
      community.general.proxmox_kvm: {<<: *auth, node: pve, vmid: 200, state: started}
    - name: the vm runs
      community.general.proxmox_kvm: {<<: *auth, node: pve, vmid: 200, state: current}
      register: vmstate
    - assert: {that: ["vmstate.status == 'running'"]}
    - name: snapshot vm
      community.general.proxmox_snap: {<<: *auth, vmid: 200, snapname: before, state: present}
    - name: snapshot vm again (no change)
      community.general.proxmox_snap: {<<: *auth, vmid: 200, snapname: before, state: present}
      register: again
    - assert: {that: ["not again.changed"]}
    - name: stop vm
      community.general.proxmox_kvm: {<<: *auth, node: pve, vmid: 200, state: stopped, force: true}
    - name: remove snapshot
      community.general.proxmox_snap: {<<: *auth, vmid: 200, snapname: before, state: absent}
    - name: delete vm
      community.general.proxmox_kvm: {<<: *auth, node: pve, vmid: 200, state: absent}
    - name: create ct
      community.general.proxmox:
        <<: *auth
        node: pve
        vmid: 201
        hostname: ansible-ct
        ostemplate: "local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst"
        storage: local-lvm
        disk: "4"
        password: "s3cret-Pass"
        unprivileged: true
        netif: {net0: "name=eth0,bridge=vmbr0,ip=dhcp"}
        state: present
    - name: start ct
      community.general.proxmox: {<<: *auth, node: pve, vmid: 201, state: started}
    - name: snapshot ct
      community.general.proxmox_snap: {<<: *auth, vmid: 201, snapname: before, state: present}
    - name: stop ct
      community.general.proxmox: {<<: *auth, node: pve, vmid: 201, state: stopped}
    - name: remove ct snapshot
      community.general.proxmox_snap: {<<: *auth, vmid: 201, snapname: before, state: absent}
    - name: delete ct
      community.general.proxmox: {<<: *auth, node: pve, vmid: 201, state: absent}
    - name: tasks
      community.general.proxmox_tasks_info: {<<: *auth, node: pve}
      register: tasks
    - name: every step ran as a task that ended OK
      assert:
        that:
          - "(tasks.proxmox_tasks | map(attribute='type') | list) == ['vzdestroy', 'vzdelsnapshot', 'vzshutdown', 'vzsnapshot', 'vzstart', 'vzcreate', 'qmdestroy', 'qmdelsnapshot', 'qmshutdown', 'qmsnapshot', 'qmstart', 'qmcreate']"
          - "(tasks.proxmox_tasks | map(attribute='status') | unique | list) == ['OK']"
"""


def test_ansible_life_cycle(tmp_path):
    assert shutil.which("ansible-playbook"), "ansible-playbook missing (scripts/install-deps)"
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    info = start_sim()
    try:
        env = dict(os.environ, ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_PYTHON_INTERPRETER="/usr/bin/python3", ANSIBLE_RETRY_FILES_ENABLED="0",
                   ANSIBLE_DEPRECATION_WARNINGS="0", HOME=str(tmp_path))
        secret = info["token"].split("=", 1)[1]
        r = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
                            f"pve_host={info['host']}:{info['port']} pve_secret={secret}",
                            "play.yml"], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=500)
        assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-3000:]
        assert "failed=0" in r.stdout and "changed=12" in r.stdout, r.stdout[-3000:]
    finally:
        rc, err = stop_sim(info)
    assert rc == 0, err


def wait(px, node, upid):
    for _ in range(2000):
        st = px.nodes(node).tasks(upid).status.get()
        if st["status"] == "stopped":
            return st
        time.sleep(0.01)
    raise AssertionError("task did not end: " + upid)


def test_proxmoxer_life_cycle():
    info = start_sim()
    try:
        px = ProxmoxAPI(info["host"], port=info["port"], user="root@pam", token_name="pvelab",
                        token_value=info["token"].split("=", 1)[1], verify_ssl=False)
        assert {s["storage"] for s in px.storage.get()} == {"local", "local-lvm"}
        node = px.nodes.get()[0]["node"]
        vmid = int(px.cluster.nextid.get())
        st = wait(px, node, px.nodes(node).qemu.post(vmid=vmid, name="px", memory=512,
                                                     scsi0="local-lvm:4",
                                                     net0="virtio,bridge=vmbr0"))
        assert st["exitstatus"] == "OK"
        assert wait(px, node, px.nodes(node).qemu(vmid).status.start.post())["exitstatus"] == "OK"
        assert px.nodes(node).qemu(vmid).status.current.get()["status"] == "running"
        assert wait(px, node, px.nodes(node).qemu(vmid).snapshot.post(
            snapname="s1"))["exitstatus"] == "OK"
        assert "s1" in [s["name"] for s in px.nodes(node).qemu(vmid).snapshot.get()]
        assert wait(px, node, px.nodes(node).qemu(vmid).status.stop.post())["exitstatus"] == "OK"
        assert px.nodes(node).qemu(vmid).status.current.get()["status"] == "stopped"
        assert wait(px, node, px.nodes(node).qemu(vmid).delete())["exitstatus"] == "OK"
        assert vmid not in [r["vmid"] for r in px.cluster.resources.get(type="vm")]
    finally:
        rc, err = stop_sim(info)
    assert rc == 0, err
