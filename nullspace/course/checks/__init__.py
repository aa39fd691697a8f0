"""One module of exercise checks per lesson (``lesson01``, ``lesson02``, …)."""
