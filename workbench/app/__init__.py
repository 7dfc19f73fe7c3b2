"""The Gradio app: tabs over the workbench library (``python app.py`` or ``workbench serve``).

:func:`workbench.app.blocks.build_app` assembles it; :func:`workbench.app.main.main` serves it.

>>> from workbench.app.main import parse_args
>>> parse_args([]).host
'127.0.0.1'
"""
