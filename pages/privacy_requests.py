"""stub"""
import streamlit as st

from ui.context import page_inputs

ctx = page_inputs("privacy_requests")
st.title("privacy_requests")
