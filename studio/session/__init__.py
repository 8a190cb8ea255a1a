"""Session state, gallery store, prompt history and settings: plain Python, no Qt."""
