"""Thin Gradio views over the training library: one module per tab."""
