"""Config messages a new user meets (issue 18): a scalar where a list of
strings goes, unsetting an inherited default, keys from defaults: named as
such, and wording (articles, plurals)."""
from conftest import run


def validate(tmp_path, text):
    f = tmp_path / "pvelab.yaml"
    f.write_text(text)
    return run("validate", "--offline", f)


def test_a_scalar_tag_is_one_tag(tmp_path):
    r = validate(tmp_path, "project: t\nguests:\n  - name: web\n    vmid: 100\n    tags: web\n")
    assert r.rc == 0, r
    assert "valid (1 guest, project 't', 0 warnings)" in r.out


def test_an_inherited_vm_key_is_blamed_on_defaults(tmp_path):
    text = ("project: t\ndefaults:\n  machine: q35\nguests:\n  - name: ct\n    type: lxc\n"
            "    vmid: 101\n    ostemplate: local:vztmpl/debian-12.tar.zst\n")
    r = validate(tmp_path, text)
    assert r.rc == 1, r
    assert ":3:3: error: defaults.machine: only for VMs, and guest 'ct' is an LXC container " \
           "(it inherits this from defaults:" in r.err, r
    # and a guest can unset what defaults set
    r = validate(tmp_path, text.replace("    vmid: 101", "    vmid: 101\n    machine: null"))
    assert r.rc == 0, r


def test_expected_an_integer(tmp_path):
    r = validate(tmp_path, "project: t\nguests:\n  - name: web\n    vmid: 100\n    cores: [1]\n")
    assert r.rc == 1
    assert "expected an integer, got a list" in r.err, r
