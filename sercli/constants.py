"""Audio and feature constants, in one place (as openai/whisper does).

Every model sees 16 kHz mono audio; the frame settings give 25 ms windows every 10 ms.
"""

SAMPLE_RATE = 16_000
N_FFT = 512  # 32 ms zero-padded FFT of a 25 ms window
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms -> 100 frames per second
N_MELS = 128  # the paper's mel bands
N_MFCC = 20  # the paper's MFCCs
FMIN = 0.0
FMAX = SAMPLE_RATE / 2
TOP_DB = 80.0  # dynamic range kept by power_to_db, as librosa's default

MIN_DURATION_S = 0.25  # shorter clips are reported as too short, never classified
SILENCE_DBFS = -60.0  # a clip whose RMS stays below this is reported as silent
DEFAULT_WINDOW_S = 4.0  # long recordings are cut into windows of this length
WINDOW_OVERLAP = 0.5  # ... overlapping by this fraction

AUDIO_EXTENSIONS = (
    "wav",
    "flac",
    "ogg",
    "oga",
    "opus",
    "mp3",
    "aif",
    "aiff",
    "aifc",
    "au",
    "snd",
    "w64",
    "rf64",
    "caf",
    "wave",
)
