mod entry;
mod memory_store;

pub(crate) use entry::{CacheError, CacheKey, CachedAnswer};
pub(crate) use memory_store::MemoryStore;
