"""The README's results table, read from the bundled model cards (weights/*.card.json).

python -m train.cards_table > train/results/bundled.md
"""

import json
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
PAPER = {"svm": 0.38, "rnn": 0.43, "seed-cnn": 0.62, "human": 0.72}  # the paper's Table 2

print(
    "| model | protocol | classes | val acc | val UAR | test acc | test UAR | test macro-F1 "
    "| test UAR per corpus | paper's test acc |"
)
print("|---|---|---|---|---|---|---|---|---|---|")
cards = {
    name: json.loads((WEIGHTS / f"{name}.card.json").read_text())
    for name in (
        "whisper-tiny",
        "whisper-tiny-spk",
        "whisper-base",
        "whisper-base-spk",
        "cnn",
        "cnn-spk",
        "svm",
        "seed-cnn",
    )
    if (WEIGHTS / f"{name}.card.json").is_file()
}
ens = {"cnn-spk-ens": json.loads((WEIGHTS / "cnn-spk-ens.json").read_text())}  # ensemble files


def row(name: str) -> str:
    if name in ens:
        e = ens[name]
        v, t = e["metrics"]["val"], e["metrics"]["test"]
        corpora = ", ".join(f"{c} {u:.3f}" for c, u in t["per_corpus_uar"].items())
        members = " + ".join(f"{m['weight']:g} x `{m['name']}`" for m in e["members"])
        return (
            f"| `{name}` ({members}) | speaker-independent, `--normalize-by {e['mode']}` | "
            f"{len(e['labels'])} | {v['accuracy']:.3f} | {v['uar']:.3f} | {t['accuracy']:.3f} | "
            f"{t['uar']:.3f} | {t['macro_f1']:.3f} | {corpora} | – |"
        )
    card = cards[name]
    v, t = card["metrics"]["val"], card["metrics"]["test"]
    proto = "paper (random 70/15/15)" if card["recipe"].get("protocol") == "paper" else "speaker-independent"
    if card["recipe"].get("normalize") == "group":
        proto += ", `--normalize-by speaker`"
    corpora = ", ".join(f"{c} {m['uar']:.3f}" for c, m in t.get("per_corpus", {}).items())
    paper = f"{PAPER[name]:.2f}" if name in PAPER and card["recipe"].get("protocol") == "paper" else "–"
    return (
        f"| `{name}` | {proto} | {len(card['labels'])} | {v['accuracy']:.3f} | {v['uar']:.3f} | "
        f"{t['accuracy']:.3f} | {t['uar']:.3f} | {t['macro_f1']:.3f} | {corpora} | {paper} |"
    )


for name in [n for n in cards if n.startswith("whisper")] + ["cnn", "cnn-spk", "cnn-spk-ens", "svm", "seed-cnn"]:
    print(row(name))
print()
for name in [n for n in cards if n.startswith("whisper")]:
    card = cards[name]
    cal = {k: card["metrics"][k]["calibration"]["ece"] for k in ("val", "test")}
    print(
        f"`{name}`: encoder {card['encoder']['name']} (blocks {', '.join(map(str, card['features']['layers']))}; "
        f"{card['encoder']['licence']}), temperature {card['temperature']:.3f} fitted on val, expected "
        f"calibration error val {cal['val']:.3f}, test {cal['test']:.3f}.  "
    )
print()
for name in [n for n in cards if n.startswith("whisper")] + ["cnn", "cnn-spk"]:
    card = cards[name]
    print(
        f"`{name}` trained in {card['seconds']['total'] / 60:.1f} min ({card['seconds']['features']:.0f} s of it "
        f"features and data loading) with `{card['command']}`.  "
    )
for name, e in ens.items():
    print(
        f"`{name}` was built with `{e['command']}` (weights chosen on {e['weights_chosen_on']}); its "
        "members were trained with "
        + "; ".join(
            f"`{json.loads((WEIGHTS / (Path(m['file']).stem + '.card.json')).read_text())['command']}`"
            for m in e["members"]
        )
        + ".  "
    )
