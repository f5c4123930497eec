#pragma once
// Ports between the ingest stage and the store writer: where positions are seeded from, which
// offsets are durable, and the dead-letter topic.

#include <mutex>
#include <string>
#include <vector>

#include "sluice/core/record.hpp"
#include "sluice/core/result.hpp"

namespace sluice {

/// Offsets stored for a consumer group, to seed partition positions on assignment. Implemented
/// by the durable store; called on a consumer thread.
class offset_source {
public:
    virtual ~offset_source() = default;
    virtual result<std::vector<partition_offset>> read_offsets(const std::string& group_id) = 0;
};

/// Implemented by the Kafka ingest stage; called by the store writer thread after each commit.
class offset_sink {
public:
    virtual ~offset_sink() = default;
    virtual void offsets_durable(const std::vector<partition_offset>& offsets) = 0;
    /// True while this instance holds the partition (the writer caches only what it owns).
    virtual bool owns(const std::string& topic, std::int32_t partition) const = 0;
    /// Holds off revocations while the caller checks owns() and caches: a partition revoked in
    /// between would otherwise leave a stale copy behind.
    virtual std::unique_lock<std::mutex> hold_assignment() = 0;
};

/// Sends dead letters to the dead-letter topic (kafka.dead_letter_topic). Called by the store
/// writer after the batch is durable and before its offsets are stored; ok only when Kafka
/// acknowledged every message.
class dead_letter_publisher {
public:
    virtual ~dead_letter_publisher() = default;
    virtual status publish(const std::vector<dead_letter>& letters) = 0;
};

}  // namespace sluice
