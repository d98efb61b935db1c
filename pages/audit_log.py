"""stub"""
import streamlit as st

from ui.context import page_inputs

ctx = page_inputs("audit_log")
st.title("audit_log")
