"""Entry point for ``streamlit run app.py`` from the repository root.

The app lives in ``capplan/streamlit_app.py``; ``capplan app`` serves the same
app through ``capplan/app_entry/capplan_app.py``, which ships inside the
installed package.
"""

from capplan.streamlit_app import main

main()
