"""Deployment: ONNX export with parity and int8 (`export`), the ONNX Runtime wrapper (`onnx_runtime`),
the HTTP service (`serve`)."""
