"""The classify pipeline's scheduling: features started before the model loads, bounded
look-ahead, and the fused inference network against the network as trained."""

import os

import numpy as np
import pytest
import soundfile as sf

from sercli.runtime import workers
from sercli.runtime.classify import classify
from sercli.runtime.workers import start_analysis

from .conftest import speechlike


@pytest.fixture
def wavs(tmp_path, rng, write_wav):
    for i in range(5):
        write_wav(f"w/{i:02d}.wav", speechlike(rng, 1.0 + 0.3 * i, f0=110 + 20 * i), 16000)
    write_wav("w/99_silent.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "w" / "98_bad.wav").write_bytes(b"RIFF not really")
    return sorted(str(p) for p in (tmp_path / "w").iterdir())


def rows(results):
    return [(r.path, r.label, r.scores, r.error) for r in results]


def test_started_analysis_gives_the_same_results(wavs, tiny_cnn):
    plain = rows(classify(wavs, model=str(tiny_cnn), jobs=2))
    st = start_analysis(wavs, ("logmel", "summary"), jobs=2)
    assert st is not None
    assert rows(classify(wavs, model=str(tiny_cnn), jobs=2, started=st)) == plain
    assert any(r[3] for r in plain) and any(r[1] for r in plain)


def test_started_analysis_without_the_needed_features_is_redone(wavs, tiny_cnn):
    plain = rows(classify(wavs, model=str(tiny_cnn), jobs=2))
    st = start_analysis(wavs, ("summary",), jobs=2)  # the CNN needs logmel too
    assert rows(classify(wavs, model=str(tiny_cnn), jobs=2, started=st)) == plain
    st = start_analysis(wavs[:3], ("logmel", "summary"), jobs=2)  # other paths
    assert rows(classify(wavs, model=str(tiny_cnn), jobs=2, started=st)) == plain


def test_nothing_to_start_with_one_job(wavs):
    assert start_analysis(wavs, ("summary",), jobs=1) is None
    assert start_analysis(wavs[:1], ("summary",), jobs=2) is None


def test_results_run_at_most_two_chunks_ahead():
    begun = []

    def run(chunk):
        begun.append(chunk[0])
        return iter(chunk)

    it = workers._two_chunks_ahead(run, [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]])
    assert begun == [0]  # the first chunk starts at once
    assert next(it) == 0 and begun == [0, 3]  # the next one when the first is read
    assert [next(it), next(it)] == [1, 2] and begun == [0, 3]
    assert next(it) == 3 and begun == [0, 3, 6]
    assert list(it) == [4, 5, 6, 7, 8, 9] and begun == [0, 3, 6, 9]


def test_chunks_are_bounded_by_files_and_by_bytes(tmp_path):
    sizes = [10, 10, 10, 50, 5, 30, 5, 200, 1]
    paths = []
    for i, n in enumerate(sizes):
        (tmp_path / f"{i}.wav").write_bytes(b"x" * n)
        paths.append(str(tmp_path / f"{i}.wav"))
    paths.insert(1, str(tmp_path / "missing.wav"))  # counts 0 bytes; its worker reports it
    chunks = list(workers._chunked(paths, 3, 60))
    assert sum(chunks, []) == paths  # every path once, in order
    assert [len(c) for c in chunks] == [3, 2, 3, 1, 1]  # cut at 3 files, or before 60 bytes
    for c in chunks:
        assert len(c) <= 3
        assert len(c) == 1 or sum(os.path.getsize(p) for p in c if os.path.exists(p)) <= 60
    assert list(workers._chunked([], 3, 60)) == []


def test_closing_early_closes_the_running_chunks():
    closed = []

    class Gen:
        def __init__(self, chunk):
            self.it, self.name = iter(chunk), chunk[0]

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.it)

        def close(self):
            closed.append(self.name)

    it = workers._two_chunks_ahead(Gen, [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]])
    next(it)
    it.close()
    assert set(closed) == {0, 3}  # (closing twice is harmless)


