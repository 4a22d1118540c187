"""Installs a node pack the way a user does, with ComfyUI-Manager's own `cm-cli` (dev and test tool).

Not shipped. The Manager (pip package `comfyui-manager`, installed by scripts/install_manager.sh)
runs offline and isolated here:

- its user directory (config.ini, channels, cache, snapshots) is a folder we pass with
  `--user-directory`, never a real user's `ComfyUI/user/__manager` (but see below);
- offline: config.ini sets `network_mode = offline` and we pass `--mode cache` (cm-cli's default).
  Then the Comfy Registry list is read only from a cache (none here: treated as empty) and the
  node list from the copy bundled in the wheel. `--mode local` or `--mode remote` still download
  the whole Registry list from api.comfy.org ("Cannot connect to comfyregistry" offline), whatever
  network_mode says;
- `cm-cli` imports ComfyUI's `folder_paths` with ComfyUI's default base directory, so the target
  custom_nodes folder is given through the `extra_model_paths.yaml` that `cm-cli` loads from its
  user directory (`custom_nodes: ...`, `is_default: true`).

What the Manager 4.3 does for a git URL (read from `comfyui_manager/legacy/manager_core.py`,
`gitclone_install`): `git clone` into custom_nodes/<repo name>, then `python -m pip install <line>`
for each line of requirements.txt (torch, torchvision, torchaudio, torchsde are never installed;
safetensors, transformers and kornia are skipped when already present), then `install.py` if the
pack has one. It accepts only URLs with a host: `file:///path` is refused as an invalid URL, while
`file://localhost/path` clones. `cm-cli install` exits 0 even when an install failed, so callers
must look at what it did, not at its exit status. On import, before `--user-directory` applies,
it creates empty folders under COMFYUI_PATH/user/__manager (cache, snapshots, startup-scripts,
batch_history); it writes no file there.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess  # noqa: S404  (dev tool: runs git and cm-cli)
import sys
import textwrap

from .comfy_server import ComfyServer, comfyui_path

MANAGER_VERSION = "4.3"


def cm_cli_path(python: str | None = None) -> pathlib.Path | None:
    """The `cm-cli` script next to the Python that runs ComfyUI, if the Manager is installed."""
    candidate = pathlib.Path(python or sys.executable).parent / "cm-cli"
    if candidate.exists():
        return candidate
    found = shutil.which("cm-cli")
    return pathlib.Path(found) if found else None


def manager_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("comfyui-manager")
    except metadata.PackageNotFoundError:
        return None


def bare_remote(repository: pathlib.Path, where: pathlib.Path, name: str = "ComfyUI-DPS") -> str:
    """A bare clone of `repository` standing in for the pack's remote; returns its clone URL.

    The URL is `file://localhost/...`: the Manager refuses `file:///...` (no host) as invalid."""
    target = where / f"{name}.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(repository), str(target)],  # noqa: S603, S607
                   check=True, capture_output=True, text=True)
    return f"file://localhost{target.resolve().as_posix()}"


def prepare_manager_dir(manager_dir: pathlib.Path, custom_nodes: pathlib.Path) -> pathlib.Path:
    """An isolated Manager user directory: offline config and the target custom_nodes folder."""
    manager_dir.mkdir(parents=True, exist_ok=True)
    (manager_dir / "config.ini").write_text(textwrap.dedent("""\
        [default]
        network_mode = offline
        use_uv = False
        file_logging = False
        """))
    (manager_dir / "extra_model_paths.yaml").write_text(textwrap.dedent(f"""\
        # Read by cm-cli from its --user-directory: install into this base directory's custom_nodes.
        dps_manager_test:
          is_default: true
          custom_nodes: {custom_nodes.resolve().as_posix()}
        """))
    return manager_dir


def cm_cli_install(url: str, manager_dir: pathlib.Path, base_dir: pathlib.Path, *, python: str | None = None,
                   timeout: float = 300.0, network_log: pathlib.Path | None = None) -> subprocess.CompletedProcess:
    """`cm-cli install --mode cache --user-directory DIR URL`, as a user would type it.

    `network_log`: a file; every name lookup or connection to a host other than this machine,
    in cm-cli or the pip it runs, is appended to it, and each such process to
    `<network_log>.processes` (see `network_recorder`)."""
    cli = cm_cli_path(python)
    if cli is None:
        raise FileNotFoundError("cm-cli not found: run scripts/install_manager.sh")
    env = dict(os.environ)
    env.update({
        "COMFYUI_PATH": str(comfyui_path()),
        "COMFYUI_FOLDERS_BASE_PATH": str(base_dir),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",  # rich wraps long lines at 80 columns otherwise
        "TQDM_DISABLE": "1",  # the clone's progress bars, thousands of characters
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    })
    if network_log is not None:
        recorder = network_recorder(network_log.parent / "network_recorder")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(recorder), env.get("PYTHONPATH")]))
        env["DPS_NETWORK_LOG"] = str(network_log)
        network_log.touch()
    cmd = [str(cli), "install", "--mode", "cache", "--user-directory", str(manager_dir), url]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,  # noqa: S603
                          cwd=str(base_dir))


_RECORDER = '''\
"""Written by testkit/manager.py: records (never blocks) name lookups and connections to other hosts."""
import os
import socket

_LOG = os.environ.get("DPS_NETWORK_LOG")
_LOCAL = {None, "", "localhost", "127.0.0.1", "::1", b"localhost"}


def _note(what):
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {what}\\n")


if _LOG:  # which processes ran with the recorder, so a test can tell it was active
    import sys

    with open(_LOG + ".processes", "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {sys.argv!r}\\n")

_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL:
        _note(f"getaddrinfo {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = getaddrinfo

for _name in ("connect", "connect_ex"):
    _original = getattr(socket.socket, _name)

    def _wrapped(self, address, _original=_original, _name=_name):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
            _note(f"{_name} {address!r}")
        return _original(self, address)

    setattr(socket.socket, _name, _wrapped)
'''


def network_recorder(folder: pathlib.Path) -> pathlib.Path:
    """A folder holding a sitecustomize.py that records network use to $DPS_NETWORK_LOG; put it
    on PYTHONPATH of a Python process (and of the processes it starts)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_RECORDER)
    return folder


class BaseDirServer(ComfyServer):
    """A ComfyUI server on a given base directory that loads only what its custom_nodes holds.

    ComfyServer links this checkout into custom_nodes as ComfyUI-DPS; a server that must find the
    pack where the Manager put it cannot have that link."""

    def __init__(self, base_dir, **kwargs):
        super().__init__(base_dir=base_dir, link_checkout=False, **kwargs)
        self._own_base = False  # the caller owns the base directory (it holds the installed pack)
