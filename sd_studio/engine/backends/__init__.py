"""Engines behind one interface: this computer, ComfyUI servers (one or a pool), Amazon Bedrock, SageMaker."""
