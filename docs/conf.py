"""Sphinx configuration: the API reference, built from the docstrings of the installed cnn_core.

Build (from the repository root, after ``pip install ".[docs]"``)::

    sphinx-build -W -b html docs docs/_build

``sphinx-build`` imports the *installed* package (the source tree has no compiled modules), so reinstall
after editing docstrings (an editable install, ``pip install -e ".[docs]"``, picks them up directly).
"""
import cnn_core

project = "cnn_core"
author = "cnn_core contributors"
copyright = "cnn_core contributors, MIT licence"
release = cnn_core.__version__
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]

# Layer docstrings are Google style ("Args:", "Example:") with PyTorch's "Shape:" section; the estimators
# (models/perceptron.py, models/svm.py) use NumPy style, as scikit-learn does.
napoleon_google_docstring = True
napoleon_numpy_docstring = True
napoleon_custom_sections = ["Shape"]
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autoclass_content = "class"
# Single backticks in the docstrings mean code, as in Markdown.
default_role = "code"

html_theme = "alabaster"
html_static_path = []
exclude_patterns = ["_build"]

# Modules whose docstrings are written as plain text with math (|x|, coef_, a * b, indented list
# continuations) that reST would misread: shown verbatim, exactly as in the source, so that the build can
# run with -W. Converting one to reST (as cnn_core/nn/*.py are) means removing it from this set.
PLAIN_TEXT_MODULES = {"cnn_core.gradcheck", "cnn_core.kernels.activations", "cnn_core.models.perceptron",
                      "cnn_core.models.svm", "cnn_core.optim.clip"}


def _verbatim(app, what, name, obj, options, lines):
    module = name if what == "module" else getattr(obj, "__module__", None) or name.rpartition(".")[0]
    if module in PLAIN_TEXT_MODULES and lines:
        lines[:] = ["::", ""] + ["    " + line for line in lines] + [""]


def setup(app):
    # priority < 500: before napoleon, which would otherwise read sections out of the plain text
    app.connect("autodoc-process-docstring", _verbatim, priority=100)
