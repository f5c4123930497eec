#include "sluice/preprocess/aggregation_rebuild.hpp"

#include "sluice/core/clock.hpp"

namespace sluice {

result<std::size_t> rebuild_from_history(aggregator& agg, durable_store& durable, std::uint32_t set_index,
                                         const feature_set_config& set) {
    std::size_t rows = 0;
    history_scan scan;
    scan.since_ms = now_ms() - set.aggregation_horizon_ms();
    auto done = durable.for_each_history(
        set_index, scan,
        [&](const std::string& key, std::int64_t t, const std::vector<value>& values, std::int32_t partition) {
            agg.add(key, t, values, partition);
            ++rows;
        });
    if (!done) return result<std::size_t>::failure(done.message());
    return rows;
}

}  // namespace sluice
