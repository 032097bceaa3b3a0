"""The lab: experiment and reproduction scripts, run from the repository root as `python -m train.NAME`.

Not installed with sercli; the recipes the package ships are elsewhere (pyproject.toml)."""
