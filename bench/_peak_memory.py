"""Peak memory a piece of work adds, for the benches: CUDA allocator stats, or the process's RSS on CPU.

On CPU the kernel's high-water mark (VmHWM) is reset to the current resident size first (Linux
/proc/self/clear_refs), so memory used while building the model earlier does not count.
"""

from __future__ import annotations

from typing import Any


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def start_peak(device: Any) -> int:
    """Reset the peak and return the current allocation (bytes) as the baseline."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return int(torch.cuda.memory_allocated())
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")  # resets VmHWM to the current resident size
    except OSError:
        pass
    return _status_kb("VmRSS") * 1024


def peak_since(device: Any, baseline: int) -> int:
    """Bytes the peak rose above `baseline` since `start_peak`."""
    import torch

    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated()) - baseline
    return _status_kb("VmHWM") * 1024 - baseline
