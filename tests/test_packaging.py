"""
What `pip install .` installs: the sdist and the wheel built from it hold every
package, data file and plugin of the source tree. (CI's scripts/wheel-smoke goes
further: it installs the wheel into a clean venv and relays a session from there.)
"""

import shutil
import subprocess
import sys
import tarfile
import zipfile

from tests.support import ROOT


def tracked_files():
    """The files of the source tree that the package is made of (not caches or build output)."""
    package = [p for p in (ROOT / "wsrelay").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    plugins = list((ROOT / "twisted" / "plugins").glob("wsrelay_*.py"))
    return {p.relative_to(ROOT).as_posix() for p in package + plugins}


def test_the_sdist_and_the_wheel_hold_every_package_data_file_and_plugin(tmp_path):
    tree = tmp_path / "src"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", "*.pyc", "var", "dropin.cache"))
    dist = tmp_path / "dist"
    # No build isolation: offline, with the venv's setuptools (the CI smoke builds isolated).
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check", "--outdir", str(dist),
         str(tree)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [wheel] = dist.glob("wsrelay-*.whl")
    [sdist] = dist.glob("wsrelay-*.tar.gz")
    wanted = tracked_files()
    assert "wsrelay/admin/api.py" in wanted and "wsrelay/demo_page.html" in wanted

    with zipfile.ZipFile(wheel) as z:
        in_wheel = set(z.namelist())
    missing = sorted(wanted - in_wheel)
    assert not missing, f"left out of the wheel: {missing}"
    # twisted/plugins is Twisted's own directory: the wheel must not claim it as a package.
    assert "twisted/__init__.py" not in in_wheel and "twisted/plugins/__init__.py" not in in_wheel
    assert not [name for name in in_wheel if name.startswith("tests/")]

    with tarfile.open(sdist) as t:
        top = t.getnames()[0].split("/")[0]
        in_sdist = {name.partition("/")[2] for name in t.getnames()}
    missing = sorted((wanted | {"setup.py", "pyproject.toml"}) - in_sdist)
    assert not missing, f"left out of the sdist {top}: {missing}"
