from setuptools import Extension, setup

setup(ext_modules=[Extension("rvbroken", ["rvbroken.c"])])
