import pytest

from sercli.metrics import confusion, evaluate


def test_hand_computed_case():
    labels = ["a", "b", "c"]
    y_true = ["a", "a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "a", "b", "b", "c", "c"]
    m = evaluate(y_true, y_pred, labels, groups=["x", "x", "x", "y", "y", "y", "y"])
    assert m["confusion"] == [[3, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    # recalls 3/4, 1/2, 1 -> UAR 0.75
    assert m["uar"] == pytest.approx((0.75 + 0.5 + 1) / 3)
    # precisions 1, 1/2, 1/2 ; F1 = 6/7, 1/2, 2/3
    assert m["per_class"]["a"]["precision"] == pytest.approx(1.0)
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((6 / 7 + 0.5 + 2 / 3) / 3)
    assert m["confusion_normalized"][1] == [0.0, 0.5, 0.5]
    assert m["per_corpus"]["x"] == {"n": 3, "accuracy": 1.0, "uar": 1.0, "macro_f1": 1.0}
    assert m["per_corpus"]["y"]["accuracy"] == pytest.approx(0.5)


def test_absent_class_not_counted_in_uar():
    m = evaluate(["a", "a"], ["a", "b"], ["a", "b", "c"])
    assert m["uar"] == pytest.approx(0.5)
    assert m["per_class"]["c"]["support"] == 0


def test_matches_sklearn(rng):
    from sklearn.metrics import balanced_accuracy_score, f1_score

    labels = list("abcd")
    y = [labels[i] for i in rng.integers(0, 4, 200)]
    p = [labels[i] for i in rng.integers(0, 4, 200)]
    m = evaluate(y, p, labels)
    assert m["uar"] == pytest.approx(balanced_accuracy_score(y, p))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert confusion(y, p, labels).sum() == 200
