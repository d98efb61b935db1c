"""stub"""
import streamlit as st

from ui.context import page_inputs

ctx = page_inputs("admin_users")
st.title("admin_users")
