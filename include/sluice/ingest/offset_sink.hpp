#pragma once
// How the store writer tells the ingest stage which offsets are durable.

#include <vector>

#include "sluice/core/record.hpp"

namespace sluice {

/// Implemented by the Kafka ingest stage; called by the store writer thread after each commit.
class offset_sink {
public:
    virtual ~offset_sink() = default;
    virtual void offsets_durable(const std::vector<partition_offset>& offsets) = 0;
};

}  // namespace sluice
