"""Kubeflow Pipelines operations: upload a compiled pipeline, schedule recurring runs."""
