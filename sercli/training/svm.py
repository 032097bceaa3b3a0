"""Training an SVM (recipe model = "svm"): scikit-learn fits it, numpy runs it (NumpySVM)."""

from __future__ import annotations

import numpy as np

from ..calibration import fit_temperature
from ..corpora import Clip
from ..dataset import FEATURE_SETTINGS, FeatureSet
from ..models import NumpySVM, save_svm
from .job import Fitted, Job, summary_features
from .recipe import SVMRecipe
from .splits import speaker_groups


def svm_inputs(fs: FeatureSet, features: str = "summary") -> np.ndarray:
    """An SVM's input matrix (n_clips, n_features): the summary vectors, or the paper's mean
    log-mel + MFCC vectors."""
    return fs.summary if features == "summary" else np.concatenate([fs.paper_mel, fs.paper_mfcc], axis=1)


def svm_split_inputs(svm: NumpySVM, fs: FeatureSet) -> np.ndarray:
    """What `svm` reads for the clips of a split: group-trained SVMs get them normalised over
    each speaker's clips of the split (as `--normalize-by speaker` does)."""
    X = svm_inputs(fs, svm.features)
    return svm.group_normalize(X, speaker_groups(fs.clips)) if svm.normalize == "group" else X


def train_svm(data: dict[str, FeatureSet], labels: list[str], recipe: SVMRecipe, seed: int) -> NumpySVM:
    """Fit on data["train"]; the softmax temperature is fitted on data["val"] when it has clips."""
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    tr, va = data["train"], data["val"]
    X = svm_inputs(tr, recipe.features)
    y = np.array([labels.index(c.label) for c in tr.clips])
    group = recipe.normalize == "group"
    if group:
        # z-score each training speaker's clips with that speaker's statistics; the prior
        # (mean of speaker means, pooled within-speaker std) is kept for small groups at inference
        from ..normalize import normalize_groups, prior_stats

        k = recipe.group_prior
        g_mean, g_std = prior_stats(X, speaker_groups(tr.clips))
        X = normalize_groups(X, speaker_groups(tr.clips), g_mean, g_std, k)
    scaler = StandardScaler().fit(X)
    svc = SVC(
        C=recipe.C,
        gamma=recipe.gamma,
        kernel=recipe.kernel,
        class_weight="balanced" if recipe.balanced else None,
        random_state=seed,
    )
    svc.fit(scaler.transform(X), y)
    svm = NumpySVM.from_sklearn(scaler, svc, features=recipe.features)
    if group:
        svm.normalize, svm.group_mean, svm.group_std, svm.group_prior = "group", g_mean, g_std, k
    if len(va.clips):
        yv = np.array([labels.index(c.label) for c in va.clips])
        svm.temperature = fit_temperature(svm.decision_ovr(svm_split_inputs(svm, va)), yv)
    return svm


class SVMTrainer:
    suffix = ".npz"

    def fit(self, recipe: SVMRecipe, splits: dict[str, list[Clip]], job: Job) -> Fitted:
        labels = list(recipe.labels)
        split_fs, failed, t_feat = summary_features(splits, labels, job)
        svm = train_svm(split_fs, labels, recipe, job.seed)
        probas = {
            k: svm.predict_proba(svm_split_inputs(svm, split_fs[k])) for k in ("val", "test") if split_fs[k].clips
        }
        return Fitted(
            model=svm,
            save=lambda path, config: save_svm(path, svm, config),
            parts={k: v.clips for k, v in split_fs.items()},
            probas=probas,
            features=FEATURE_SETTINGS,
            failed=failed,
            t_feat=t_feat,
            group_normalised=svm.normalize == "group",
        )
