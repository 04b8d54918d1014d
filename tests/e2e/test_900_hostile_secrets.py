"""Secrets put where they do not belong (issue 17 item 9): a whole token in
cluster.token_id, a password in a guest's raw `config:`. Refused, and the
secret itself is never repeated."""
from conftest import run

SECRET = "aaaa1111-2222-3333-4444-bbbbbbbbbbbb"


def test_whole_token_in_token_id_is_refused_without_showing_it(tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text(f"cluster:\n  endpoints: [\"https://127.0.0.1:1\"]\n"
                   f"  token_id: \"root@pam!pvelab={SECRET}\"\nguests: []\n")
    r = run("-c", cfg, "validate")
    assert r.rc == 1 and "cluster.token_id 'root@pam!pvelab=…' holds the token's secret" in r.out + r.err, r
    env = {"PVELAB_TOKEN": "", "PVELAB_STATE": str(tmp_path / "s.db")}
    r2 = run("-c", cfg, "sync", env=env)
    assert r2.rc == 1 and "holds the token's secret" in r2.err, r2
    for res in (r, r2):
        assert SECRET not in res.out + res.err


def test_password_in_raw_config_is_refused(tmp_path):
    cfg = tmp_path / "pvelab.yaml"
    cfg.write_text("guests:\n  - name: a\n    config: {cipassword: hunter2secret}\n")
    r = run("-c", cfg, "validate")
    assert r.rc == 1, r
    assert "a password in 'config: cipassword' would be shown in plans" in r.out + r.err
    assert "hunter2secret" not in r.out + r.err
