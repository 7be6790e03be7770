"""The build: what build_info reports, the CUDA target choice, and the checks that stop a build.

The CMake functions of cmake/cuda_archs.cmake run in CMake's script mode with a stand-in nvcc
that lists nvcc 13's targets, so the choice is checked without a CUDA toolkit.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import gapo_kernels

ROOT = Path(__file__).resolve().parents[1]
NVCC13_TARGETS = "sm_75 sm_80 sm_86 sm_87 sm_88 sm_89 sm_90 sm_100 sm_110 sm_103 sm_120 sm_121"


def test_the_version_is_written_once():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert gapo_kernels.build_info()["version"] == gapo_kernels.__version__


def test_build_info_is_consistent():
    info = gapo_kernels.build_info()
    assert {"version", "torch_version", "stable_abi_target", "compiler", "backends", "cuda_archs",
            "cuda_version", "cuda_driver", "cuda_error"} <= info.keys()
    assert isinstance(info["backends"], tuple) and info["backends"][0] == "cpu"
    # "cuda" is listed exactly when the kernels were built and the driver can run them.
    assert ("cuda" in info["backends"]) == (info["cuda_error"] == "")
    assert (info["cuda_archs"] == "") == (info["cuda_version"] == "")
    if not info["cuda_archs"]:
        assert info["cuda_error"] == "this build has no CUDA kernels"


# --- CUDA targets and the toolkit check (cmake/cuda_archs.cmake) -------------------------------
def _cmake() -> str:
    found = shutil.which("cmake", path=str(Path(sys.executable).parent)) or shutil.which("cmake")
    assert found, "cmake is needed to build gapo_kernels and to run these tests"
    return found


def _run_cmake_script(tmp_path: Path, body: str, env: dict[str, str] | None = None):
    nvcc = tmp_path / "nvcc"
    nvcc.write_text("#!/bin/sh\nfor t in " + NVCC13_TARGETS + "; do echo $t; done\n")
    nvcc.chmod(0o755)
    script = tmp_path / "check.cmake"
    script.write_text(f'cmake_minimum_required(VERSION 3.18)\ninclude("{ROOT}/cmake/cuda_archs.cmake")\nset(NVCC "{nvcc}")\n{body}\n')
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("GAPO_")}
    run_env.update(env or {})
    return subprocess.run([_cmake(), "-P", str(script)], capture_output=True, text=True, env=run_env)


def _selected_archs(tmp_path: Path, torch_archs: str, env: dict[str, str] | None = None) -> str:
    result = _run_cmake_script(
        tmp_path, f'gapo_select_cuda_archs(out "${{NVCC}}" "{torch_archs}")\nmessage(NOTICE "ARCHS=${{out}}")', env
    )
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stderr.splitlines() if line.startswith("ARCHS="))[len("ARCHS=") :]


def test_torch_archs_are_filtered_to_what_nvcc_compiles_with_ptx_for_the_newest(tmp_path):
    torch_archs = "sm_50,sm_60,sm_70,sm_75,sm_80,sm_86,sm_90,sm_100,sm_120"
    assert _selected_archs(tmp_path, torch_archs) == (
        "75-real;80-real;86-real;90-real;100-real;120-real;120-virtual"
    )


def test_a_cpu_torch_builds_sm80_and_sm90_with_compute90_ptx(tmp_path):
    assert _selected_archs(tmp_path, "") == "80-real;90-real;90-virtual"


def test_gapo_cuda_arch_is_used_as_given(tmp_path):
    assert _selected_archs(tmp_path, "sm_50", env={"GAPO_CUDA_ARCH": "80,90a"}) == "80;90a"


def test_no_supported_arch_stops_the_build(tmp_path):
    result = _run_cmake_script(tmp_path, 'gapo_select_cuda_archs(out "${NVCC}" "sm_50,sm_60")')
    assert result.returncode != 0
    assert "GAPO_CUDA_ARCH" in result.stderr


@pytest.mark.parametrize(
    ("nvcc_version", "torch_cuda", "env", "fails", "says"),
    [
        ("13.0.88", "12.8", {}, True, "GAPO_ALLOW_CUDA_MISMATCH=1"),
        ("13.0.88", "12.8", {"GAPO_ALLOW_CUDA_MISMATCH": "1"}, False, "building anyway"),
        ("12.8.93", "13.0", {}, False, "run wherever torch's CUDA 13 runs"),
        ("13.0.88", "13.0", {}, False, None),
        ("13.0.88", "", {}, False, None),
    ],
)
def test_cuda_major_mismatch(tmp_path, nvcc_version, torch_cuda, env, fails, says):
    result = _run_cmake_script(
        tmp_path, f'set(GAPO_TORCH_VERSION "2.11.0")\ngapo_check_cuda_major("{nvcc_version}" "{torch_cuda}")', env
    )
    assert (result.returncode != 0) == fails, result.stderr
    if says is None:
        assert result.stderr.strip() == ""
    else:
        assert says in " ".join(result.stderr.split())


# --- the build backend's torch check ------------------------------------------------------------
@pytest.fixture
def backend(monkeypatch):
    pytest.importorskip("scikit_build_core", reason="scikit-build-core (a build requirement) is not installed")
    spec = importlib.util.spec_from_file_location("gapo_build_backend", ROOT / "build_backend" / "gapo_build_backend.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.delenv("GAPO_OPS_LIBRARY", raising=False)
    return module


def _torch_version(monkeypatch, backend, version):
    def fake_version(name):
        if version is None:
            raise metadata.PackageNotFoundError(name)
        return version

    monkeypatch.setattr(backend.metadata, "version", fake_version)


def test_a_build_without_torch_stops_before_cmake_and_says_what_to_do(backend, monkeypatch, capsys):
    _torch_version(monkeypatch, backend, None)
    with pytest.raises(SystemExit):
        backend.build_wheel("unused-wheel-dir")  # stops before scikit-build-core looks at it
    message = capsys.readouterr().err
    assert "--no-build-isolation" in message and "pip install torch" in message


def test_a_torch_older_than_the_stable_abi_target_is_named(backend, monkeypatch):
    _torch_version(monkeypatch, backend, "2.9.1+cu128")
    assert "torch >= 2.10" in backend._torch_problem() and "2.9.1+cu128" in backend._torch_problem()


@pytest.mark.parametrize("version", ["2.10.0", "2.11.0+cu130", "2.13.0+cpu", "2.16.0a0+git1234"])
def test_supported_torch_versions_pass(backend, monkeypatch, version):
    _torch_version(monkeypatch, backend, version)
    assert backend._torch_problem() is None


def test_a_prebuilt_ops_library_needs_no_torch(backend, monkeypatch):
    _torch_version(monkeypatch, backend, None)
    monkeypatch.setenv("GAPO_OPS_LIBRARY", "/path/to/libgapo_ops.so")
    assert backend._torch_problem() is None


def test_the_installed_torch_satisfies_the_check(backend):
    assert backend._torch_problem() is None


def _compat(tmp_path, *args, min_free):
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    (wheels / "gapo_kernels-0.1.0-cp311-cp311-linux_x86_64.whl").write_bytes(b"")  # never installed here
    env = dict(os.environ, GAPO_COMPAT_WORK=str(tmp_path / "work"), GAPO_COMPAT_MIN_FREE_GIB=min_free)
    return subprocess.run(["bash", "scripts/compat.sh", "--wheels", str(wheels), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _has_python(version: str) -> bool:
    found = subprocess.run(["bash", "-c", f"source scripts/_find_python.sh && find_python {version}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    return bool(found.stdout.strip())


@pytest.mark.skipif(not _has_python("3.11"), reason="scripts/_find_python.sh finds no CPython 3.11")
def test_compat_reports_an_environment_the_disk_cannot_hold_as_not_run(tmp_path):
    # More free disk than any machine has: the environment is not built (no pip, no ENOSPC half
    # way through), and it is reported as not run, neither passed nor failed.
    # (A requirement no index has: were the environment built, pip would fail at once.)
    spec = "3.11:gapo-no-such-requirement==0"
    result = _compat(tmp_path, spec, min_free="1000000000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOT RUN" in result.stdout and "0 of 1 environments passed, 0 failed, 1 not run" in result.stdout
    lines = (tmp_path / "work" / "results.txt").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{spec}|not run|NOT RUN:"), lines
    assert not list((tmp_path / "work").glob("venv-*"))


def test_compat_refuses_a_free_disk_bound_that_is_not_a_whole_number(tmp_path):
    result = _compat(tmp_path, "3.11:torch==2.13.0", min_free="7.5")
    assert result.returncode == 2 and "GAPO_COMPAT_MIN_FREE_GIB must be a whole number" in result.stderr
