"""The script that ``capplan app`` hands to ``streamlit run``: it renders :func:`capplan.streamlit_app.main`."""

from capplan.streamlit_app import main

main()
