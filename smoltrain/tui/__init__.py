"""The terminal app: `smoltrain` with no arguments.

app.py builds the Textual app; screens/ holds the home screen, the new-run wizard, the live run
screen and the curves viewer; widgets/ the pieces they share (plots, the schema form). The pure
helpers beside them (runs, series, catalog, draft, preview) know nothing of Textual.

Nothing in this package imports torch at import time: training runs in the worker child process
(smoltrain.runner), and the dataset preview loads its tokenizer lazily in a worker thread.
"""
