"""SisFall accelerometer trials as bench stimuli. The generic factories (pin traces, replay
files, NMEA logs, frames) live in gateway/testing/stimuli.py; this module adds the SisFall
data set the benches replay (``sisfall_dir`` fixture).

SisFall trials (/work/shared/data/sisfall, 200 Hz ADXL345 counts) are converted into the
firmware's replay format in the test's own tmp dir (never copied into the repo): one
``x y z`` line of milli-g per sample at the device rate, the bin mean of the source
samples (what drivers/replay.SampleFile does and what the LIS3DH's own averaging does).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from gateway.testing.stimuli import resample_mg, write_replay

SISFALL_HZ = 200
SISFALL_G_PER_COUNT = 32.0 / 8192      # ADXL345 ±16 g, 13 bit


def read_sisfall(path: Path) -> list[tuple[float, float, float]]:
    """ADXL345 (x, y, z) in g of every sample of a SisFall trial."""
    out = []
    for line in path.read_text().splitlines():
        line = line.strip().rstrip(";")
        if not line:
            continue
        p = line.split(",")
        out.append((int(p[0]) * SISFALL_G_PER_COUNT, int(p[1]) * SISFALL_G_PER_COUNT,
                    int(p[2]) * SISFALL_G_PER_COUNT))
    return out


@dataclass(frozen=True)
class Replay:
    path: Path
    rate_hz: int
    samples: int
    peak_s: float        # time of the largest acceleration magnitude in the written file
    peak_mg: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.rate_hz


def sisfall_replay(src: Path, dst: Path, *, rate_hz: int = 50, before_s: float = 4.0, after_s: float = 4.0,
                   lead_s: float = 0.0) -> Replay:
    """Write the window [peak - before_s, peak + after_s] of a SisFall trial as a replay file.

    ``lead_s`` seconds of the trial's first sample are prepended (the wearer standing
    still while the device boots).
    """
    mg = resample_mg(read_sisfall(src), SISFALL_HZ, rate_hz)
    mags = [math.sqrt(x * x + y * y + z * z) for x, y, z in mg]
    k = max(range(len(mags)), key=mags.__getitem__)
    a = max(0, k - int(before_s * rate_hz))
    b = min(len(mg), k + int(after_s * rate_hz))
    lead = [mg[a]] * int(lead_s * rate_hz)
    window = lead + mg[a:b]
    write_replay(dst, window)
    return Replay(dst, rate_hz, len(window), (len(lead) + k - a) / rate_hz, int(mags[k]))


__all__ = ["SISFALL_G_PER_COUNT", "SISFALL_HZ", "Replay", "read_sisfall", "sisfall_replay"]
