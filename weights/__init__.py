"""The bundled weights, installed as the package data `sercli.weights` (see pyproject.toml);
sercli.models.registry pins each file's sha256. A package, so that editable installs map it too."""
