"""When a window of audio holds nothing to classify: one rule for `classify` and `evaluate`.

A fixed level alone refuses quiet speech (a distant or low-gain microphone: RAVDESS has clips
whose RMS is -64 dBFS, peaking at -41 dBFS). So a window is silent only when it is both quiet
and steady:

* its RMS is below SILENCE_DBFS (-60 dBFS; anything louder is sound, as before), and
* it does not rise ACTIVITY_DB (15 dB) above its own noise floor: the loud frames (95th
  percentile of 20 ms frame levels, after a pre-emphasis that keeps low-frequency rumble from
  swinging the level) are less than ACTIVITY_DB above the quiet frames (10th percentile),
  or they stay below ABSOLUTE_FLOOR_DBFS (-80 dBFS, a few steps of 16-bit audio).

Speech rises and falls by 20 to 50 dB between syllables and pauses; steady noise (hiss, hum,
fan, dither) moves by a few dB. Digital silence, a DC offset and low-level noise are silent;
quiet speech is not.
"""

from __future__ import annotations

import numpy as np

from .constants import SAMPLE_RATE, SILENCE_DBFS

FRAME_S = 0.02
ACTIVITY_DB = 15.0
ABSOLUTE_FLOOR_DBFS = -80.0
PRE_EMPHASIS = 0.97

#: how classify and evaluate word a refusal (after "PATH: silent: ")
REASON = f"every window is below {SILENCE_DBFS:.0f} dBFS with nothing {ACTIVITY_DB:.0f} dB above its noise floor"


def _frame_db(y: np.ndarray, n: int) -> np.ndarray:
    k = len(y) // n
    if k == 0:
        return np.full(1, 10 * np.log10(float(np.mean(np.square(y, dtype=np.float64))) + 1e-30))
    f = y[: k * n].reshape(k, n).astype(np.float64)
    return 10 * np.log10(np.mean(f * f, axis=1) + 1e-30)


def is_silent(y: np.ndarray, sr: int = SAMPLE_RATE) -> bool:
    """Whether mono float audio `y` (DC removed) holds nothing to classify (see the module)."""
    y = np.asarray(y)
    if y.size == 0:
        return True
    ms = float(np.mean(np.square(y, dtype=np.float64)))
    if ms > 0 and 10 * np.log10(ms) >= SILENCE_DBFS:
        return False
    n = max(1, int(round(FRAME_S * sr)))
    loud = float(np.percentile(_frame_db(y, n), 95))
    if loud < ABSOLUTE_FLOOR_DBFS:
        return True
    e = np.empty_like(y, dtype=np.float64)
    e[0] = y[0]
    e[1:] = y[1:] - PRE_EMPHASIS * y[:-1].astype(np.float64)
    lv = _frame_db(e, n)
    return float(np.percentile(lv, 95) - np.percentile(lv, 10)) < ACTIVITY_DB
