"""Tidy the type annotations that autodoc writes into signatures.

Sphinx renders some annotations of the package in a form that is wrong or
unreadable: ``*args: P.args`` (a ``ParamSpec``) comes out as
``*args: ~typing.~P``, ``Callable[P, T]`` as ``Callable[[~P], T]`` and
``Callable[..., T]`` as ``Callable[[...], T]``. This extension rewrites those
three forms back to what the source says, in every signature and return
annotation autodoc produces.
"""

import re

# `*args: ~typing.~P` / `**kwargs: ~typing.~P`: the ParamSpec's args and kwargs.
_PARAMSPEC_PARAMETER = re.compile(r'(?<![\w*])(\*\*?)(\w+): ~typing\.~(\w+)')
# `Callable[[~P], ...`: a callable whose parameters are a ParamSpec.
_PARAMSPEC_CALLABLE = re.compile(r'Callable\[\[~(\w+)\], ')


def _parameter(match):
    stars, name, paramspec = match.groups()
    return '%s%s: %s.%s' % (stars, name, paramspec, 'args' if stars == '*' else 'kwargs')


def tidy(text):
    """Return *text*, a signature or return annotation, with the three forms fixed."""
    if not text:
        return text
    text = _PARAMSPEC_PARAMETER.sub(_parameter, text)
    text = _PARAMSPEC_CALLABLE.sub(r'Callable[\1, ', text)
    return text.replace('Callable[[...], ', 'Callable[..., ')


def process_signature(app, what, name, obj, options, signature, return_annotation):
    return tidy(signature), tidy(return_annotation)


def setup(app):
    app.connect('autodoc-process-signature', process_signature)
    return {'version': '1.0', 'parallel_read_safe': True, 'parallel_write_safe': True}
