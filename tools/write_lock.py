"""Write requirements.lock from a `pip install --dry-run --report` JSON (used by `make lock`).

The lock holds every package GenBench Kit installs, pinned at the versions pip resolved against
.venv; torch's CUDA wheels are marked Linux-only, as torch itself requires them.
"""

import json
import sys


def linux_only(name: str) -> bool:
    return name.startswith(("nvidia-", "cuda-", "triton")) and name != "nvidia-ml-py"


def main(report_path: str) -> None:
    report = json.load(open(report_path))
    print("# requirements.lock: every package GenBench Kit installs, pinned (made by `make lock` on Python",
          ".".join(map(str, sys.version_info[:2])) + ", " + sys.platform + ").")
    print("# `make install` installs it before the project; torch's CUDA wheels are marked Linux-only.")
    for item in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower()):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        if name != "genbench-kit":
            print(f"{name}=={version}" + ('; platform_system == "Linux"' if linux_only(name) else ""))


if __name__ == "__main__":
    main(sys.argv[1])
