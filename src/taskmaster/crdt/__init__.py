"""CRDTs: hybrid logical clock and the document type every replica merges."""

from .doc import DELETED, Doc, decode, encode, merge, merge_into
from .hlc import HLC, Stamp

__all__ = ["DELETED", "HLC", "Doc", "Stamp", "decode", "encode", "merge", "merge_into"]
