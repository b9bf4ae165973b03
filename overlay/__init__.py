"""livecart's overlay: what viewers see on top of the video (the "Overlay" issue builds it)."""
