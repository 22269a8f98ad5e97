"""`fedpipe run --local`: local object stores, kfp.local execution, progress, host-side results."""
