"""leapfrog: run Python AI-serving test suites on emulated RISC-V and openEuler targets."""

__version__ = "0.1.0"
