"""The one-call GPU check (bench/gpu_check.sh) cannot rot between the rare runs on a lent GPU.

The plan runs as CI would: `bash bench/gpu_check.sh --plan --no-download` lists the steps with budgets
inside 8 minutes, checks that what travels to the device stays under 64 MiB (with the wheels' last
measured sizes where .whl/ was not built) and trains the tiny model through the GPU steps' own code
path on the CPU, with the verdicts that read what was really active. The other tests check the
pieces without training: a step is stopped at its budget with everything it started, the figures
read results the way the targets are written, the CUDA expectations, and the bitsandbytes slimming.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from bench import gpu_verdicts as verdicts
from bench import wheels
from bench.gpu_check import INSTALL_BUDGET_S, STEPS, TOTAL_BUDGET_S, Step, run_step
from bench.shapes import PROJECT_ROOT


@pytest.mark.slow
def test_plan_lists_budgets_checks_the_size_and_passes_the_cpu_smoke(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--plan", "--no-download", "--work", str(tmp_path / "work")],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    budgets = {s["name"]: s["budget_s"] for s in plan["steps"]}
    assert list(budgets) == ["install", "tiny", "sft-8b", "grpo-8gb", "fit-12gb"]
    assert all(b > 0 for b in budgets.values()) and sum(budgets.values()) == plan["total_budget_s"] <= 8 * 60
    for name, budget in budgets.items():
        assert f"{name:<9} {budget:>4} s" in done.stdout
    size = plan["size_check"]
    assert 0 < size["tree_bytes"] < size["total_bytes"] <= size["limit_bytes"] == 64 * 2**20 and size["fits"]
    assert {w["name"] for w in size["wheels"]} >= {"trl", "bitsandbytes", "liger-kernel", "datasets", "pydantic"}
    assert "total that travels" in done.stdout and "not carried: unsloth" in done.stdout
    smoke = plan["smoke"]
    assert smoke["ok"] and smoke["summary"]["steps"][0]["status"] == "ok"
    [check] = smoke["summary"]["checks"]
    assert check["ok"] and set(check["facts"]) == set(verdicts.TECHNIQUE_FACTS)
    assert "Linear4bit" in check["facts"]["4-bit"]["seen"] and "use_reentrant=False" in check["facts"]["non-reentrant checkpointing"]["seen"]
    [estimate] = smoke["summary"]["estimates"]
    assert estimate["estimate_gb"] > 0 and estimate["measured_gb"] is None  # no CUDA peak on a CPU
    assert "| tiny sft |" in (tmp_path / "out" / "plan.md").read_text()


def test_budgets_fit_the_device_call():
    assert INSTALL_BUDGET_S + sum(s.budget_s for s in STEPS) <= TOTAL_BUDGET_S
    assert [s.name for s in STEPS][:2] == ["tiny", "sft-8b"]  # the most important figures come first


def test_a_step_is_stopped_at_its_budget_with_what_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")  # fmt: skip
    started = time.monotonic()
    record = run_step(Step("slow", 2, "sleeps past its budget", (("-c", code),)), tmp_path)
    assert record["status"] == "timeout" and time.monotonic() - started < 15
    status = Path(f"/proc/{int(pid_file.read_text())}/status")
    time.sleep(0.2)
    # Gone, or a zombie waiting for a reaper that is not ours (a container's PID 1 may never reap it).
    assert not status.exists() or "State:\tZ" in status.read_text()
    assert "stopped at the step's budget" in record["log_tail"]


def _ok(arm: str, **values: float) -> dict:
    return {"technique": "sft", "arm": arm, "status": "ok", **values}


def test_sft_figures_read_the_ratios_against_the_targets():
    results = [_ok("B", tokens_per_s=1400.0, peak_reserved_gb=6.0, mfu=0.42), _ok("A", tokens_per_s=1000.0, peak_reserved_gb=10.0),
               {"technique": "sft", "arm": "C", "status": "skipped", "reason": "unsloth not installed"}]  # fmt: skip
    speed, memory, mfu, unsloth = verdicts.sft_figures(results, "8B")
    assert speed["verdict"] == "met" and speed["measured"].startswith("1.40x")
    assert memory["verdict"] == "met" and memory["measured"].startswith("0.60x")
    assert mfu["verdict"] == "met" and mfu["measured"] == "42.0%"
    assert "unsloth not installed" in unsloth["measured"]
    speed, *_ = verdicts.sft_figures([_ok("B", tokens_per_s=1100.0)], "8B")  # A cut off by the budget
    assert speed["verdict"] == "not measured" and "A did not run" in speed["measured"]


def test_fit_and_grpo_figures():
    probes = [{"status": "ok", "work": {"seq_len": 16384}}, {"status": "oom", "work": {"seq_len": 32768}},
              {"status": "ok", "work": {"seq_len": 24576}}]  # fmt: skip
    [fit] = verdicts.fit_figures(probes, "12 GiB", 16384)
    assert fit["verdict"] == "met" and fit["measured"].startswith("24576 trains; 32768 runs out of memory")
    [fit] = verdicts.fit_figures([{"status": "oom", "work": {"seq_len": 16384}}], "12 GiB", 16384)
    assert fit["verdict"] == "missed"
    [grpo] = verdicts.grpo_figures([{"technique": "grpo", "arm": "B", "status": "oom", "reason": "out of GPU memory"}], "8 GiB", 8)
    assert grpo["verdict"] == "missed" and grpo["measured"].startswith("oom")


def _cuda_result() -> dict:
    active = {"device": "cuda", "dtype": "bfloat16", "4bit": "on (nf4, double quant)", "liger": "on (RMSNorm, RoPE, SwiGLU)",
              "checkpointing": "on (non-reentrant)"}  # fmt: skip
    observed = {
        "4bit": {"layers": 224, "device": "cuda:0"},
        "liger": {"modules": {"LigerRMSNorm": 65, "LigerSwiGLUMLP": 32}, "rope_from": "liger_kernel.transformers.rope"},
        "checkpointing": {"layers": 32, "use_reentrant": False},
        "autocast": {"bfloat16 autocast (cuda)": 12},
        "optimizer": {"class": "bitsandbytes.optim.adamw.AdamW", "optim_bits": 8, "is_paged": True, "state_dtypes": {"uint8": 300}},
    }
    return {"status": "ok", "arm": "B", "technique": "sft", "active": active, "observed": observed}


def test_cuda_expects_every_technique_really_on():
    assert all(ok for ok, _ in verdicts.facts(_cuda_result(), "cuda").values())
    no_liger = _cuda_result()
    no_liger["observed"]["liger"] = {"modules": {}, "rope_from": "transformers.models.llama.modeling_llama"}
    reentrant = _cuda_result()
    reentrant["observed"]["checkpointing"]["use_reentrant"] = True
    assert not verdicts.facts(no_liger, "cuda")["Liger"][0]
    assert not verdicts.facts(reentrant, "cuda")["non-reentrant checkpointing"][0]
    assert not any(ok for ok, _ in verdicts.facts(_cuda_result(), "cpu").values())  # ran on cuda, expected cpu


def test_slim_wheel_keeps_only_the_named_libraries(tmp_path):
    source = tmp_path / "pkg-1.0-py3-none-manylinux_2_24_x86_64.whl"
    with zipfile.ZipFile(source, "w") as z:
        for name in ("pkg/__init__.py", "pkg/libpkg_cuda118.so", "pkg/libpkg_cuda130.so", "pkg/libpkg_cpu.so"):
            z.writestr(name, name)
        z.writestr("pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.4\nName: pkg\nVersion: 1.0\n")
        z.writestr("pkg-1.0.dist-info/RECORD", "stale\n")
    carried = wheels.Carried("pkg", "1.0", "test", 0, keep_libs=("libpkg_cuda130.so", "libpkg_cpu.so"), local="cu130")
    (tmp_path / "out").mkdir()
    slim = wheels.slim_wheel(source, tmp_path / "out", carried)
    assert slim.name == "pkg-1.0+cu130-py3-none-manylinux_2_24_x86_64.whl"
    with zipfile.ZipFile(slim) as z:
        names = set(z.namelist())
        assert "pkg/libpkg_cuda118.so" not in names and {"pkg/libpkg_cuda130.so", "pkg/libpkg_cpu.so", "pkg/__init__.py"} <= names
        assert "Version: 1.0+cu130" in z.read("pkg-1.0+cu130.dist-info/METADATA").decode()
        record = z.read("pkg-1.0+cu130.dist-info/RECORD").decode().splitlines()
    assert {line.split(",")[0] for line in record} == names
    assert wheels.find_wheel(tmp_path / "out", "pkg", "1.0+cu130") == slim
