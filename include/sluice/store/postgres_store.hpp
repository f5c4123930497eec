#pragma once
// Factory for the PostgreSQL durable store (libpq).

#include "sluice/config/config.hpp"
#include "sluice/core/ports/durable_store.hpp"

namespace sluice {

/// The store keeps one writer connection (store writer thread) and postgres.pool_size reader
/// connections (lookup pool). Nothing connects until prepare().
durable_store_ptr make_postgres_store(const config& cfg);

}  // namespace sluice
