"""A toy KFP pipeline for the scheduler tests (no `from __future__ import annotations`: KFP
reads the parameter types from the annotations)."""

from kfp import dsl


@dsl.component(install_kfp_package=False, base_image="python:3.11")
def train_lab_r2(mode: str) -> str:
    """Named as the DAG names train tasks (site `lab`, round 2); `exit` calls os._exit(7)."""
    import os

    if mode == "exit":
        os._exit(7)
    return mode


@dsl.pipeline(name="toy")
def toy(mode: str):
    train_lab_r2(mode=mode)


@dsl.component(install_kfp_package=False, base_image="r.example/fedpipe@sha256:" + "ab" * 32)
def image_seen(out: str):
    """Writes the image the local runner says this task runs in (FEDPIPE_POD_IMAGE)."""
    import os

    with open(out, "w") as handle:
        handle.write(os.environ.get("FEDPIPE_POD_IMAGE", "<unset>"))


@dsl.pipeline(name="image-seen")
def image_pipeline(out: str):
    image_seen(out=out)
