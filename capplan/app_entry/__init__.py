"""The folder of the file that ``streamlit run`` executes; it holds nothing else.

Streamlit puts the folder of the script it runs first on ``sys.path``. Keeping
the script here, away from capplan's own modules, means nothing but the
script itself becomes importable as a top-level name.
"""
