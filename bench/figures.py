"""The cold-start benchmark's figures (bench/cold_start.py): the functions' binaries and zip
sizes, and the summary tables."""
import statistics
import tempfile
import zipfile
from pathlib import Path

FUNCTIONS = ["token-refresher", "launch-hook", "terminate-hook"]
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}


def elf_machine(path):
    with open(path, "rb") as f:
        head = f.read(20)
    if head[:4] != b"\x7fELF":
        return None
    return ELF_MACHINES.get(int.from_bytes(head[18:20], "little" if head[5] == 1 else "big"), "other")


def sizes(functions_dir):
    rows = []
    for fn in FUNCTIONS:
        d = functions_dir / fn
        boot, zipped = d / "bootstrap", d / "bootstrap.zip"
        if zip_is_newer(boot, zipped):
            how, zsize = "bootstrap.zip", zipped.stat().st_size
        elif boot.exists():
            tmp = Path(tempfile.mkstemp(suffix=".zip")[1])
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                z.write(boot, "bootstrap")
            how, zsize = "zipped here (deflate)", tmp.stat().st_size
            tmp.unlink()
        else:
            rows.append((fn, None, None, "not built"))
            continue
        bsize = zipfile.ZipFile(zipped).getinfo("bootstrap").file_size if how == "bootstrap.zip" else boot.stat().st_size
        rows.append((fn, bsize, zsize, how))
    return rows


def zip_is_newer(boot, zipped):
    return zipped.exists() and (not boot.exists() or zipped.stat().st_mtime >= boot.stat().st_mtime)


def binary_of(functions_dir, fn, scratch):
    """The function's latest bootstrap: the file, or extracted from bootstrap.zip when that is newer
    (`--output-format zip` writes only the zip)."""
    boot = functions_dir / fn / "bootstrap"
    zipped = functions_dir / fn / "bootstrap.zip"
    if not zip_is_newer(boot, zipped):
        return boot if boot.exists() else None
    (scratch / fn).mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zipped) as z:
        z.extract("bootstrap", scratch / fn)
    out = scratch / fn / "bootstrap"
    out.chmod(0o755)
    return out


def ms(x):
    return f"{x * 1000:.1f} ms" if x is not None else "-"


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def mib(kib):
    return f"{kib / 1024:.1f} MiB" if kib else "-"


def summarize(runs):
    ok = [r for r in runs if r["ok"]]
    if not ok:
        return None
    warm = [w for r in ok for w in r.get("warm", [])]
    warm_own = [w for r in ok for w in r.get("warm_own", [])]
    return {
        "runs": f"{len(ok)}/{len(runs)}",
        "start-up (spawn -> first poll)": ms(med(r["startup"] for r in ok)),
        "  AWS calls during start-up": ms(med(r["startup_outside"] for r in ok)),
        "first invocation": ms(med(r.get("first") for r in ok)),
        "  its own time (minus emulator)": ms(med(r.get("first_own") for r in ok)),
        "warm invocation": ms(med(warm)),
        "  own time (minus emulator)": ms(med(warm_own)),
        "  own time, 90th percentile": ms(statistics.quantiles(warm_own, n=10)[-1] if len(warm_own) > 1 else None),
        "CPU at start-up": ms(med(r["cpu_startup"] for r in ok)),
        "CPU of the first invocation": ms(med(r.get("cpu_first") for r in ok)),
        "CPU per warm invocation": ms(med(r.get("cpu_warm") for r in ok)),
        "CPU in total (wait4)": ms(med(r["cpu_total"] for r in ok)),
        "RSS at first poll": mib(med(r["rss_startup"] for r in ok)),
        "peak memory (VmHWM)": mib(max(r["hwm"] for r in ok)),
    }


def print_table(title, columns):
    names = list(columns)
    keys = []
    for col in columns.values():
        for k in (col or {}):
            if k not in keys:
                keys.append(k)
    width = max(len(k) for k in keys) + 2
    print(f"\n{title}")
    print(" " * width + "".join(f"{n:>22}" for n in names))
    for i, k in enumerate(keys):
        cells = [(c or {}).get(k, "-") if not isinstance(c, list) else c[i] for c in columns.values()]
        print(f"{k:<{width}}" + "".join(f"{str(v):>22}" for v in cells))
