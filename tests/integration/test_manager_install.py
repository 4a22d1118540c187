"""Install the pack as a user does, through ComfyUI-Manager.

A bare clone of this repository stands in for the pack's git remote. The Manager's own `cm-cli`
(comfyui-manager 4.3, installed by scripts/install_manager.sh) installs it from that URL into the
custom_nodes of a fresh base directory on which a ComfyUI server is running, offline and with its
own user directory; the Manager pip-installs requirements.txt; after a restart the server lists
every node of the pack, loaded from the installed folder. See testkit/manager.py for the how and
for what the Manager does.

ComfyUI 0.3.75 cannot load the Manager's server API (`main.py --enable-manager` is rejected as an
unrecognized argument: the flag arrived in later ComfyUI), so the Manager's CLI is the install
path tested here.
"""

import pathlib
import re
import subprocess
import time

import pytest

from testkit.comfy_server import comfyui_path
from testkit.manager import (
    MANAGER_VERSION,
    BaseDirServer,
    bare_remote,
    cm_cli_install,
    cm_cli_path,
    manager_version,
    prepare_manager_dir,
)

pytestmark = [pytest.mark.server, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def declared_nodes(pack: pathlib.Path) -> set[str]:
    """The node ids the installed pack declares (V3 `node_id=` in nodes/*.py)."""
    found = set()
    for source in (pack / "nodes").glob("*.py"):
        found.update(re.findall(r'node_id="(DPS\w+)"', source.read_text(encoding="utf-8")))
    return found


def requirement_names(pack: pathlib.Path) -> list[str]:
    lines = (pack / "requirements.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


@pytest.fixture
def manager():
    if cm_cli_path() is None or manager_version() != MANAGER_VERSION:
        pytest.skip(f"comfyui-manager=={MANAGER_VERSION} (cm-cli) is not installed: run scripts/install_manager.sh"
                    " (make test does)")
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the Manager installs from a git remote")


def test_manager_installs_the_pack_from_a_git_url(manager, tmp_path):
    (tmp_path / "remote").mkdir()
    url = bare_remote(ROOT, tmp_path / "remote")
    remote_head = git("rev-parse", "HEAD", cwd=tmp_path / "remote" / "ComfyUI-DPS.git")
    base = tmp_path / "base"
    manager_dir = prepare_manager_dir(tmp_path / "manager", base / "custom_nodes")
    host_nodes = comfyui_path() / "custom_nodes"
    host_nodes_before = sorted(p.name for p in host_nodes.iterdir()) if host_nodes.exists() else []

    server = BaseDirServer(base)
    clock = time.monotonic()
    try:
        server.start()
        print(f"server on the fresh base directory up in {time.monotonic() - clock:.1f} s")
        assert "DPSKSampler" not in server.object_info(), "the fresh base directory already has the pack"

        started = time.monotonic()
        result = cm_cli_install(url, manager_dir, base, python=server.python, network_log=tmp_path / "network.log")
        install_s = time.monotonic() - started
        out = result.stdout + result.stderr
        print(f"cm-cli install took {install_s:.1f} s\n{out}")

        # cm-cli exits 0 even after a failed install: judge by what it says and did.
        assert result.returncode == 0, out
        assert f"[INSTALLED] {url}" in out and "Installation was successful." in out, out
        installed = base / "custom_nodes" / "ComfyUI-DPS"
        assert (installed / ".git").is_dir(), f"no git checkout at {installed}"
        assert git("rev-parse", "HEAD", cwd=installed) == remote_head
        assert git("remote", "get-url", "origin", cwd=installed) == url
        assert not installed.is_symlink()

        # requirements.txt, line by line, through pip of the Python that runs the server. The
        # Manager skips a few packages it protects (safetensors among them) when already present.
        requirements = requirement_names(installed)
        assert {"numpy", "safetensors", "pypng", "tifffile"} <= set(requirements), requirements
        server_bin = pathlib.Path(server.python).parent.resolve()
        for name in requirements:
            ran = re.search(rf"EXECUTE => \['([^']+)', '-m', 'pip', 'install', '{re.escape(name)}'\]", out)
            skipped = f"skip black listed pip installation: '{name}'" in out
            assert ran or skipped, f"the Manager neither ran pip for {name} nor said why:\n{out}"
            if ran:
                assert pathlib.Path(ran.group(1)).parent.resolve() == server_bin, ran.group(0)
        assert "install script failed" not in out, out

        # Offline and isolated: no name lookup or connection to another host, the Manager's files
        # in its own user directory, the host ComfyUI's custom_nodes untouched.
        processes = (tmp_path / "network.log.processes").read_text()
        # the recorder was active in cm-cli and in the pip it ran (pip's argv starts at '-m' there)
        assert "cm-cli" in processes and "'install', 'pypng'" in processes, processes
        assert (tmp_path / "network.log").read_text() == ""
        assert (manager_dir / "channels.list").exists()
        if host_nodes.exists():
            assert sorted(p.name for p in host_nodes.iterdir()) == host_nodes_before

        before_restart = len(server.log())
        clock = time.monotonic()
        server.restart()
        info = server.object_info()
        print(f"server restarted with the pack in {time.monotonic() - clock:.1f} s")
        log = server.log()[before_restart:]
    finally:
        server.stop()

    expected = declared_nodes(installed)
    assert {"DPSKSampler", "DPSGuidance", "DPSMeasurement", "DPSLoadMeasurement"} <= expected, sorted(expected)
    missing = sorted(expected - set(info))
    assert not missing, f"nodes not in /object_info after the restart: {missing}\n{log[-3000:]}"
    assert all(info[name]["python_module"].endswith("ComfyUI-DPS") for name in expected)
    assert str(installed) in log, log[-3000:]
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line and "ComfyUI-DPS" in line]
    assert not failed, failed
