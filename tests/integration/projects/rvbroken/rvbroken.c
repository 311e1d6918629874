#include <Python.h>

#if defined(__riscv)
#error "rvbroken does not build on RISC-V (on purpose, for leapfrog's tests)"
#endif

static struct PyModuleDef rvbroken_module = {PyModuleDef_HEAD_INIT, "rvbroken", NULL, -1, NULL};

PyMODINIT_FUNC PyInit_rvbroken(void) { return PyModule_Create(&rvbroken_module); }