def test_a_streamed_long_file_honours_debug(tmp_path, tiny_cnn, monkeypatch):
    """Files over LONG_FILE_S go through the same scoring as the others, --debug included: an
    unexpected error is the file's error row, or raised under debug."""
    from sercli.runtime import classify as runtime_classify
    from sercli.runtime.windows import LONG_FILE_S

    p = tmp_path / "long.wav"
    sf.write(p, np.zeros(int((LONG_FILE_S + 1) * 8000), np.int16), 8000)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")
        yield

    monkeypatch.setattr(runtime_classify, "iter_windows", broken)
    (r,) = classify([str(p)], model=str(tiny_cnn), jobs=1)
    assert r.error == f"{p}: RuntimeError: boom"
    with pytest.raises(RuntimeError, match="boom"):
        list(classify([str(p)], model=str(tiny_cnn), jobs=1, debug=True))


@pytest.mark.parametrize("onednn,pooling", [(True, "stats"), (False, "stats"), (True, "attention")])
def test_fused_cnn_matches_the_network_as_trained(rng, onednn, pooling, monkeypatch):
    import torch

    from sercli.models import nets

    if not onednn:  # a CPU or build without oneDNN: the folded layers run as they are
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    torch.manual_seed(0)
    net = nets.EmotionCNN(
        nets.CNNDims(n_mels=64, n_labels=6, channels=[8, 16, 16], hidden=16, n_summary=5, pooling=pooling)
    )
    for mod in net.modules():  # BatchNorm statistics that are not the identity
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.5, 0.5)
    net.eval()
    x = torch.from_numpy(rng.normal(size=(3, 64, 123)).astype(np.float32) * 10)
    lengths, summ = torch.tensor([123, 90, 40]), torch.from_numpy(rng.normal(size=(3, 5)).astype(np.float32))
    with torch.inference_mode():
        ref = net(x, lengths, summ)
        fused = net.fuse_for_inference()(x, lengths, summ)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert net.fused_mkldnn == (onednn and torch.backends.mkldnn.is_available())
    np.testing.assert_allclose(fused.numpy(), ref.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pooling", ["stats", "attention"])
def test_cnn_scores_a_clip_alike_alone_and_padded_in_a_batch(rng, pooling):
    """Padding to the longest clip of a batch is masked out of the pooling, attentive or not."""
    import torch

    from sercli.models import nets

    torch.manual_seed(0)
    net = nets.EmotionCNN(nets.CNNDims(channels=[8, 16], hidden=16, time_pool=2, pooling=pooling)).eval()
    long_, short = (torch.from_numpy(rng.normal(size=(64, n)).astype(np.float32) * 10) for n in (160, 70))
    x = torch.zeros(2, 64, 160)
    x[0], x[1, :, :70] = long_, short
    with torch.inference_mode():
        batch = net(x, torch.tensor([160, 70]))
        alone = net(short[None], torch.tensor([70]))
    np.testing.assert_allclose(batch[1].numpy(), alone[0].numpy(), atol=1e-4)


def test_band_norm_cnn_ignores_a_fixed_filter_on_the_clip(rng):
    """band_norm subtracts each band's mean over the clip: a per-band offset in dB (a fixed
    channel or microphone response) leaves the scores unchanged; without it, it does not."""
    import torch

    from sercli.models import nets

    x = torch.from_numpy(rng.normal(size=(2, 64, 150)).astype(np.float32) * 10)
    lengths = torch.tensor([150, 97])
    tilt = torch.linspace(-12, 12, 64)[None, :, None]
    for band_norm in (True, False):
        torch.manual_seed(0)
        net = nets.EmotionCNN(nets.CNNDims(channels=[8, 16], hidden=16, time_pool=2, band_norm=band_norm)).eval()
        with torch.inference_mode():
            diff = (net(x, lengths) - net(x + tilt, lengths)).abs().max().item()
        assert (diff < 1e-4) if band_norm else (diff > 1e-3), (band_norm, diff)
