"""The source text of a gast node: the one piece every transform pass shares.

Analysis and rewrite quote the user's code in their error messages, codegen writes the generated
source; all three read a node's text here, so none of them imports another for it (the passes
stay a chain: analysis -> rewrite -> codegen, with no cycle).
"""

from __future__ import annotations

import ast
from typing import Any

import gast

__all__ = ["expression_text"]


def expression_text(node: Any) -> str:
    """The source text of a gast node (an expression or a statement) on one line if it fits."""
    tree = gast.gast_to_ast(node)
    if (isinstance(tree, ast.AST) and "lineno" in tree._attributes) or isinstance(tree, ast.Module):
        ast.fix_missing_locations(tree)
    return ast.unparse(tree)
