"""The wheels the GPU check carries to the device, and the 64 MiB the working tree may weigh when it travels.

    python -m bench.wheels            # build .whl/ (needs the package registries) and print the size check
    python -m bench.wheels --no-download                           # only the size check, of what is there

The lent H200 has PyTorch, transformers, accelerate and PEFT but no package index, and lacks TRL,
bitsandbytes, Liger, datasets (with dill and multiprocess), pydantic and tomli-w, all of which the
training path imports. They travel as wheels in `.whl/` (ignored by git; the device call names it in
`carry`), downloaded here for the device's Python 3.12 on x86-64, one version of each, and
installed there into /tmp/site (bench/gpu_check.sh). Three are carried although the device has one:
- transformers 5.24.0: the device's 5.17 has no `TrainingArguments.activation_checkpointing`
  (it came in 5.23), which smoltrain's trainers and the arms' TRL configs set;
- accelerate and PEFT: the versions CI runs, so the device differs from CI by the GPU alone;
- typing-extensions and fsspec: pydantic-core needs typing-extensions >= 4.16 and datasets wants
  fsspec <= 2026.9.0, and the device's versions of both are unknown.

bitsandbytes is the big one: its manylinux wheel holds a library for every CUDA (11.8 to 13.2),
ROCm and XPU release, 41 MiB compressed, which would take the tree over 64 MiB. PyPI has no
CUDA-13-only wheel, so `slim_wheel` rebuilds it here with the CUDA 13.0 library alone (bitsandbytes
loads the library of the same CUDA major as torch: the device's torch is cu130) and the CPU one,
as version 0.50.2+cu130, with a fresh RECORD. Unsloth is not carried (NOT_CARRIED says why).

Imports the stdlib only.
"""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.shapes import PROJECT_ROOT

LIMIT_BYTES = 64 * 2**20  # what the device call sends: tracked + untracked-not-ignored files + carried paths
WHEEL_DIR = PROJECT_ROOT / ".whl"
STAGING_DIR = PROJECT_ROOT / "bench" / ".cache" / "wheels"  # the downloads as PyPI serves them
# The device README's recipe; bitsandbytes' wheel is manylinux_2_24.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")  # fmt: skip


@dataclass(frozen=True)
class Carried:
    name: str
    version: str
    why: str
    expected_bytes: int  # the carried file's size when last built (2026-12-02): the --no-download projection
    keep_libs: tuple[str, ...] = ()  # slimmed: the native libraries kept (all others dropped)
    local: str = ""  # the local version label of a slimmed wheel

    @property
    def carried_version(self) -> str:
        return f"{self.version}+{self.local}" if self.local else self.version


MISSING = "not on the device"
CARRIED = (
    Carried("trl", "1.16.0", MISSING, 948205),
    Carried("bitsandbytes", "0.50.2", MISSING + "; slimmed to its CUDA 13.0 and CPU libraries", 3593190,
            keep_libs=("libbitsandbytes_cuda130.so", "libbitsandbytes_cpu.so"), local="cu130"),
    Carried("liger-kernel", "0.8.5", MISSING, 910117),
    Carried("datasets", "5.2.0", MISSING, 608276),
    Carried("dill", "0.4.1", MISSING + " (datasets)", 120019),
    Carried("multiprocess", "0.70.19", MISSING + " (datasets)", 150281),
    Carried("pydantic", "2.14.4", MISSING, 494865),
    Carried("pydantic-core", "2.50.5", MISSING + " (pydantic)", 2264846),
    Carried("annotated-types", "0.8.0", MISSING + " (pydantic)", 13427),
    Carried("typing-inspection", "0.4.5", MISSING + " (pydantic)", 14874),
    Carried("tomli-w", "1.2.0", MISSING + " (the run folder's config.toml)", 6675),
    Carried("transformers", "5.24.0", "the device's 5.17 lacks TrainingArguments.activation_checkpointing (5.23+)", 13549890),
    Carried("accelerate", "1.16.0", "CI's version (the device has 1.15.0)", 389390),
    Carried("peft", "0.21.2", "CI's version (the device's is not recorded)", 835427),
    Carried("typing-extensions", "4.16.0", "pydantic-core needs >= 4.16; the device's is not recorded", 45571),
    Carried("fsspec", "2026.9.0", "datasets 5.2 needs <= 2026.9.0; the device's is not recorded", 221738),
)  # fmt: skip
NOT_CARRIED = {
    "unsloth": "arm C is skipped: unsloth 2026.10.9 pins transformers <= 5.17, trl <= 1.15 and datasets < 5, "
    "none of which smoltrain runs with (transformers >= 5.23, trl 1.16, datasets 5.2); and its set (unsloth 28.6 MB, "
    "diffusers 6.4, torchao 3.4, xformers 3.3, unsloth_zoo 2.9, tyro, msgspec, ...: about 45 MB) would take the "
    "tree past 64 MiB with the rest",
}


