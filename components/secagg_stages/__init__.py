"""SecAgg+ as pipeline stages: the site steps (`executor.py`), the coordinator steps
(`coordinator.py`), their KFP declarations (`component.py`, `entry.py`). The protocol core is
`components/secagg/`; the DAG shape is explained in `pipelines/dag.py`."""
