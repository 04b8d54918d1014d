"""Where an installed pvelab finds its config and keeps its state (issue 19):
-c, else $PVELAB_CONFIG, else ./pvelab.yaml, ~/.config/pvelab/pvelab.yaml
($XDG_CONFIG_HOME) and /etc/pvelab/pvelab.yaml in that order; the per-user
config's state in $XDG_STATE_HOME/pvelab (~/.local/state/pvelab)."""
import os

import pytest

from conftest import run
from simfix import start_sim, stop_sim
from test_200_sync import env_for

CONFIG = "project: t\nguests:\n  - name: web\n    vmid: 100\n"


@pytest.fixture
def home(tmp_path):
    h = tmp_path / "home"
    (h / ".config" / "pvelab").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    return h


def env_home(home, **extra):
    e = {"HOME": str(home), "XDG_CONFIG_HOME": "", "XDG_STATE_HOME": "", "PVELAB_CONFIG": "",
         "PVELAB_STATE": ""}
    e.update(extra)
    return e


def test_the_per_user_config_is_found(home):
    cfg = home / ".config" / "pvelab" / "pvelab.yaml"
    cfg.write_text(CONFIG)
    r = run("validate", "--offline", cwd=home.parent / "work", env=env_home(home))
    assert r.rc == 0, r
    assert r.out.startswith(f"{cfg}: valid (1 guest"), r


def test_xdg_config_home_and_pvelab_config(home, tmp_path):
    xdg = tmp_path / "xdg"
    (xdg / "pvelab").mkdir(parents=True)
    (xdg / "pvelab" / "pvelab.yaml").write_text(CONFIG)
    (home / ".config" / "pvelab" / "pvelab.yaml").write_text("not: [valid")
    r = run("validate", "--offline", cwd=tmp_path / "work",
            env=env_home(home, XDG_CONFIG_HOME=str(xdg)))
    assert r.rc == 0 and r.out.startswith(f"{xdg}/pvelab/pvelab.yaml: valid"), r
    named = tmp_path / "named.yaml"
    named.write_text(CONFIG.replace("project: t", "project: named"))
    r = run("validate", "--offline", cwd=tmp_path / "work",
            env=env_home(home, XDG_CONFIG_HOME=str(xdg), PVELAB_CONFIG=str(named)))
    assert r.rc == 0 and "project 'named'" in r.out, r


def test_the_current_directory_comes_first_and_c_wins(home, tmp_path):
    (home / ".config" / "pvelab" / "pvelab.yaml").write_text("not: [valid")
    work = tmp_path / "work"
    (work / "pvelab.yaml").write_text(CONFIG)
    r = run("validate", "--offline", cwd=work, env=env_home(home))
    assert r.rc == 0 and r.out.startswith("pvelab.yaml: valid"), r
    r = run("-c", home / ".config" / "pvelab" / "pvelab.yaml", "validate", "--offline", cwd=work,
            env=env_home(home))
    assert r.rc == 1, r


def test_nothing_found_names_pvelab_yaml(home, tmp_path):
    r = run("plan", cwd=tmp_path / "work", env=env_home(home))
    assert r.rc != 0
    assert "no config file 'pvelab.yaml'" in r.err, r


def test_the_per_user_state_is_xdg_state(home, tmp_path):
    (home / ".config" / "pvelab" / "pvelab.yaml").write_text(CONFIG)
    info = start_sim("--guests", "3")
    try:
        e = env_for(info, "")
        e.update(env_home(home))
        r = run("sync", cwd=tmp_path / "work", env=e)
        assert r.rc == 0, r
        state = home / ".local" / "state" / "pvelab" / "state.db"
        assert state.is_file(), r
        assert not (home / ".config" / "pvelab" / ".pvelab").exists()
        assert oct(os.stat(state.parent).st_mode & 0o777) == "0o700"
        # a database already beside the per-user config keeps being used
        beside = home / ".config" / "pvelab" / ".pvelab"
        beside.mkdir()
        os.rename(state, beside / "state.db")
        r = run("sync", cwd=tmp_path / "work", env=e)
        assert r.rc == 0, r
        assert (beside / "state.db").is_file() and not state.exists(), r
    finally:
        stop_sim(info)
