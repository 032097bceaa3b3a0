import pickle

import numpy as np
import pytest

from sercli.errors import ModelError
from sercli.models import (
    REGISTRY,
    NumpySVM,
    load_file,
    load_model,
    needs_before_loading,
    save_svm,
    sha256_file,
    weights_dir,
)


def test_numpy_svm_equals_sklearn(rng, tmp_path):
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    X = rng.standard_normal((120, 176)) + np.repeat(np.eye(4, 176) * 2, 30, axis=0)  # 176: the summary vector
    y = np.repeat(np.arange(4), 30)
    scaler = StandardScaler().fit(X)
    svc = SVC(C=3.0, gamma="scale").fit(scaler.transform(X), y)
    svm = NumpySVM.from_sklearn(scaler, svc)
    Xt = rng.standard_normal((50, 176)) * 2
    svc.set_params(decision_function_shape="ovo")
    np.testing.assert_allclose(svm.decision_ovo(Xt), svc.decision_function(scaler.transform(Xt)), atol=1e-8)
    svc.set_params(decision_function_shape="ovr")
    np.testing.assert_allclose(svm.decision_ovr(Xt), svc.decision_function(scaler.transform(Xt)), atol=1e-8)
    assert (svm.predict_proba(Xt).argmax(1) == svc.predict(scaler.transform(Xt))).all()
    p = tmp_path / "m.npz"
    save_svm(p, svm, {"kind": "svm", "labels": list("abcd")})
    m = load_file(p)
    assert m.labels == tuple("abcd") and m.kind == "svm"
    np.testing.assert_allclose(m.impl.predict_proba(Xt), svm.predict_proba(Xt))


def test_torch_model_roundtrip_with_weights_only(tiny_cnn):
    m = load_file(tiny_cnn)
    assert m.kind == "cnn" and len(m.labels) == 6
    feats = [{"logmel": np.random.default_rng(0).standard_normal((64, n)).astype(np.float32)} for n in (50, 120)]
    p = m.predict_proba(feats)
    assert p.shape == (2, 6)
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    # batching does not change a clip's scores (masked normalisation and pooling)
    np.testing.assert_allclose(m.predict_proba(feats[:1])[0], p[0], atol=1e-5)


def test_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pt"
    p.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ModelError, match="refusing a pickle"):
        load_file(p)


def test_torch_pickled_module_is_refused(tmp_path):
    """A full torch.save of a module (not a state dict) needs pickle's code paths: refused."""
    import torch

    p = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), p)
    with pytest.raises(ModelError):
        load_file(p)


def test_npz_with_object_arrays_is_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, config=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelError, match="not a valid"):
        load_file(p)


def test_hash_mismatch_names_the_file(tmp_path, tiny_cnn):
    with pytest.raises(ModelError, match="does not match the pinned"):
        load_file(tiny_cnn, sha256="0" * 64)


def test_truncated_file_is_a_clear_error(tmp_path, tiny_cnn):
    p = tmp_path / "cut.pt"
    p.write_bytes(tiny_cnn.read_bytes()[:500])
    with pytest.raises(ModelError, match="cut.pt"):
        load_file(p)


def test_unknown_model_name():
    with pytest.raises(ModelError, match="unknown model"):
        load_model("no-such-model")


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_bundled_weights_match_pinned_hash_and_load(name):
    fname, pinned = REGISTRY[name]
    path = weights_dir() / fname
    assert path.is_file(), f"bundled weights missing: {path}"
    assert sha256_file(path) == pinned
    m = load_model(name)
    assert m.sha256 == pinned and len(m.labels) >= 5
    # classify starts extracting these before the model is loaded: they must cover its needs
    assert set(m.needs) <= set(needs_before_loading(name))
    assert set(m.needs) == set(needs_before_loading(name))
    if m.kind == "ensemble":  # its card is the file itself; each member's hash is pinned there
        assert [x.sha256 for x in m.impl.members] == [e["sha256"] for e in m.card["members"]]
        assert all(x.card.get("sha256") == x.sha256 for x in m.impl.members)
    else:
        assert m.card.get("sha256") == pinned
    assert m.card["metrics"]["test"]["n"] > 0


def test_needs_before_loading_are_unknown_for_files(tmp_path):
    assert needs_before_loading(tmp_path / "cnn.pt") is None  # known once loaded
