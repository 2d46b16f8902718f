"""The ``taskclf`` command line: typer commands that parse, call the registry and render.

Command modules import the registry and rich only inside their
functions, so ``taskclf --help`` starts fast; all rendering lives in
:mod:`taskclf.cli.output`.
"""
