#!/usr/bin/env python3
"""The packages as a user gets them (CPack, from the build tree under test).

Tarball: unpacked into a fresh folder and run with a bare environment (no LD_LIBRARY_PATH,
a fresh HOME): the binary finds its bundled libraries through its $ORIGIN rpath, finds its
assets beside it, runs the shipped example job `ratings_demo.toml` with `--batch`, and (where
xvfb-run exists and the GUI was built) opens its window on the job's database.
Debian package: its dependencies come from dpkg-shlibdeps, it bundles no libraries, and it
carries the binary, the assets, the desktop entry and the icon.

Usage: test_packages.py BUILD_DIR   (exit 77: cpack or dpkg-deb missing)
"""
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path


def skip(why):
    print(f"SKIPPED: {why}")
    sys.exit(77)


def main():
    build = Path(sys.argv[1]).resolve()
    if not shutil.which("cpack") or not shutil.which("dpkg-deb"):
        skip("cpack or dpkg-deb is missing")
    tmp = Path(tempfile.mkdtemp(prefix="lms-pkg-"))
    out = tmp / "packages"
    for gen in ("TGZ", "DEB"):
        r = subprocess.run(["cpack", "-G", gen, "-B", str(out), "--config", str(build / "CPackConfig.cmake")],
                           capture_output=True, text=True, cwd=build)
        assert r.returncode == 0, f"cpack -G {gen} failed:\n{r.stdout}\n{r.stderr}"
    tgz = next(out.glob("*.tar.gz"))
    deb = next(out.glob("*.deb"))

    # --- tarball: unpack anywhere, run with nothing set up.
    root = tmp / "somewhere else"
    root.mkdir()
    with tarfile.open(tgz) as t:
        t.extractall(root)
    top = next(root.iterdir())
    exe = top / "bin" / "lmstation"
    home = tmp / "home"
    home.mkdir()
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin"}
    if os.environ.get("DISPLAY"):
        env["DISPLAY"] = os.environ["DISPLAY"]
    r = subprocess.run([str(exe), "--version"], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "lmstation" in r.stdout, r
    ldd = subprocess.run(["ldd", str(exe)], env=env, capture_output=True, text=True).stdout
    for lib in ("libspdlog", "libfmt", "libsqlite3"):
        line = next((x for x in ldd.splitlines() if lib in x), "")
        where = os.path.normpath(line.split("=>")[1].rsplit("(", 1)[0].strip()) if "=>" in line else ""
        assert where.startswith(str(top / "lib") + "/"), f"{lib} does not come from the package's lib/: {line!r}"
    assert "not found" not in ldd, ldd

    work = tmp / "work"
    work.mkdir()
    job = top / "share/lmstation/assets/examples/ratings_demo.toml"
    r = subprocess.run([str(exe), "--batch", str(job)], env=env, capture_output=True, text=True, cwd=work, timeout=300)
    assert r.returncode == 0, f"batch job failed in the unpacked tarball:\n{r.stderr}"
    summary = json.loads(r.stdout)
    assert summary["status"] == "done", summary
    board = summary["steps"][0]["output"]
    assert [m["model"] for m in board] == ["model-a", "model-b", "model-c"], board
    db = work / "lmstation-ratings-demo/ratings.db"
    assert db.is_file()
    print(f"tarball: {tgz.name} unpacked to a fresh folder; --batch ratings_demo.toml done")

    helptext = subprocess.run([str(exe), "--help"], env=env, capture_output=True, text=True).stdout
    if shutil.which("xvfb-run") and "--screenshot" in helptext:
        png = tmp / "history.png"
        r = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1280x800x24", str(exe), "--screenshot", str(png),
                            "--panel", "history", "--frames", "5", "--db", str(db)],
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        rep = json.loads(Path(str(png) + ".json").read_text())["report"]
        kinds = sorted((x["kind"], x["status"]) for x in rep["runs"])
        assert ("batch", "done") in kinds and ("import", "done") in kinds, rep
        print("tarball: the desktop app opened under Xvfb and showed the job's run")
    else:
        print("tarball: GUI start not checked (no xvfb-run or no GUI in this build)")

    # --- Debian package.
    info = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True).stdout
    for dep in ("libsqlite3-0", "libspdlog", "libfmt", "libc6"):
        assert dep in info, f".deb Depends lacks {dep}: {info}"
    files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for f in ("./usr/bin/lmstation", "./usr/share/applications/lmstation.desktop",
              "./usr/share/icons/hicolor/scalable/apps/lmstation.svg",
              "./usr/share/lmstation/assets/examples/ratings_demo.toml"):
        assert f in files, f"{f} missing from the .deb"
    assert "./usr/lib/" not in files, "the .deb bundles libraries it should depend on"
    if "--screenshot" in helptext:  # the desktop app: its font package and the icon it draws as PNG
        assert "fonts-dejavu-core" in info, f".deb Depends lacks fonts-dejavu-core: {info}"
        assert "./usr/share/icons/hicolor/256x256/apps/lmstation.png" in files, "the PNG icon is missing from the .deb"
    if shutil.which("desktop-file-validate"):
        d = tmp / "deb"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(d)], check=True)
        r = subprocess.run(["desktop-file-validate", str(d / "usr/share/applications/lmstation.desktop")],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
    print(f"deb: {deb.name} Depends: {info.strip()}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
