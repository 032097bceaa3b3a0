"""Training: recipes -> splits -> features -> a model kind's trainer -> weights and model card.

recipe.py     the typed, frozen recipe (one type per model kind), extends, --set overrides, RecipeError
splits.py     the protocols: speaker, paper, loco:<corpus>
augment.py    feature-domain augmentation and mixup of the CNN's log-mels
torch_loop.py the torch nets' training loop (sercli's CNN and the seed paper's nets)
svm.py        the SVM;  head.py  the head over cached Whisper encoder blocks
card.py       the model card (JSON, Markdown, figures)
run.py        one run: the table of trainers (one per model kind) and `run`
"""
