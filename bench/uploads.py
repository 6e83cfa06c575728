"""Images from the web chat as a troll would send them: ``python bench/uploads.py`` (≈10 s).

The worst inputs within the limits (``GATEWAY_WEBCHAT_UPLOAD_MAX_BYTES`` 5 MB, ``MAX_PIXELS`` 40 MP): their size in,
the cleaned size kept in the store, the CPU of ``images.clean``; and what one client network can keep in the store
at the configured limits, in 10 minutes and an hour (arithmetic on those figures: its cap of open conversations,
each at the message limit, which uploads share). Prints figures, asserts nothing. Not yet measured here: the same
flood through the real app on Redis (``used_memory``, a text's latency meanwhile), see bench/README.md.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runnable from a checkout without installing

from PIL import Image  # noqa: E402

from gateway import images  # noqa: E402
from gateway.settings import Settings  # noqa: E402
from gateway.testing import SECRET_KEY  # noqa: E402
from gateway.uploads import MAX_PIXELS  # noqa: E402

MB = 1_000_000


def worst_jpeg(width: int = 7300, height: int = 5470, quality: int = 10) -> bytes:
    """≈40 MP of blocky noise at a low JPEG quality: a few MB in, far more once re-encoded at quality 88."""
    grain = Image.frombytes("L", (width // 8, height // 8), os.urandom((width // 8) * (height // 8)))
    out = io.BytesIO()
    grain.resize((width, height), Image.Resampling.NEAREST).convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def noise_png(side: int = 1280) -> bytes:
    """5 MB of incompressible PNG."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(out, "PNG")
    return out.getvalue()


def one_image() -> dict[str, tuple[int, int, float]]:
    found = {}
    for name, data in (("noise JPEG 40 MP", worst_jpeg()), ("noise PNG 1.7 MP", noise_png())):
        times, out = [], b""
        for _ in range(3):
            started = time.process_time()
            out = images.clean(data, MAX_PIXELS).data
            times.append(time.process_time() - started)
        found[name] = (len(data), len(out), min(times))
        print(f"  {name}: in {len(data) / MB:.2f} MB, kept {len(out) / MB:.2f} MB, clean {min(times):.2f} s CPU")
    return found


def troll_arithmetic(settings: Settings, kept: int, cpu: float) -> None:
    per_minute = int(settings.limit_messages_per_conversation.split("/")[0])
    open_at_once = settings.max_waiting_per_client
    uploads = per_minute * open_at_once  # one network, its cap of conversations open, each at the message limit
    print(
        f"  one network: {open_at_once} conversations open × {per_minute} images/min = {uploads} images/min; "
        f"{uploads * cpu:.0f} s of CPU a minute for the cleaning"
    )
    for minutes in (10, 60):
        print(f"  {minutes} min: {uploads * minutes * kept / 1e9:.1f} GB kept in the store (sealed: a little more)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    print("1. one image")
    found = one_image()
    _, kept, cpu = found["noise JPEG 40 MP"]
    defaults = Settings(store="sqlite:///:memory:", flows=str(ROOT / "flows.yaml"), public_url="http://x",
                        secret_key=SECRET_KEY)  # fmt: skip
    troll_arithmetic(defaults, kept, cpu)
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
