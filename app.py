"""Entry point for ``streamlit run app.py`` from the repository root.

The app itself lives in ``capplan/streamlit_app.py`` so that it ships inside
the installed package, which is the file ``capplan app`` serves.
"""

from capplan.streamlit_app import main

main()
