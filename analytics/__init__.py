"""MemberLens analytics: the warehouse contract, the demo generator and every analysis.

Nothing in this package imports Streamlit: functions take a SQLAlchemy engine or connection and
plain parameters and return DataFrames or dataclasses, so they work the same from a notebook, the
command line (``python -m analytics``) and the app.
"""
