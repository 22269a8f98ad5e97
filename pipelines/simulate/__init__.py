"""TensorFlow Federated reference: the same federation run in TFF's simulation runtime."""
