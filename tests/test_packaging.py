"""The pack's layout and packaging: engine independent of ComfyUI, registry metadata, Manager files."""

import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_engine_imports_without_comfyui():
    """`import dps` in a fresh interpreter whose path has no ComfyUI, and comfy stays unloaded."""
    code = (
        "import sys; import dps, dps.operators, dps.noise, dps.measurement, dps.guidance, dps.io; "
        "assert not [m for m in sys.modules if m == 'comfy' or m.startswith('comfy.')], 'comfy was imported'; "
        "print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": ""})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_pack_registers_only_the_v3_entry_point():
    source = (ROOT / "__init__.py").read_text()
    assert "comfy_entrypoint" in source
    assert "NODE_CLASS_MAPPINGS" not in source  # the classic mappings would silently win over V3


def test_registry_metadata():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    meta = project["project"]
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", meta["name"]) and "comfyui" not in meta["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert isinstance(meta["license"], dict) and (ROOT / meta["license"]["file"]).exists()
    assert meta["urls"]["Repository"].startswith("https://")
    comfy = project["tool"]["comfy"]
    for key in ("PublisherId", "DisplayName", "Icon", "requires-comfyui"):
        assert comfy[key], key
    assert not [d for d in meta["dependencies"] if d.split("=")[0].split(">")[0].strip() in ("torch", "torchvision")]


def test_requirements_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert sorted(listed) == sorted(project["project"]["dependencies"])


def test_comfyignore_keeps_dev_files_out():
    ignored = set((ROOT / ".comfyignore").read_text().split())
    for path in ("tests/", "testkit/", "bench/", "scripts/", ".ci/"):
        assert path in ignored, path


def test_tests_run_in_a_clone_whose_folder_name_is_no_identifier(tmp_path):
    """A clone named "ComfyUI-DPS" (the natural name under custom_nodes/): pytest then imports the
    root __init__.py as a plain module; with ComfyUI importable it must not try to register nodes
    (a relative import with no package made every test error at set-up)."""
    from testkit.comfy_server import comfyui_path

    clone = tmp_path / "ComfyUI-DPS"
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if name.startswith(("tests/", "dps/", "nodes/", "scripts/", "testkit/")) or name in ("__init__.py", "pyproject.toml"):
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            (clone / name).write_bytes((ROOT / name).read_bytes())
    # One engine test, then one that loads the pack into ComfyUI (ComfyUI becomes importable).
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "tests/dps/test_noise.py",
         "tests/nodes/test_renderer.py::test_fast_gradient_through_decoder_matches_finite_differences"],
        cwd=clone, capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/bin:/bin", "COMFYUI_PATH": str(comfyui_path()), "HOME": str(tmp_path)})
    assert result.returncode == 0 and " passed" in result.stdout, result.stdout[-3000:] + result.stderr[-3000:]
