"""Import-only stand-in for flash-attn, used by tests/test_openrlhf.py where flash-attn is absent.

flash-attn is a CUDA kernel library that builds only against a CUDA toolkit and GPU torch;
OpenRLHF imports a few of its padding helpers at module level (openrlhf/models/ring_attn_utils.py)
but the advantage computation under test never calls them. Every name here raises if called.
"""

__version__ = "0.0.0+gapo-test-stub"


def _unavailable(name):
    def call(*args, **kwargs):
        raise NotImplementedError(f"flash_attn.{name} is a test stand-in: flash-attn is not installed")

    call.__name__ = name
    return call
