#pragma once
// The aggregation state at start: rebuilt from history, so it equals what it was before a
// restart or a crash.

#include <cstddef>
#include <cstdint>

#include "sluice/config/config.hpp"
#include "sluice/core/ports/durable_store.hpp"
#include "sluice/core/result.hpp"
#include "sluice/preprocess/aggregator.hpp"

namespace sluice {

/// Adds every history row of the set within its aggregation horizon (the widest window plus the
/// allowed lateness), oldest first; returns the rows read. Called once per set at start, before
/// the store writer starts, on the starting thread.
result<std::size_t> rebuild_from_history(aggregator& agg, durable_store& durable, std::uint32_t set_index,
                                         const feature_set_config& set);

}  // namespace sluice
