"""Scoring a trained model: batch scoring (`predict`), the HTTP service with canary and shadow
routing, its payloads, telemetry and prediction log."""
