"""A small Sphinx extension for the API reference of this project.

``.. autointerface:: package.module.IName`` documents a zope interface: its
docstring, the interfaces it extends, and each method and attribute it
declares, in declaration order. Plain autodoc cannot: an interface is an
``InterfaceClass`` instance whose methods are not attributes.

It also checks, once every page has been read, that every public name of
the modules listed in the ``public_modules`` setting of ``conf.py`` was
documented somewhere, so that a name added to ``__all__`` without a
reference entry fails the build (warnings are errors there).
"""

import ast
import importlib
import inspect

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)


def _source_signatures(module, name):
    """Map the methods of interface *name* to their signatures, read from the source.

    zope's own ``getSignatureString()`` loses keyword-only arguments (and
    knows no annotations), so the signatures come from the ``def`` lines when
    the source can be read, with their annotations.
    """
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError, SyntaxError):
        return {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return {item.name: '(%s)%s' % (ast.unparse(item.args),
                                           ' -> ' + ast.unparse(item.returns)
                                           if item.returns is not None else '')
                    for item in node.body
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return {}


def _indent(text, prefix='   '):
    return [(prefix + line) if line else '' for line in text.splitlines()]


class AutoInterface(SphinxDirective):
    """Document one zope interface, given by its dotted name."""

    required_arguments = 1
    has_content = False

    def run(self):
        modname, _, name = self.arguments[0].rpartition('.')
        try:
            module = importlib.import_module(modname)
            iface = getattr(module, name)
        except (ImportError, AttributeError) as exc:
            logger.warning('autointerface: cannot import %s: %s', self.arguments[0], exc,
                           location=self.get_location())
            return []
        if getattr(module, '__file__', None):
            self.env.note_dependency(module.__file__)

        signatures = _source_signatures(module, name)
        lines = ['.. py:class:: %s' % name, '   :module: %s' % modname, '']
        bases = [base for base in iface.getBases() if base.__name__ != 'Interface']
        if bases:
            lines.append('   Extends %s.' % ', '.join(
                ':class:`~%s.%s`' % (base.__module__, base.__name__) for base in bases))
            lines.append('')
        lines.extend(_indent(inspect.cleandoc(iface.__doc__ or '')))
        lines.append('')
        for member, description in iface.namesAndDescriptions(all=False):
            doc = inspect.cleandoc(description.getDoc() or '')
            if hasattr(description, 'getSignatureString'):
                signature = signatures.get(member) or description.getSignatureString()
                lines.append('   .. py:method:: %s%s' % (member, signature))
            else:
                lines.append('   .. py:attribute:: %s' % member)
            lines.append('')
            lines.extend(_indent(doc, '      '))
            lines.append('')

        node = nodes.section()
        node.document = self.state.document
        source, _ = self.get_source_info()
        self.state.nested_parse(StringList(lines, source), self.content_offset, node)
        return node.children


def public_names(module):
    """The names a module exports: its ``__all__``, or what it defines itself."""
    names = getattr(module, '__all__', None)
    if names is not None:
        return list(names)
    return [name for name, value in vars(module).items()
            if not name.startswith('_')
            and getattr(value, '__module__', None) == module.__name__]


def check_public_names(app, env):
    documented = env.get_domain('py').objects
    for modname in app.config.public_modules:
        try:
            module = importlib.import_module(modname)
        except ImportError as exc:
            logger.warning('public module %s cannot be imported: %s', modname, exc)
            continue
        for name in public_names(module):
            if '%s.%s' % (modname, name) not in documented:
                logger.warning('public name %s.%s is missing from the API reference',
                               modname, name)


def setup(app):
    app.add_config_value('public_modules', [], 'env')
    app.add_directive('autointerface', AutoInterface)
    app.connect('env-check-consistency', check_public_names)
    return {'version': '1.0', 'parallel_read_safe': True, 'parallel_write_safe': True}
