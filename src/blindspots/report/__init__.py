"""The generated study report."""
