mod entry;
mod memory_store;
mod redis_store;

pub(crate) use entry::{CacheError, CacheKey, CachedAnswer};
pub(crate) use memory_store::MemoryStore;
pub(crate) use redis_store::RedisStore;
