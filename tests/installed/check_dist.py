"""Check a built sdist and wheel: every template, static file and migration of the checkout is
in both, and the wheel's metadata has the version from ``crosssell/__init__.py``.

Usage: ``python check_dist.py CHECKOUT DIST_DIR`` (the `wheel` nox session runs it).
"""

from __future__ import annotations

import re
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

# Besides the Python modules, the files a wheel needs to work: none may be left behind.
DATA_DIRS = ("crosssell/templates", "crosssell/static")


def expected_files(checkout: Path) -> set[str]:
    """The package files the wheel must carry, as paths relative to the checkout."""
    wanted: set[str] = set()
    for folder in DATA_DIRS:
        for path in (checkout / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                wanted.add(path.relative_to(checkout).as_posix())
    for path in (checkout / "crosssell" / "migrations").glob("*.py"):
        wanted.add(path.relative_to(checkout).as_posix())
    return wanted


def main(checkout: Path, dist: Path) -> int:
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"expected one wheel and one sdist in {dist}, found {wheels + sdists}")
        return 1
    wanted = expected_files(checkout)
    with zipfile.ZipFile(wheels[0]) as zf:
        in_wheel = set(zf.namelist())
        metadata_name = next(n for n in in_wheel if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(zf.read(metadata_name).decode())
    with tarfile.open(sdists[0]) as tf:
        # sdist members sit under "<name>-<version>/".
        in_sdist = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}

    errors: list[str] = []
    for label, present in (("wheel", in_wheel), ("sdist", in_sdist)):
        missing = sorted(wanted - present)
        if missing:
            errors.append(f"{len(missing)} file(s) missing from the {label}:")
            errors.extend(f"  {name}" for name in missing)
    init = (checkout / "crosssell" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', init, re.M)
    version = match.group(1) if match else "?"
    if metadata["Version"] != version:
        errors.append(f"wheel version {metadata['Version']} != crosssell.__version__ {version}")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in in_wheel):
        errors.append("the wheel has no LICENSE")
    if errors:
        print("\n".join(errors))
        return 1
    print(
        f"{wheels[0].name} and {sdists[0].name}: all {len(wanted)} templates, static files and "
        f"migrations present; version {version}; requires {metadata.get_all('Requires-Dist')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
