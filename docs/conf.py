"""Sphinx configuration of the gruvi_gevent documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath('_ext'))

project = 'gruvi_gevent'
author = 'the gruvi_gevent authors'
copyright = 'the gruvi_gevent authors'
try:
    from importlib.metadata import version as _version
    release = _version('gruvi-gevent')
except Exception:   # not installed: the docs still build from the tree
    release = ''
version = release

extensions = [
    'sphinx.ext.autodoc',
    'zope_interfaces',
    'signatures',
]

# Every public name of these modules must appear in the API reference
# (checked by the zope_interfaces extension; a missing one is a warning).
public_modules = ['gruvi_gevent', 'gruvi_gevent.interfaces', 'gruvi_gevent.testing']

autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autodoc_preserve_defaults = True

exclude_patterns = ['_build']
templates_path = []

html_theme = 'alabaster'
html_static_path = []
html_theme_options = {
    'description': "Gruvi's futures API on gevent",
}