def wheel_prefix(name: str, version: str) -> str:
    """How a wheel's file name starts (PEP 427 escapes each run of -_. in the name to one underscore)."""
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}-"


def find_wheel(folder: Path, name: str, version: str) -> Path | None:
    prefix = wheel_prefix(name, version)
    found = [p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix)] if folder.is_dir() else []
    return found[0] if found else None


def download(staging: Path = STAGING_DIR) -> None:
    """Every carried wheel as PyPI serves it, for CPython 3.12 on manylinux x86-64; pip skips those already there."""
    staging.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
               "--implementation", "cp", *[arg for p in PLATFORMS for arg in ("--platform", p)], "-d", str(staging),
               *[f"{c.name}=={c.version}" for c in CARRIED]]  # fmt: skip
    subprocess.run(command, check=True)


def build(staging: Path = STAGING_DIR, out: Path = WHEEL_DIR) -> list[Path]:
    """Fill `out` with exactly the carried wheels (slimmed where asked), removing any other wheel there."""
    out.mkdir(parents=True, exist_ok=True)
    wanted = []
    for carried in CARRIED:
        source = find_wheel(staging, carried.name, carried.version)
        if source is None:
            raise SystemExit(f"{carried.name}=={carried.version}: no wheel in {staging} (did the download fail?)")
        if carried.keep_libs:
            wanted.append(slim_wheel(source, out, carried))
        else:
            target = out / source.name
            if not target.exists() or target.stat().st_size != source.stat().st_size:
                target.write_bytes(source.read_bytes())
            wanted.append(target)
    for stale in set(out.glob("*.whl")) - set(wanted):  # two versions of one package stop the whole install
        stale.unlink()
    return wanted


