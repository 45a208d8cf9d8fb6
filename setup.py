"""Setuptools shim: all metadata and options live in setup.cfg."""
from setuptools import setup

setup()
