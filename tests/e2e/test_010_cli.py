"""The command table as a user meets it: help, version, unknown commands and
options, completion, global options."""
from conftest import run


def test_help_lists_commands_from_the_table():
    r = run("help")
    assert r.rc == 0, r
    for name in ("help", "version", "propstr", "completion"):
        assert f"\n  {name} " in r.out


def test_help_json_and_per_command():
    cmds = run("-o", "json", "help").json()
    names = [c["name"] for c in cmds]
    assert "version" in names
    r = run("help", "propstr")
    assert r.rc == 0 and r.out.startswith("usage: pvelab propstr")
    r2 = run("propstr", "--help")
    assert r2.rc == 0 and r2.out == r.out


def test_unknown_command_exits_64_with_suggestion():
    r = run("versoin")
    assert r.rc == 64
    assert "did you mean 'version'?" in r.err
    r = run("nosuch")
    assert r.rc == 64 and "unknown command 'nosuch'" in r.err


def test_unknown_option_suggests():
    r = run("propstr", "--lst")
    assert r.rc == 64 and "did you mean '--list'?" in r.err


def test_version_verbose_names_libraries():
    r = run("version", "-v")
    assert r.rc == 0
    for lib in ("libevent", "libcurl", "openssl", "jansson", "sqlite", "libfyaml"):
        assert lib in r.out
    j = run("-o", "json", "version").json()
    assert j["version"] and j["commit"]


def test_global_options_before_and_after_command():
    assert run("-o", "json", "version").json()["version"]
    assert run("version", "-o", "json").json()["version"]
    r = run("-o", "yaml", "version")
    assert r.rc == 64 and "unknown output format 'yaml'" in r.err


def test_completion_bash_is_valid_and_complete():
    import subprocess
    r = run("completion", "bash")
    assert r.rc == 0
    assert "complete -o default -F _pvelab pvelab" in r.out
    assert "propstr)" in r.out and "--list" in r.out
    # bash can load it and complete a prefix
    script = r.out + '\nCOMP_WORDS=(pvelab vers); COMP_CWORD=1; _pvelab; echo "${COMPREPLY[@]}"\n'
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert out.stdout.strip() == "version"
