"""Starts, drives and stops a headless ComfyUI with this pack loaded (dev, test and demo tool).

Not shipped. Usage from Python:

    with ComfyServer(extra_custom_nodes=[path]) as server:
        result = server.run_prompt(graph)

or from the shell: `python scripts/comfy_server.py` runs one on a free port until Ctrl-C.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import socket
import subprocess  # noqa: S404  (dev tool: starts the ComfyUI server)
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

ROOT = pathlib.Path(__file__).resolve().parents[1]


def comfyui_path() -> pathlib.Path:
    import os

    if os.environ.get("COMFYUI_PATH"):
        return pathlib.Path(os.environ["COMFYUI_PATH"])
    recorded = ROOT / ".host" / "comfyui_path"
    if recorded.exists():
        return pathlib.Path(recorded.read_text().strip())
    return ROOT / ".host" / "ComfyUI"


# Frontends the tests run besides the one ComfyUI's requirements install (comfyui-frontend-package
# 1.32.9 for 0.3.75): scripts/setup_host.sh installs each into .host/frontend-<version>/.
EXTRA_FRONTENDS = ("1.58.1",)


def frontend_root(version: str) -> pathlib.Path:
    """The static folder of comfyui-frontend-package==<version> as scripts/setup_host.sh installs it
    (.host/frontend-<version>/comfyui_frontend_package/static), for `--front-end-root`."""
    return ROOT / ".host" / f"frontend-{version}" / "comfyui_frontend_package" / "static"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PromptFailed(RuntimeError):
    def __init__(self, message: str, events: list[dict]):
        super().__init__(message)
        self.events = events


class ComfyServer:
    """A real ComfyUI server process on a loopback port, with its own base directory."""

    def __init__(self, extra_custom_nodes=(), base_dir=None, cpu=True, extra_args=(), python=None,
                 front_end_root=None, link_checkout=True):
        """front_end_root: a frontend's static folder (e.g. frontend_root("1.58.1")) served instead of
        the comfyui-frontend-package installed with ComfyUI (`--front-end-root`). link_checkout: link
        this checkout into custom_nodes as ComfyUI-DPS (False: load only what custom_nodes holds, as
        after an install by ComfyUI-Manager)."""
        self.link_checkout = link_checkout
        self.front_end_root = pathlib.Path(front_end_root) if front_end_root else None
        self.extra_custom_nodes = [pathlib.Path(p) for p in extra_custom_nodes]
        self._own_base = base_dir is None
        self.base = pathlib.Path(base_dir or tempfile.mkdtemp(prefix="dps-comfy-"))
        self.cpu = cpu
        self.extra_args = list(extra_args)
        self.python = python or sys.executable
        self.port = None
        self.process = None
        self.log_path = self.base / "server.log"

    # -- life cycle -------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> "ComfyServer":
        for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        links = {**({"ComfyUI-DPS": ROOT} if self.link_checkout else {}), **{p.name: p for p in self.extra_custom_nodes}}
        for name, target in links.items():
            link = self.base / "custom_nodes" / name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(target, target_is_directory=True)
        self.port = free_port()
        comfy = comfyui_path()
        cmd = [
            self.python, str(comfy / "main.py"), "--disable-auto-launch",
            "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:",
            *(["--cpu"] if self.cpu else []), *self.extra_args,
        ]
        if self.front_end_root is not None:
            if not (self.front_end_root / "index.html").is_file():
                raise FileNotFoundError(f"no frontend at {self.front_end_root} (index.html missing): "
                                        "run scripts/setup_host.sh")
            cmd += ["--front-end-root", str(self.front_end_root)]
        self._log = open(self.log_path, "ab")  # appended: a restart keeps the first run's log
        self.process = subprocess.Popen(cmd, cwd=comfy, stdout=self._log, stderr=subprocess.STDOUT)  # noqa: S603
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}:\n{self.log()}")
            try:
                self.get("/system_stats")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None):
            self._log.close()
        self.process = None

    def restart(self, timeout: float = 180.0) -> "ComfyServer":
        """Stop and start again on the same base directory, as a user restarts after an install."""
        self.stop()
        return self.start(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- HTTP -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:  # noqa: S310
            body = response.read()
        return json.loads(body) if body else None

    def get_bytes(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:  # noqa: S310
            return response.read()

    def post(self, path: str, payload) -> dict:
        data = json.dumps(payload).encode()
        request = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                body = response.read()
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                detail = json.loads(body)
            except ValueError:
                detail = body.decode(errors="replace")
            raise PromptFailed(f"POST {path} -> {error.code}: {detail}", [{"type": "http_error", "data": detail}]) from None
        return json.loads(body) if body else {}

    def object_info(self) -> dict:
        return self.get("/object_info")

    def upload_file(self, name: str, data: bytes) -> None:
        """Put a file into the server's input folder (as the UI's upload would)."""
        target = self.base / "input" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    # -- prompts ----------------------------------------------------------------------------
    def connect(self):
        import websocket  # websocket-client, a dev dependency

        client_id = uuid.uuid4().hex
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={client_id}", timeout=600)
        return ws, client_id

    def queue_prompt(self, graph: dict, client_id: str | None = None) -> str:
        answer = self.post("/prompt", {"prompt": graph, "client_id": client_id or uuid.uuid4().hex})
        return answer["prompt_id"]

    def wait(self, ws, prompt_id: str, timeout: float = 600.0, on_event=None) -> list[dict]:
        """Collect websocket events for one prompt until it succeeds, fails or is interrupted."""
        events = []
        deadline = time.monotonic() + timeout
        ws.settimeout(5)
        while time.monotonic() < deadline:
            try:
                message = ws.recv()
            except Exception as error:  # websocket timeout: poll again
                if "timed out" in str(error).lower():
                    continue
                raise
            if isinstance(message, bytes):  # binary preview frames
                events.append({"type": "preview_bytes", "data": {"size": len(message)}})
                continue
            event = json.loads(message)
            data = event.get("data", {})
            if data.get("prompt_id") not in (None, prompt_id):
                continue
            events.append(event)
            if on_event:
                on_event(event)
            kind = event.get("type")
            if kind == "execution_success":
                return events
            if kind in ("execution_error", "execution_interrupted"):
                raise PromptFailed(f"{kind}: {json.dumps(data)[:2000]}", events)
            if kind == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                return events
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")

    def run_prompt(self, graph: dict, timeout: float = 600.0, on_event=None) -> dict:
        """Queue a graph, wait for it, and return {prompt_id, events, history}."""
        ws, client_id = self.connect()
        try:
            prompt_id = self.queue_prompt(graph, client_id)
            events = self.wait(ws, prompt_id, timeout, on_event)
        finally:
            ws.close()
        return {"prompt_id": prompt_id, "events": events, "history": self.history(prompt_id)}

    def history(self, prompt_id: str, timeout: float = 30.0) -> dict:
        """The prompt's history entry. ComfyUI stores it just after sending execution_success,
        so it is polled for rather than read once."""
        deadline = time.monotonic() + timeout
        while True:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry is not None or time.monotonic() > deadline:
                if entry is None:
                    raise TimeoutError(f"no history for prompt {prompt_id} after {timeout} s")
                return entry
            time.sleep(0.05)

    def output_file(self, image_info: dict) -> pathlib.Path:
        folder = self.base / image_info.get("type", "output")
        return folder / image_info.get("subfolder", "") / image_info["filename"]


if __name__ == "__main__":
    server = ComfyServer(base_dir=ROOT / ".host" / "base").start()
    print(f"ComfyUI with ComfyUI-DPS at {server.url} (log: {server.log_path}); Ctrl-C stops it")
    try:
        while server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
