#pragma once
// Reads messages of one feature set's topic for `sluice try`: a throwaway consumer that joins no
// group and commits nothing, assigned every partition of the topic at chosen offsets.

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/config/config.hpp"
#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

struct topic_sample_options {
    /// --records N: the last N messages of the topic (spread over its partitions), or the first N
    /// with from_start; reading stops at N or at the end the topic had when reading began.
    std::int64_t records = 1000;
    /// --seconds T (> 0): whatever arrives in T seconds from the topic's end (or from its start
    /// with from_start), at most `records`.
    std::int64_t seconds = 0;
    bool from_start = false;
};

/// The messages read, in partition order within each partition, as the daemon's consumer hands
/// them to the parser (raw_message::set_index is set_index).
result<std::vector<raw_message>> sample_topic(const config& cfg, const std::string& bootstrap, std::uint32_t set_index,
                                              const topic_sample_options& options);

}  // namespace sluice
