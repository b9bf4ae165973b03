"""livecart's load generators and reports."""
