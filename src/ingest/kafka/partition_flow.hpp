#pragma once
// The decisions of one consumer thread that need no broker: which preprocess queue a partition
// feeds, which partitions this consumer holds, and which of them to pause or resume as the
// queues fill and drain. The consumer applies the decisions with librdkafka; this part is
// unit-tested on its own (tests/unit/ingest/partition_flow_test.cpp).

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace sluice::kafka {

using topic_partition = std::pair<std::string, std::int32_t>;

/// How full one preprocess queue is, as the consumer sees it.
struct queue_fill {
    std::size_t size = 0;
    std::size_t capacity = 1;
    bool held_back = false;  // the consumer holds messages for it that did not fit
};

/// The partitions to pause and to resume now.
struct flow_changes {
    std::vector<topic_partition> pause;
    std::vector<topic_partition> resume;
};

/// Owned by one consumer: assign/revoke/first_delivery/update run on its thread; owns(),
/// owned_of() and any() on any thread (the store writer, the API). Every method locks.
class partition_flow {
public:
    partition_flow(std::size_t queues, double pause_watermark, double resume_watermark);

    /// The queue a partition feeds: fixed for the partition, so its records stay in order.
    std::size_t route(const std::string& topic, std::int32_t partition) const;

    /// Partitions assigned: incremental (cooperative) adds them; eager replaces the assignment.
    void assign(const std::vector<topic_partition>& partitions, bool incremental);
    /// Partitions revoked: incremental removes them; eager clears the assignment.
    void revoke(const std::vector<topic_partition>& partitions, bool incremental);

    /// Records that the partition delivered a message; true the first time since its assignment
    /// (only then may it be paused: pausing right after assign() makes librdkafka 2.0.2 drop the
    /// assigned offset, upstream issue #2190).
    bool first_delivery(const std::string& topic, std::int32_t partition);

    /// Throttles a queue at or above the pause watermark, with held-back messages, or while
    /// stopping; releases it at or below the resume watermark (hysteresis in between). Returns the
    /// held partitions whose paused state must change to match, and records them as changed.
    flow_changes update(const std::vector<queue_fill>& queues, bool stopping);

    bool owns(const std::string& topic, std::int32_t partition) const;
    bool any() const;
    /// The held partitions of a topic.
    std::vector<std::int32_t> owned_of(const std::string& topic) const;

private:
    struct partition_state {
        bool delivered = false;  // a message was polled since the assignment
        bool paused = false;
    };
    const double pause_watermark_;
    const double resume_watermark_;
    const std::size_t queues_;
    mutable std::mutex mutex_;
    std::map<topic_partition, partition_state> owned_;
    std::vector<bool> throttled_;  // per queue
};

}  // namespace sluice::kafka
