"""Drift monitoring: what is judged, the retrain verdict, and the `monitor` command's report."""