def slim_wheel(source: Path, out: Path, carried: Carried) -> Path:
    """`source` without the native libraries not in carried.keep_libs, as version <version>+<local>."""
    old_info = f"{source.name.split('-')[0]}-{carried.version}.dist-info/"
    new_info = f"{source.name.split('-')[0]}-{carried.carried_version}.dist-info/"
    target = out / source.name.replace(f"-{carried.version}-", f"-{carried.carried_version}-", 1)
    records: list[str] = []
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            base = info.filename.rsplit("/", 1)[-1]
            if re.fullmatch(r"lib\w+\.(so|dll|dylib)", base) and base not in carried.keep_libs:
                continue
            name = info.filename.replace(old_info, new_info, 1)
            if name == new_info + "RECORD":
                continue  # rewritten below, for the files that remain
            data = src.read(info)
            if name == new_info + "METADATA":
                data = re.sub(rb"^Version: .*$", f"Version: {carried.carried_version}".encode(), data, count=1, flags=re.M)
            entry = zipfile.ZipInfo(name, date_time=info.date_time)  # the source's dates: the same bytes every build
            entry.external_attr, entry.compress_type = info.external_attr, zipfile.ZIP_DEFLATED
            dst.writestr(entry, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{name},sha256={digest},{len(data)}")
        records.append(f"{new_info}RECORD,,")
        record = zipfile.ZipInfo(new_info + "RECORD", date_time=src.infolist()[0].date_time)
        record.compress_type = zipfile.ZIP_DEFLATED
        dst.writestr(record, "\n".join(records) + "\n")
    return target


def travelling_files(root: Path = PROJECT_ROOT) -> list[tuple[str, int]]:
    """(path, bytes) of what a device call sends besides its carried paths: tracked and untracked-not-ignored files."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    files = [(p, (root / p).stat().st_size) for p in dict.fromkeys(listed) if p and (root / p).is_file()]
    shared = root / "shared"  # travels too where the checkout has one
    if shared.is_dir():
        files += [(str(p.relative_to(root)), p.stat().st_size) for p in shared.rglob("*") if p.is_file()]
    return files


@dataclass
class SizeCheck:
    """What travels: the tree, each carried wheel (as built, or as last measured where not built here)."""

    tree_bytes: int
    wheels: list[dict[str, Any]]  # name, version, file, bytes, built, why
    missing: list[str]  # carried wheels not in .whl/ yet
    extra: list[str]  # wheels in .whl/ that the plan does not name

    @property
    def wheel_bytes(self) -> int:
        return sum(int(w["bytes"]) for w in self.wheels)

    @property
    def total_bytes(self) -> int:
        return self.tree_bytes + self.wheel_bytes

    @property
    def fits(self) -> bool:
        return self.total_bytes <= LIMIT_BYTES and not self.extra

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "wheel_bytes": self.wheel_bytes, "total_bytes": self.total_bytes,
                "limit_bytes": LIMIT_BYTES, "fits": self.fits, "not_carried": NOT_CARRIED}  # fmt: skip


def size_check(root: Path = PROJECT_ROOT, wheel_dir: Path = WHEEL_DIR) -> SizeCheck:
    wheels, missing = [], []
    for carried in CARRIED:
        path = find_wheel(wheel_dir, carried.name, carried.carried_version)
        if path is None:
            missing.append(carried.name)
        wheels.append({"name": carried.name, "version": carried.carried_version, "file": path.name if path else None,
                       "bytes": path.stat().st_size if path else carried.expected_bytes, "built": path is not None,
                       "why": carried.why})  # fmt: skip
    planned = {w["file"] for w in wheels}
    extra = sorted(p.name for p in wheel_dir.glob("*.whl") if p.name not in planned) if wheel_dir.is_dir() else []
    return SizeCheck(sum(size for _, size in travelling_files(root)), wheels, missing, extra)


def mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def report(check: SizeCheck) -> list[str]:
    """The size check as printed lines: each wheel with its size, the tree, the total against the limit."""
    lines = ["wheels carried in .whl/ (pip install --no-index --no-deps --target /tmp/site on the device):"]
    for w in check.wheels:
        mark = "" if w["built"] else "  (not built here: size as last measured)"
        lines.append(f"  {w['name'] + '==' + w['version']:<34} {mib(w['bytes']):>10}  {w['why']}{mark}")
    lines.append(f"  {'all wheels':<34} {mib(check.wheel_bytes):>10}")
    lines.append(f"  {'tree (git ls-files + untracked)':<34} {mib(check.tree_bytes):>10}")
    verdict = "fits" if check.fits else "DOES NOT FIT"
    lines.append(f"  {'total that travels':<34} {mib(check.total_bytes):>10}  of {mib(LIMIT_BYTES)}: {verdict}")
    if check.missing:
        lines.append(f"  not built yet: {', '.join(check.missing)} (run --plan without --no-download)")
    if check.extra:
        lines.append(f"  wheels in .whl/ that the plan does not name (remove them): {', '.join(check.extra)}")
    for name, why in NOT_CARRIED.items():
        lines.append(f"  not carried: {name}: {why}")
    return lines


def main(argv: list[str]) -> int:
    if "--no-download" not in argv:
        download()
        build()
    check = size_check()
    print("\n".join(report(check)))
    return 0 if check.fits else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
