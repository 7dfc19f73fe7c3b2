"""The Gradio app: tabs over the workbench library (``python app.py`` or ``workbench serve``).

>>> # demo = build_app("factworld"); demo.launch(server_name="127.0.0.1")
"""
from workbench.app.blocks import build_app
from workbench.app.main import main

__all__ = ["build_app", "main"]
