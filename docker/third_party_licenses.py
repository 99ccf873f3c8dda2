"""Write the image's notice of third-party licences, as the NVIDIA and docker-library images do.

For every distribution in the venv: its name, version, declared licence and the licence files it
ships (inside its .dist-info, which stays in the image). Debian's own packages carry theirs in
/usr/share/doc/*/copyright. Run at build time by ../Dockerfile:

    python third_party_licenses.py /usr/share/licenses/keras-mnist-trainer/THIRD-PARTY-LICENSES.txt
"""

from __future__ import annotations

import sys
from importlib.metadata import distributions
from pathlib import Path
from typing import Any


def _licence(meta: Any) -> str:
    expression = meta.get("License-Expression")
    if expression:
        return str(expression)
    classifiers = [
        c.rsplit(" :: ", 1)[-1]
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    declared = (meta.get("License") or "").strip().splitlines()
    return ", ".join(classifiers) or (declared[0][:80] if declared else "not declared")


def main(out: Path) -> None:
    lines = [
        "Third-party software in this image's Python environment (/opt/venv).",
        "Each package's licence texts are in its .dist-info folder, listed below;",
        "the Debian packages' are in /usr/share/doc/<package>/copyright.",
        "",
    ]
    for dist in sorted(distributions(), key=lambda d: d.metadata["Name"].lower()):
        name = dist.metadata["Name"]
        files = [
            str(dist.locate_file(f))
            for f in dist.files or []
            if ".dist-info/" in str(f)
            and any(k in f.name.upper() for k in ("LICEN", "COPYING", "NOTICE"))
        ]
        lines.append(f"{name} {dist.version}: {_licence(dist.metadata)}")
        lines.extend(f"    {f}" for f in sorted(files))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
