"""Storage: RocksDB on disk through rocksdict."""
from .rocks import Store, StoreLockedError, doc_key, project_prefix, split_doc_key

__all__ = ["Store", "StoreLockedError", "doc_key", "project_prefix", "split_doc_key"]
